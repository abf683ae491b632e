"""Pipeline: a source, then stages of worker processes, joined by bounded queues.

::

    source ──> [stage 1: Pool(n1) run] ──link1──> [stage 2: Pool(n2) run] ──link2──> ... ──> caller
                 driven by thread 1               driven by thread 2

Each stage is one :class:`corelane.Pool` (no second pool implementation): a thread per stage runs
that pool's ordered (or unordered) run over the previous stage's link and puts what comes out
into its own bounded link, in the lists the engine delivers results in (one hand-off per list,
not per item: the relay costs the parent little more than the hand-written Queue version), then
one DONE. A link is bounded in items (``buffer``). The engine reads its input only while its
in-flight window has room and the thread blocks while its link is full, so a slow stage
throttles everything before it, down to the source: memory stays flat on an endless source.
Nobody counts DONE sentinels: each link has exactly one reader.

Items travel as ``(source index, value)``, so a failure names the item's position in the source
whatever the order. A failure in a stage (the function raised, its worker died, it timed out)
either stops the whole pipeline at once (``errors="raise"``: every pool is terminated and the
caller gets :class:`~corelane.errors.StageError` with the stage, the item and the worker's
traceback) or flows on to the caller as a :class:`~corelane.Failure` in place of the result
(``errors="return"``), skipping the later stages.

``Pipeline(..., cluster="tcp://HOST:8786")`` runs the same picture on a Dask cluster: each stage
is a :class:`~corelane.engine.cluster.ClusterPool` (all of them on one client), whose window of
tasks in flight bounds its read-ahead as the local engine's does; the stage threads, queues,
ordering and errors are the ones above. The cluster's workers serve every stage, so a stage's
``workers=`` does not apply there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Literal

from corelane.engine import Failure, Pool
from corelane.engine._protocol import Mode
from corelane.errors import (
    Cancelled,
    CorelaneError,
    StageError,
    TaskError,
    TaskTimeout,
    WorkerDied,
)
from corelane.events import Event
from corelane.progress import Sink, make_sink

if TYPE_CHECKING:
    from corelane.engine.cluster import ClusterPool

Errors = Literal["raise", "return"]

BUFFER = 64  # items waiting between two stages: more smooths bursts, costs memory
POLL = 0.1  # s between checks of the stop flag while blocked on a queue
JOIN_TIMEOUT = 5.0  # s to wait for a stage thread when the pipeline shuts down


@dataclasses.dataclass(frozen=True)
class _Stage:
    fn: Callable[[Any], Any]
    workers: int
    name: str
    chunksize: int | None
    timeout: float | None


class _Failed:
    """A failure from an earlier stage, passed through the later stages untouched."""

    __slots__ = ("failure",)

    def __init__(self, failure: Failure) -> None:
        self.failure = failure


class _StageFn:
    """What a stage's workers run: the user's function on ``(index, item)`` envelopes."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn

    def __call__(self, envelope: Any) -> Any:
        if type(envelope) is _Failed:
            return envelope
        index, item = envelope
        return index, self.fn(item)

    def __getstate__(self) -> Any:
        return self.fn

    def __setstate__(self, fn: Any) -> None:
        self.fn = fn


class _Indexed:
    """The source as ``(index, item)`` pairs, sized when the source is."""

    def __init__(self, source: Iterable[Any]) -> None:
        self.source = source

    def __len__(self) -> int:
        return len(self.source)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        try:
            yield from enumerate(self.source)
        except Exception as exc:  # the source itself failed: say so, not "stage 1"
            raise StageError("source", exc) from exc


class _Link:
    """The bounded hand-off between two stages, counted in items; results travel in the lists
    the engine delivers them in (one lock round per list, not per item). A list larger than
    the bound still passes when the link is empty, so nothing can wedge."""

    def __init__(self, limit: int, stop: threading.Event) -> None:
        self.limit = limit
        self.stop = stop
        self._lists: deque[list[Any] | None] = deque()  # None: DONE, nothing more will come
        self._count = 0
        self._cond = threading.Condition()
        self.listener: Callable[[], None] | None = None  # called after each put (the reader's)

    def put(self, batch: list[Any] | None) -> bool:
        """Queue ``batch`` (None for DONE), waiting for room; False if the pipeline stopped."""
        size = len(batch) if batch is not None else 0
        with self._cond:
            while self._count and self._count + size > self.limit:
                if self.stop.is_set():
                    return False
                self._cond.wait(POLL)
            self._lists.append(batch)
            self._count += size
            self._cond.notify_all()
        if self.listener is not None:
            self.listener()
        return True

    def count(self) -> int:
        """Items queued now."""
        return self._count

    def finished(self) -> bool:
        """DONE is queued: whatever is queued now is all that will come."""
        with self._cond:
            return bool(self._lists) and self._lists[-1] is None

    def get(self) -> list[Any] | None:
        """The next list (None: DONE); raises Cancelled once the pipeline stops."""
        with self._cond:
            while not self._lists:
                if self.stop.is_set():
                    raise Cancelled("the pipeline stopped")
                self._cond.wait(POLL)
            batch = self._lists.popleft()
            self._count -= len(batch) if batch is not None else 0
            self._cond.notify_all()
        return batch


