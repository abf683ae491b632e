"""Pool: the public face of the engine, a ``concurrent.futures.Executor`` with more to give.

Two families of calls share one pool:

* the **Executor contract**, exactly as ``ProcessPoolExecutor`` keeps it: ``submit``, a lazy
  ``map(fn, *iterables, timeout=, chunksize=)`` whose ``timeout`` is a deadline for the whole
  call, ``shutdown(wait=True, *, cancel_futures=False)``, ``RuntimeError`` after shutdown, the
  task's own exception raised (its worker traceback as ``__cause__``), pending work finished at
  interpreter exit;
* **corelane's runs**: ``imap`` and ``imap_unordered`` over one iterable, lazy input in flat
  memory, per-item ``timeout=``, ``errors="return"``, progress events, and ``TaskError`` naming
  the failing item.

Everything that moves work lives in :mod:`corelane.engine._manager`; this module checks
arguments, turns results into what each call promises, and shuts down. ``workers=0`` runs every
call inline in the caller's process (same results, same error types), for debugging.
"""

from __future__ import annotations

import contextlib
import itertools
import queue
import threading
import time
import types
import weakref
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Any, Literal, cast

from corelane.engine import _startmethod
from corelane.engine._inline import inline_runs, inline_submit
from corelane.engine._manager import Manager
from corelane.engine._protocol import Mode
from corelane.engine._records import Chunk, Fn, Job, Run, cut_chunk, fresh
from corelane.engine._serialize import describe, dumps
from corelane.engine._workers import JOIN_TIMEOUT
from corelane.engine.chunking import Chunker
from corelane.engine.results import Errors, InTurn, Style
from corelane.engine.worker import InitArgs, Limits
from corelane.errors import Cancelled, Closed, NotPicklable
from corelane.progress import Reporter, Sink, make_sink

WINDOW_CHUNKS_PER_WORKER = 3  # lazy runs: chunks cut ahead per worker (feeds workers, costs memory)

_live: weakref.WeakSet[Pool] = weakref.WeakSet()
_managers: weakref.WeakSet[Manager] = weakref.WeakSet()  # incl. those of collected pools


@dataclass(frozen=True)
class PoolStatistics:
    """What :meth:`Pool.statistics` returns."""

    workers: int
    chunks_sent: int  # messages of work sent to workers (a map of 100 tiny items: ~3)
    worker_deaths: int  # workers that died after starting (each replaced)
    workers_retired: int  # workers replaced at max_tasks_per_child / max_worker_memory


_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def parse_bytes(value: int | str) -> int:
    """``2GiB``, ``500MB``, ``1048576`` -> bytes; ValueError on anything else."""
    if isinstance(value, int):
        amount = value
    else:
        text = value.strip().upper().replace(" ", "")
        number = text.rstrip("KMGTIB")
        unit = text[len(number):]
        if unit not in _UNITS or not number:
            raise ValueError(f"not a size: {value!r} (use e.g. 2GiB, 500MB or a number of bytes)")
        amount = int(float(number) * _UNITS[unit])
    if amount <= 0:
        raise ValueError(f"a memory limit must be > 0, got {value!r}")
    return amount