class _LinkReader:
    """The input of stage k+1: stage k's results, item by item, until DONE."""

    def __init__(self, link: _Link, total: int | None) -> None:
        self.link = link
        self.total = total
        self._batch: list[Any] = []
        self.done = False

    def __len__(self) -> int:
        if self.total is None:
            raise TypeError("length unknown")
        return self.total

    def __iter__(self) -> _LinkReader:
        return self

    def _ready_items(self) -> int:
        """Items that can be read now without waiting (all that is left once DONE is queued):
        the engine cuts a stage's chunks from these instead of waiting to fill them."""
        if self.done or self.link.finished():
            return sys.maxsize
        return len(self._batch) + self.link.count()

    def _listen(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever items (or DONE) arrive: the engine, waiting for results
        of the chunks it has out, wakes to cut the new items for its idle workers."""
        self.link.listener = callback

    def __next__(self) -> Any:
        while not self._batch:
            if self.done:
                raise StopIteration
            batch = self.link.get()
            if batch is None:
                self.done = True  # DONE: the stage before has nothing more (and never will)
                raise StopIteration
            batch.reverse()
            self._batch = batch
        return self._batch.pop()


def _labelled(sink: Sink | None, label: str) -> Sink | None:
    if sink is None:
        return None

    def relabel(event: Event) -> Any:
        return sink(dataclasses.replace(event, label=label))

    return relabel


def _stage_failure(failure: Failure, stage: str) -> Failure:
    """A stage's Failure, re-expressed for the caller: source index, stage item, StageError."""
    envelope = failure.item
    index, item = envelope if isinstance(envelope, tuple) else (failure.index, envelope)
    exc = failure.exception
    if isinstance(exc, WorkerDied):
        exc = WorkerDied(index, exc.pid, exc.exitcode, exc.how)
    elif isinstance(exc, TaskTimeout):
        exc = TaskTimeout(index, exc.timeout, exc.pid)
    elif not isinstance(exc, CorelaneError):
        exc = TaskError(index, item, exc, failure.traceback)
    return Failure(index, item, StageError(stage, exc), failure.traceback)


class Pipeline:
    """A source and a chain of stages, each run by its own worker processes.

    Args:
        source: the input items (any iterable, endless ones included; read lazily).
        ordered: results in source order (default) or as they finish.
        errors: "raise" stops everything at the first failure with StageError; "return" yields
            a Failure (its ``exception`` a StageError) in place of each failed item.
        progress: True for one bar per stage, or a callable receiving corelane.events with
            ``label`` set to the stage name.
        buffer: items that may wait between two stages.
        start_method: for every stage's pool (default: the engine's choice).
        log_level: forward the workers' log records at this level to this process's handlers.
        cluster: a Dask scheduler address (or Client, or LocalCluster): every stage runs there,
            on the cluster's workers (``corelane[dask]``; see docs/engine.md, Cluster).
            ``start_method``, ``log_level`` and the stages' ``workers`` do not apply.

    Example:
        >>> results = Pipeline(paths).stage(decode, workers=2).stage(resize, workers=3).run()
    """

    def __init__(
        self,
        source: Iterable[Any],
        *,
        ordered: bool = True,
        errors: Errors = "raise",
        progress: bool | Sink = False,
        buffer: int = BUFFER,
        start_method: str | None = None,
        log_level: int | str | None = None,
        cluster: Any = None,
    ) -> None:
        if cluster is not None and (start_method is not None or log_level is not None):
            raise ValueError("start_method and log_level do not apply to a pipeline on a cluster")
        if errors not in ("raise", "return"):
            raise ValueError(f'errors must be "raise" or "return", got {errors!r}')
        if buffer < 1:
            raise ValueError(f"buffer must be >= 1, got {buffer}")
        self.source = source
        self.ordered = ordered
        self.errors: Errors = errors
        self.progress = progress
        self.buffer = buffer
        self.start_method = start_method
        self.log_level = log_level
        self.cluster = cluster
        self._stages: list[_Stage] = []

    def stage(
        self,
        fn: Callable[[Any], Any],
        *,
        workers: int = 1,
        name: str | None = None,
        chunksize: int | None = None,
        timeout: float | None = None,
    ) -> Pipeline:
        """Add a stage: ``fn`` applied to every item by ``workers`` processes; returns self.

        Args:
            fn: a function of one item (module-level, lambda or closure).
            workers: processes running this stage.
            name: shown in errors and progress events (default: the function's name).
            chunksize: items per message to a worker (default: adaptive, ~50 ms of work; a
                stage fed by another takes the items that are ready rather than wait to fill a
                chunk, so it never holds results back behind a slow stage).
            timeout: seconds one item may take before its worker is replaced (TaskTimeout).
        """
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        name = name or getattr(fn, "__name__", None) or f"stage{len(self._stages) + 1}"
        if name == "<lambda>" or any(s.name == name for s in self._stages):
            name = f"{name}#{len(self._stages) + 1}"
        self._stages.append(_Stage(fn, workers, name, chunksize, timeout))
        return self

    @property
    def stages(self) -> list[str]:
        """The stage names, in order."""
        return [s.name for s in self._stages]

    def __iter__(self) -> Iterator[Any]:
        """Run the pipeline, yielding results (breaking out of the loop stops it)."""
        if not self._stages:
            return iter(self.source)
        return self._iterate()

    def run(self) -> list[Any]:
        """Run the pipeline to the end and return the list of results."""
        return list(self)

    def _iterate(self) -> Iterator[Any]:
        run = _Run(self)
        try:
            yield from run.results()
        finally:
            run.shutdown()


class _Run:
    """One execution of a Pipeline: its pools, stage threads and queues."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.errors = pipeline.errors
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.finished = False
        self._lock = threading.Lock()
        self.pools: list[Pool | ClusterPool] = []
        self.threads: list[threading.Thread] = []
        self.client: Any = None  # the Dask client of a pipeline on a cluster, if we made it
        try:
            if pipeline.cluster is not None:
                self._cluster_pools(pipeline)
            else:
                for st in pipeline._stages:
                    pool = Pool(st.workers, start_method=pipeline.start_method,
                                log_level=pipeline.log_level)
                    self.pools.append(pool)
            self._build(pipeline)
        except BaseException:
            for made in self.pools:
                made.terminate()
            self._close_client()
            raise
        for thread in self.threads:
            thread.start()

    def _cluster_pools(self, pipeline: Pipeline) -> None:
        """One ClusterPool per stage, all on one Dask client (ours to close if we made it)."""
        from corelane.engine.cluster import ClusterPool, connect

        client, owned = connect(pipeline.cluster)
        self.client = client if owned else None
        for _ in pipeline._stages:
            self.pools.append(ClusterPool(client))

    def _close_client(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.close(timeout=JOIN_TIMEOUT)
            self.client = None

    def _build(self, pipeline: Pipeline) -> None:
        source: Any = _Indexed(pipeline.source)
        try:
            total: int | None = len(pipeline.source)  # type: ignore[arg-type]
        except TypeError:
            total = None
        upstream: Any = source
        for st, pool in zip(pipeline._stages, self.pools, strict=True):
            link = _Link(pipeline.buffer, self.stop)
            sink = _labelled(make_sink(pipeline.progress, st.name), st.name)
            # The engine's result lists (not item by item): one hand-off per list.
            runs = pool._start(_StageFn(st.fn), upstream, Mode.ONE, pipeline.ordered, st.chunksize,
                               sink or False, st.timeout, "return", "task")
            self.threads.append(threading.Thread(
                target=self._pump, args=(st, runs, link), name=f"corelane-stage-{st.name}",
                daemon=True,
            ))
            upstream = _LinkReader(link, total)
        self.output: _LinkReader = upstream

    # ------------------------------------------------------------------ stage threads

    def _fail(self, error: BaseException) -> None:
        with self._lock:
            if self.error is None:
                self.error = error
        self.stop.set()

    def _pump(self, st: _Stage, runs: Iterator[list[Any]], link: _Link) -> None:
        try:
            for values in runs:
                for k, out in enumerate(values):
                    if isinstance(out, Failure):  # this stage failed this item
                        failure = _stage_failure(out, st.name)
                        if self.errors == "raise":
                            self._fail(failure.exception)
                            return
                        values[k] = _Failed(failure)
                if not link.put(values):
                    return
            link.put(None)
        except BaseException as exc:  # noqa: BLE001 - reported to the caller's thread
            if not self.stop.is_set():  # not merely our own shutdown reaching this stage
                self._fail(exc if isinstance(exc, StageError) else StageError(st.name, exc))
        finally:
            with contextlib.suppress(Exception):
                runs.close()  # type: ignore[attr-defined]

    # ------------------------------------------------------------------ caller's thread

    def results(self) -> Iterator[Any]:
        link, stop, raise_errors = self.output.link, self.stop, self.errors == "raise"
        while True:
            try:
                batch = link.get()
            except Cancelled:
                raise self.error or Cancelled("the pipeline stopped") from None
            if stop.is_set() and self.error is not None:
                raise self.error
            if batch is None:
                self.finished = True
                return
            batch.reverse()
            while batch:
                payload = batch.pop()
                if type(payload) is _Failed:
                    if raise_errors:  # pragma: no cover - raise mode stops at the stage
                        raise payload.failure.exception
                    yield payload.failure
                else:
                    yield payload[1]

    def shutdown(self) -> None:
        """Stop every stage: gracefully after a complete run, at once otherwise (bounded)."""
        self.stop.set()
        if self.finished:
            for thread in self.threads:
                thread.join(JOIN_TIMEOUT)
            for pool in self.pools:
                pool.close(timeout=JOIN_TIMEOUT)
            self._close_client()
            return
        for thread in self.threads:  # those blocked on a queue leave within POLL seconds
            thread.join(POLL * 2)
        for pool in self.pools:  # those waiting on their workers are woken by the terminate
            pool.terminate()
        for thread in self.threads:
            thread.join(JOIN_TIMEOUT)
        self._close_client()