class Pool(Executor):
    """A reusable pool of worker processes; a drop-in ``concurrent.futures.Executor``.

    Args:
        workers: number of processes (default: the CPUs this process may use); 0 runs every
            call inline in this process, for debugging (no timeouts there).
        cluster: a Dask scheduler address (or Client, or LocalCluster): the same calls run on
            that cluster (a :class:`~corelane.engine.cluster.ClusterPool`; ``corelane[dask]``).
        initializer: called once in each worker before any task, with ``initargs``. If it raises,
            the pool fails with InitializerError instead of respawning workers forever.
        initargs: arguments for ``initializer``.
        start_method: "fork", "forkserver" or "spawn"; default: fork when this process has no
            threads of its own, else forkserver (forking a threaded parent can deadlock).
        log_level: when set, log records at this level from the workers reach this process's
            handlers, tagged with the worker's name.
        max_tasks_per_child: a worker that has run this many items finishes its current one
            and is replaced (for tasks that leak); no item is lost or run twice.
        max_worker_memory: the same when a worker's resident memory passes this many bytes
            (an int, or a string such as "2GiB" or "500MB"), checked between items.
    """

    def __new__(cls, *args: Any, cluster: Any = None, **kwargs: Any) -> Any:
        if cluster is not None:  # Pool(cluster="tcp://HOST:8786"): the same calls on Dask
            from corelane.engine.cluster import ClusterPool

            return ClusterPool(cluster)  # not a Pool, so Pool.__init__ is skipped
        return super().__new__(cls)

    def __init__(
        self,
        workers: int | None = None,
        *,
        cluster: Any = None,
        initializer: Callable[..., Any] | None = None,
        initargs: tuple[Any, ...] = (),
        start_method: str | None = None,
        log_level: int | str | None = None,
        max_tasks_per_child: int | None = None,
        max_worker_memory: int | str | None = None,
    ) -> None:
        if max_tasks_per_child is not None and max_tasks_per_child < 1:
            raise ValueError(f"max_tasks_per_child must be >= 1, got {max_tasks_per_child}")
        memory = parse_bytes(max_worker_memory) if max_worker_memory is not None else None
        limits = Limits(max_tasks_per_child, memory) if max_tasks_per_child or memory else None
        if workers is None:
            workers = _startmethod.available_cpus()
        if workers < 0:
            raise ValueError(f"workers must be >= 0, got {workers}")
        self.workers = workers
        self.start_method = start_method or _startmethod.default_start_method(limits is not None)
        self._shutdown = False
        self._manager: Manager | None = None
        if workers == 0:
            if initializer is not None:  # workers=0: everything runs here, for debugging
                initializer(*initargs)
            return
        ctx = _startmethod.get_context(self.start_method)
        init = dumps(initializer, "the initializer") if initializer else None
        init_args = _pickled_initargs(initargs) if initializer else None
        forwarder = None
        if log_level is not None:
            from corelane.engine._logs import LogForwarder

            forwarder = LogForwarder(ctx, log_level)
            forwarder.start()
        self._manager = Manager(workers, ctx, self.start_method, init, init_args, forwarder,
                                limits)
        # Dropped without close(): the manager finishes what was submitted, then stops.
        finalizer = weakref.finalize(self, _release, self._manager)
        finalizer.atexit = False  # type: ignore[misc]
        _live.add(self)
        _managers.add(self._manager)

    # ------------------------------------------------------------------ the Executor contract

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Run ``fn(*args, **kwargs)`` in a worker; return a Future for its result.

        The Future's exception is the task's own (worker traceback as ``__cause__``), or
        WorkerDied / TaskTimeout / NotPicklable from corelane. Cancelling it before it starts
        skips it. Raises RuntimeError (Closed) after shutdown, Broken if the pool broke, and
        NotPicklable (a PicklingError) at once for arguments that cannot be pickled, where
        ProcessPoolExecutor would put the error in the Future: the call site is where the fix is.
        """
        self._check_open()
        if self._manager is None:
            return inline_submit(fn, args, kwargs)
        fn_rec = _fn(fn)
        item = (args, kwargs)
        payload = dumps([item], f"the arguments of {describe(fn)}")
        future: Future[Any] = Future()
        jobs = self._manager.submits
        self._manager.add_submit(Chunk(jobs, fn_rec, [0], [item], payload, {0: future}))
        return future

    def map(
        self,
        fn: Callable[..., Any],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int | None = None,
        errors: Errors = "raise",
        progress: bool | Sink = False,
    ) -> Iterator[Any]:
        """``Executor.map``: ``fn(*args)`` for ``args`` in ``zip(*iterables)``, in order.

        The input is read at once and runs whether or not you iterate; results come lazily.
        ``timeout`` is a deadline in seconds for the whole call (TimeoutError on the next
        result past it), as in ProcessPoolExecutor; for a per-item limit use :meth:`imap`.
        A failure raises the task's own exception when its turn comes and cancels the rest.
        Extras: ``chunksize=None`` adapts, ``errors="return"`` puts a Failure in place,
        ``progress`` as in :meth:`imap`.
        """
        if not iterables:
            raise TypeError("map() needs at least one iterable")
        items = list(zip(*iterables)) if len(iterables) > 1 else list(iterables[0])  # noqa: B905
        mode = Mode.STAR if len(iterables) > 1 else Mode.ONE
        deadline = None if timeout is None else time.monotonic() + timeout
        runs = self._start(fn, items, mode, True, chunksize, progress, None, errors, "executor",
                           eager=True, deadline=deadline)
        return _flatten(runs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Take no more work; with ``wait``, return once submitted work is done and workers exit.

        ``cancel_futures`` cancels every submit and ``map`` not started yet. An ``imap`` iterator
        still open is cancelled (its consumer gets Cancelled): it only advances while consumed.
        """
        self._shutdown = True
        manager = self._manager
        if manager is None:
            return
        manager.close("the pool was closed before this run was consumed", cancel_futures)
        if wait:
            while manager.thread.is_alive():
                manager.thread.join(0.1)
        if not manager.thread.is_alive():
            manager.cleanup()

    # ------------------------------------------------------------------ corelane's runs

    def imap(
        self,
        fn: Callable[[Any], Any],
        iterable: Iterable[Any],
        *,
        chunksize: int | None = None,
        progress: bool | Sink = False,
        timeout: float | None = None,
        errors: Errors = "raise",
    ) -> Iterator[Any]:
        """Apply ``fn`` to every item, lazily; results in input order as they become available.

        Args:
            fn: a function of one argument (module-level, lambda or closure).
            iterable: the inputs; read only as fast as results are consumed (a bounded number
                of chunks in flight), so an endless generator runs in flat memory.
            chunksize: force this many items per message instead of adapting.
            progress: True for a bar on stderr, or a callable receiving corelane.events.
            timeout: seconds one item may run before its worker is replaced (TaskTimeout).
            errors: "raise" stops at the first failure (after yielding every earlier result);
                "return" puts a Failure in its place.

        Raises:
            TaskError: ``fn`` raised (with the worker's traceback; the original as __cause__).
            WorkerDied: a worker died on an item. TaskTimeout: an item overran ``timeout``.
            NotPicklable: ``fn`` or an item cannot cross to a worker, or a result back.

        Closing the iterator early cancels the rest of the run.
        """
        return _flatten(self._start(fn, iterable, Mode.ONE, True, chunksize, progress, timeout,
                                    errors, "task"))

    def imap_unordered(
        self,
        fn: Callable[[Any], Any],
        iterable: Iterable[Any],
        *,
        chunksize: int | None = None,
        progress: bool | Sink = False,
        timeout: float | None = None,
        errors: Errors = "raise",
    ) -> Iterator[Any]:
        """Like :meth:`imap`, but yields results as they finish."""
        return _flatten(self._start(fn, iterable, Mode.ONE, False, chunksize, progress, timeout,
                                    errors, "task"))

    def cancel(self, future: Future[Any], *, force: bool = False) -> bool:
        """Cancel a submitted call: ``future.cancel()`` while it waits; with ``force``, also
        while it runs: it fails with Cancelled at once and its worker is killed and replaced
        (other calls that worker held go to another). False when it had already finished."""
        if future.cancel():
            return True
        if not force or future.done() or self._manager is None:
            return False
        self._manager.force_cancel(future)
        return True

    async def asubmit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """``await pool.asubmit(fn, *args)``: :meth:`submit` for asyncio, never blocking the loop.
        Cancelling the awaiting task cancels the call if it has not started."""
        from corelane.engine._async import asubmit

        return await asubmit(self, fn, *args, **kwargs)

    def aimap(self, fn: Callable[[Any], Any], iterable: Iterable[Any] | AsyncIterable[Any], *,
              window: int | None = None, ordered: bool = True) -> AsyncIterator[Any]:
        """``async for r in pool.aimap(fn, items)``: results as they come (input order unless
        ``ordered=False``), at most ``window`` items in flight; closing it cancels the rest."""
        from corelane.engine._async import aimap

        return aimap(self, fn, iterable, window=window, ordered=ordered)

    def close(self, timeout: float | None = None) -> None:
        """Finish submitted work, then stop the workers and wait for them.

        Args:
            timeout: seconds to wait for outstanding work; past it the pool is terminated.
        """
        self.shutdown(wait=False)
        manager = self._manager
        if manager is None:
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        while manager.thread.is_alive():
            if deadline is not None and time.monotonic() > deadline:
                self.terminate()
                return
            manager.thread.join(0.1)
        manager.cleanup()

    def terminate(self) -> None:
        """Stop now: kill the workers, fail unfinished work with Cancelled, and wait (bounded)."""
        self._shutdown = True
        manager = self._manager
        if manager is None:
            return
        manager.closing = True
        manager.terminating = True
        manager.wake()
        if threading.current_thread() is not manager.thread:
            manager.thread.join(JOIN_TIMEOUT * 3)
        manager.cleanup()

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Literal[False]:
        # Ctrl-C (or SystemExit) means "stop now"; otherwise wait as the Executor contract says.
        if exc_type is not None and not issubclass(exc_type, Exception):
            self.terminate()
        else:
            self.shutdown(wait=True)
        return False

    def statistics(self) -> PoolStatistics:
        """Counters since the pool started: chunks sent, workers that died, workers retired."""
        manager = self._manager
        if manager is None:
            return PoolStatistics(0, 0, 0, 0)
        return PoolStatistics(self.workers, manager.chunks_sent, manager.deaths, manager.retired)

    @property
    def pids(self) -> list[int]:
        """Process ids of the current workers."""
        return self._manager.pids if self._manager is not None else []

    def __repr__(self) -> str:
        manager = self._manager
        broken = manager is not None and manager.broken is not None
        state = "broken" if broken else "closed" if self._shutdown else "open"
        return f"<corelane.Pool workers={self.workers} start_method={self.start_method} {state}>"

    # ------------------------------------------------------------------ the caller's side

    def _check_open(self) -> None:
        manager = self._manager
        if manager is not None and manager.broken is not None:
            raise fresh(manager.broken)
        if self._shutdown:
            raise Closed("cannot schedule new work after shutdown: the pool is closed")

    def _start(
        self,
        fn: Callable[..., Any],
        iterable: Iterable[Any],
        mode: Mode,
        ordered: bool,
        chunksize: int | None,
        progress: bool | Sink,
        timeout: float | None,
        errors: Errors,
        style: Style,
        *,
        eager: bool = False,
        deadline: float | None = None,
        owned: bool = False,
    ) -> Iterator[list[Any]]:
        """Validate, register the run, and return its iterator of result lists."""
        if errors not in ("raise", "return"):
            raise ValueError(f'errors must be "raise" or "return", got {errors!r}')
        if timeout is not None and timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        chunker = Chunker(max(1, self.workers), chunksize)  # checks chunksize
        self._check_open()
        total: int | None
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            total = None
        reporter = Reporter(make_sink(progress), total)
        if self._manager is None:
            inline = inline_runs(fn, iterable, mode)
            return self._consume(None, inline, ordered, errors, style, reporter, deadline, owned)
        source = (iterable if isinstance(iterable, list) else list(iterable)) if eager else None
        chunker.total = len(source) if source is not None else total
        fn_rec = _fn(fn)
        if chunker.fixed is None:
            chunker.per_item = fn_rec.per_item  # what its items cost last time: a hint
        job = Job(fn_rec, mode, chunker, timeout, source=source)
        self._manager.add_job(job)
        runs = None if eager else iter(iterable)
        return self._consume(job, runs, ordered, errors, style, reporter, deadline, owned)

    def _next_results(self, job: Job, deadline: float | None) -> list[Run]:
        manager = self._manager
        assert manager is not None
        while True:
            wait = 0.1 if deadline is None else min(0.1, deadline - time.monotonic())
            try:
                got = job.out.get(timeout=max(wait, 0.0))
            except queue.Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError("the map did not finish within its timeout") from None
                if manager.broken is not None:
                    raise fresh(manager.broken) from None
                if not manager.thread.is_alive():
                    raise Cancelled("the pool was terminated") from None
                continue
            if isinstance(got, BaseException):
                raise got
            return got

    def _consume(
        self,
        job: Job | None,
        it: Iterator[Any] | None,
        ordered: bool,
        errors: Errors,
        style: Style,
        reporter: Reporter,
        deadline: float | None,
        owned: bool,
    ) -> Iterator[list[Any]]:
        """Feed a lazy run's input and yield its results in lists, as ``ordered`` asks.

        A failure with ``errors="raise"`` surfaces in turn: in ordered runs, only once every
        earlier result has been yielded.
        """
        manager = self._manager
        order = InTurn(ordered, errors, style, reporter)
        cut = 0
        lazy = job is not None and job.source is None
        exhausted = not lazy
        end = len(job.source) if job is not None and job.source is not None else None
        # An input fed as it is produced (a Pipeline's link from the stage before) says how many
        # items it holds ready: chunks take those rather than wait to fill up, so a stage behind
        # a slow one starts at once, and behind a fast one still gets full chunks.
        # It also calls back when items arrive, so waiting for our results never leaves a
        # worker idle while there is input for it.
        ready: Callable[[], int] | None = getattr(it, "_ready_items", None) if lazy else None
        if ready is not None and job is not None:
            out = job.out
            it._listen(lambda: out.put([]))  # type: ignore[union-attr]  # an empty wake-up
        state = "cancelled"
        try:
            while True:
                early: list[Run] = []
                if job is not None and not exhausted:
                    assert it is not None and manager is not None
                    window = job.chunker.size(cut) * self.workers * WINDOW_CHUNKS_PER_WORKER
                    while cut - order.yielded < window:
                        size = job.chunker.size(cut)
                        if ready is not None:  # cut what is there; wait only with nothing out
                            have = ready()
                            if cut > order.yielded and (not have or (
                                    have < size
                                    and job.inflight + len(job.pending) >= self.workers)):
                                break  # our chunks out will bring results (collect them);
                                #        and while every worker has one, a full chunk gathers
                            size = max(1, min(size, have))
                        items = list(itertools.islice(it, size))
                        if not items:
                            exhausted = True
                            end = cut
                            break
                        chunk, failures = cut_chunk(job, cut, items)
                        if chunk is not None:
                            job.pending.append(chunk)
                            manager.wake()
                        early.extend(failures)
                        cut += len(items)
                if end is not None and order.yielded == end:
                    break
                if job is None:  # inline: one run at a time, computed now
                    assert it is not None
                    got = next(it, None)
                    if got is None:
                        break
                    batch = [got]
                else:
                    batch = early or self._next_results(job, deadline)
                yield from order.emit(batch)
            state = "finished"
        except KeyboardInterrupt:
            self.terminate()
            raise
        except GeneratorExit:
            raise
        except BaseException:
            state = "failed"
            raise
        finally:
            if job is not None and manager is not None:
                manager.close_job(job)
            reporter.finish(state)
            if owned:
                if state == "finished":
                    self.shutdown(wait=False)  # workers exit in the background
                else:
                    self.terminate()


class _Results(itertools.chain[Any]):
    """A run's results, item by item, at C speed over the result lists as they arrive
    (``list()`` of it costs what ``extend`` does; a generator yielding item by item cost 4x
    more per item, and cutting lists into blocks to let go of passed results sooner cost 3x
    more, without lowering the peak: a list is whole in memory when it arrives). ``close()``
    cancels the rest of the run, as closing a generator would; so does dropping it."""

    __slots__ = ("_runs",)
    _runs: Iterator[list[Any]]

    def close(self) -> None:
        self._runs.close()  # type: ignore[attr-defined]  # a generator (every _start's run is)


def _flatten(runs: Iterator[list[Any]]) -> Iterator[Any]:
    """Yield item by item; closing this closes (cancels) the run."""
    results = cast(_Results, _Results.from_iterable(runs))
    results._runs = runs
    return results


def _collect(runs: Iterator[list[Any]]) -> list[Any]:
    out: list[Any] = []
    for values in runs:
        out.extend(values)
    return out


_fns: weakref.WeakKeyDictionary[Any, Fn] = weakref.WeakKeyDictionary()
_fns_lock = threading.Lock()


def _fn(fn: Callable[..., Any]) -> Fn:
    """``fn`` pickled. A function that pickles by name (module-level) is pickled once: its
    pickle is the name. Anything else is pickled again at every call (a callable's state, a
    closure's values, a notebook's globals may have changed since the last), and its record
    is reused while the pickle comes out the same. Either way workers keep their unpickled
    copy, the record keeps what its items cost last time, and it is shared by every pool but
    kept only while ``fn`` itself lives (weakly, never beyond)."""
    if not callable(fn):
        raise TypeError(f"expected a callable, got {describe(fn)}")
    hit = None
    with _fns_lock, contextlib.suppress(TypeError):  # not weakly referable: no record kept
        hit = _fns.get(fn)
        if hit is not None and hit.by_name:
            return hit
    data = dumps(fn)
    if hit is not None and hit.data == data:
        return hit
    rec = Fn(data)
    rec.by_name = isinstance(fn, _BY_NAME) and b"cloudpickle" not in data
    with _fns_lock, contextlib.suppress(TypeError):
        _fns[fn] = rec
    return rec


_BY_NAME = (types.FunctionType, types.BuiltinFunctionType)


def _pickled_initargs(initargs: tuple[Any, ...]) -> InitArgs:
    """``initargs`` pickled once for every worker start; or the tuple itself when it holds
    objects that multiprocessing lets travel only as a process starts (a Queue, Lock, Value,
    Event: inherited under fork, pickled by ``Process.start`` otherwise), which is how
    ProcessPoolExecutor and multiprocessing.Pool hand them to their workers."""
    try:
        return dumps(initargs, "the initargs")
    except NotPicklable as exc:
        if "through inheritance" not in str(exc):  # multiprocessing's assert_spawning
            raise
        return tuple(initargs)


def _release(manager: Manager) -> None:
    """Finalizer of a Pool collected without close(): finish its work in the background."""
    manager.close("the pool was collected before this run was consumed")


def _exit_pools() -> None:
    """At interpreter exit, as ProcessPoolExecutor does: submitted work finishes, workers exit."""
    for pool in list(_live):
        with contextlib.suppress(Exception):
            pool.shutdown(wait=True)
    for manager in list(_managers):  # pools already collected, or shut down without waiting
        _release(manager)
        manager.thread.join(JOIN_TIMEOUT * 3)


threading._register_atexit(_exit_pools)  # type: ignore[attr-defined]
