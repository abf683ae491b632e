"""ClusterPool: the engine's contract on a Dask cluster, for work that outgrows one machine.

::

    caller's thread                                                  scheduler, workers
    reads the input, cuts chunks ──client.map(run_chunk, pure=False)──> one task per chunk
    (Chunker; 3-8 chunks per worker   (the window's new chunks in       (_cluster_task.py:
     thread in flight)                 one message)                      results pickled by
    turns results into values     <──client.gather(every task done)──    corelane, one flat
    or Failures, orders them,        (done futures queued by Dask's      list per chunk)
    retries, reports progress         callback thread)

The calls, results, ordering and errors are :class:`corelane.Pool`'s; Dask moves the chunks.
Chunks, not items, are shipped, sized by the same :class:`~corelane.engine.chunking.Chunker`
from measured per-item time, so Dask's ~1 ms per task does not dominate. Lazy input is read a
window at a time: ``Client.map(..., pure=False)`` over the chunks cut so far (``Client.map``
over the input itself would read it whole and merge identical calls); a lazy input of unknown
length sends each chunk as soon as it is read, since the next read may block. The results of
every task done by the time the caller looks are fetched in one ``gather`` (asked again
beside the first when it stalls on a worker that just died: ``_cluster_fetch.py``). Where
corelane's local engine watches its own processes, here Dask does: when workers die running a
task, the scheduler re-runs it elsewhere until ``distributed.scheduler.allowed-failures`` is
spent, then fails it with ``KilledWorker``; a chunk that ends so is re-sent one item per task,
so only the item that kills its workers fails, with :class:`~corelane.errors.WorkerDied`.

Per-item ``timeout=`` runs each item in a helper thread of the task (Dask runs tasks in
threads, which no signal can stop); an overdue item fails with TaskTimeout and the client asks
the worker's nanny to restart that worker, which ends the runaway call.

Dask is imported only when a ClusterPool is made: ``import corelane`` never imports it.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import queue
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from typing import Any, Literal

from corelane.engine._cluster_fetch import fetch, lost
from corelane.engine._cluster_task import ERROR, RELOAD, run_chunk
from corelane.engine._protocol import Mode
from corelane.engine._records import Fn
from corelane.engine._serialize import describe, dumps, loads
from corelane.engine.chunking import Chunker
from corelane.engine.pool import Errors, Style, _flatten, _fn
from corelane.engine.results import Failure, InTurn
from corelane.errors import Broken, Cancelled, Closed, NotPicklable, TaskTimeout, WorkerDied
from corelane.progress import Reporter, Sink, make_sink

__all__ = ["ClusterPool", "CONNECT_TIMEOUT", "connect"]

CONNECT_TIMEOUT = 10.0  # s to reach the scheduler before Broken (a typo fails fast, not never)
WINDOW_CHUNKS_PER_WORKER = 3  # lazy runs: chunks in flight per worker thread (feeds, costs memory)
# ... more when chunks are short (a fixed small chunksize, cheap items): a task's round trip
# through the scheduler takes milliseconds, so 3 short chunks a worker leave it idle between
# them. The window then holds about WINDOW_SECONDS of work per worker thread, at most this many.
MAX_WINDOW_CHUNKS_PER_WORKER = 8
WINDOW_SECONDS = 0.05
# A function whose pickle is larger than this (a closure holding data) is scattered to the
# cluster once and its Future passed to every task, instead of its bytes riding with each one.
SCATTER_ABOVE = 64 * 1024
POLL = 0.1  # s between checks of deadlines and of the client while waiting for a chunk
LOST_RESENDS = 3  # a chunk whose result Dask lost (its worker died after it) runs again
# The Chunker aims at ~50 ms of work per chunk, right for a local round trip of ~0.1 ms; a Dask
# task costs ~1-3 ms (scheduler, worker, result fetch), so the measured time is told to it scaled
# down by this factor and chunks (and their floor in time) come out this many times longer.
# Larger: less overhead; smaller: a shorter tail and finer progress.
CHUNK_SCALE = 4.0
RESTART_TIMEOUT = 30.0  # s for a nanny to restart a worker whose item overran its timeout

Run = tuple[int, list[Any], int]  # (first index, values, failures among them), as in the Pool


def _distributed() -> Any:
    """The ``distributed`` module, or an ImportError that says how to install it."""
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(
            "corelane's cluster mode needs Dask distributed, which is not installed: "
            "pip install 'corelane[dask]'"
        ) from exc
    return distributed


def connect(cluster: Any, timeout: float = CONNECT_TIMEOUT) -> tuple[Any, bool]:
    """A ``distributed.Client`` for ``cluster``, and whether we own (and later close) it.

    ``cluster`` is a scheduler address (``"tcp://HOST:8786"``), a ``distributed.Client`` (used
    as it is, never closed here) or a cluster object such as ``distributed.LocalCluster``.
    Raises Broken naming the address when the scheduler cannot be reached within ``timeout``.
    """
    distributed = _distributed()
    if isinstance(cluster, distributed.Client):
        return cluster, False
    address = getattr(cluster, "scheduler_address", cluster)
    try:
        client = distributed.Client(cluster, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise Broken(
            f"cannot reach the Dask scheduler at {address} within {timeout:g} s ({exc}); "
            f"is `dask scheduler` running there, and the port open?"
        ) from exc
    return client, True


class _Chunk:
    """Items shipped as one Dask task, with their positions in the input."""

    __slots__ = ("indices", "items", "lost")

    def __init__(self, indices: list[int], items: list[Any], lost: int = 0) -> None:
        self.indices = indices
        self.items = items
        self.lost = lost  # times Dask lost its result (its worker died after it finished)


class _Call:
    """A submit's pickled call, sent as one Dask task (again if Dask loses its result)."""

    __slots__ = ("data", "fn_data", "item", "lost")

    def __init__(self, data: bytes, fn_data: Any, item: Any) -> None:
        self.data = data
        self.fn_data = fn_data
        self.item = item  # (args, kwargs), for the Failure of a call that cannot run
        self.lost = 0  # times Dask lost its result


class _Run:
    """One imap/map call: its function, its chunks in flight and the queue they finish into."""

    def __init__(self, fn_data: Any, mode: Mode, chunker: Chunker,
                 timeout: float | None) -> None:
        self.fn_data = fn_data
        self.mode = mode
        self.chunker = chunker
        self.timeout = timeout
        self.live: dict[str, tuple[Any, _Chunk]] = {}  # Dask key -> (its future, the chunk)
        self.done: queue.Queue[Any] = queue.Queue()
        self.cancelled: BaseException | None = None


class ClusterPool(Executor):
    """:class:`corelane.Pool`'s calls, results and errors, run on a Dask cluster.

    Args:
        cluster: the scheduler's address (``"tcp://HOST:8786"``), a ``distributed.Client``, or
            a cluster object (``distributed.LocalCluster(n_workers=2)``).
        connect_timeout: seconds to reach the scheduler; past them, Broken.

    The functions and items must be importable or picklable on the workers (module-level code
    installed there, or lambdas and closures, which travel by value), and corelane must be
    installed on every worker. Files a task opens are opened on its worker's machine.
    """

    def __init__(self, cluster: Any, *, connect_timeout: float = CONNECT_TIMEOUT) -> None:
        self.client, self._owned = connect(cluster, connect_timeout)
        self.address = str(self.client.scheduler.address)
        self._shutdown = False
        self._lock = threading.Lock()
        self._submits: dict[str, tuple[Any, Future[Any]]] = {}
        self._runs: weakref.WeakSet[_Run] = weakref.WeakSet()
        # a function's record (engine.pool._fn) -> the Future of its scattered pickle, released
        # with the record (that is, with the function, or when its pickle changes)
        self._scattered: weakref.WeakKeyDictionary[Fn, Any] = weakref.WeakKeyDictionary()

    @property
    def workers(self) -> int:
        """Worker threads in the cluster now (each runs one chunk at a time)."""
        return int(sum(self.client.nthreads().values()))

    # ------------------------------------------------------------------ the Executor contract

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Run ``fn(*args, **kwargs)`` on a worker; return a concurrent.futures.Future.

        Its exception is the task's own (worker traceback as ``__cause__``), or WorkerDied /
        NotPicklable from corelane. Cancelling it cancels the Dask task.
        """
        self._check_open()
        fn_data = self._fn(fn)
        data = dumps([(args, kwargs)], f"the arguments of {describe(fn)}")
        future: Future[Any] = Future()
        self._submit_task(_Call(data, fn_data, (args, kwargs)), future)
        return future

    def _submit_task(self, call: _Call, future: Future[Any]) -> None:
        """Send ``call`` as one Dask task that settles ``future`` (again, when Dask lost the
        result of the last one)."""
        task = self.client.submit(run_chunk, call.data, 1, call.fn_data, int(Mode.KWARGS), None,
                                  pure=False)
        with self._lock:
            self._submits[task.key] = (task, future)
        future.add_done_callback(lambda f: self._cancel_task(task) if f.cancelled() else None)
        task.add_done_callback(lambda t: self._settle(t, future, call))

    def map(
        self,
        fn: Callable[..., Any],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int | None = None,
        errors: Errors = "raise",
        progress: bool | Sink = False,
    ) -> Iterator[Any]:
        """``Executor.map``: read at once, sent at once, results lazily in order; ``timeout``
        is a deadline for the whole call. A failure raises the task's own exception."""
        if not iterables:
            raise TypeError("map() needs at least one iterable")
        items = list(zip(*iterables)) if len(iterables) > 1 else list(iterables[0])  # noqa: B905
        mode = Mode.STAR if len(iterables) > 1 else Mode.ONE
        deadline = None if timeout is None else time.monotonic() + timeout
        return _flatten(self._start(fn, items, mode, True, chunksize, progress, None, errors,
                                    "executor", eager=True, deadline=deadline))

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Take no more work; ``cancel_futures`` cancels pending submits; with ``wait``, return
        once submitted work is done. Open imap iterators are cancelled. Closes our client."""
        self._shutdown = True
        for run in list(self._runs):
            run.cancelled = Cancelled("the pool was closed before this run was consumed")
        with self._lock:
            pending = [future for _, future in self._submits.values()]
        if cancel_futures:
            for future in pending:
                future.cancel()
        if wait:
            for future in pending:
                with contextlib.suppress(BaseException):
                    future.exception()
            self._close_client()

    # ------------------------------------------------------------------ corelane's runs

    def imap(self, fn: Callable[[Any], Any], iterable: Iterable[Any], *,
             chunksize: int | None = None, progress: bool | Sink = False,
             timeout: float | None = None, errors: Errors = "raise") -> Iterator[Any]:
        """As :meth:`corelane.Pool.imap`: lazy, in input order, a bounded window in flight.
        ``timeout`` (seconds per item) runs items one per task unless ``chunksize`` says."""
        return _flatten(self._start(fn, iterable, Mode.ONE, True, chunksize, progress, timeout,
                                    errors, "task"))

    def imap_unordered(self, fn: Callable[[Any], Any], iterable: Iterable[Any], *,
                       chunksize: int | None = None, progress: bool | Sink = False,
                       timeout: float | None = None, errors: Errors = "raise") -> Iterator[Any]:
        """Like :meth:`imap`, but yields results as they finish."""
        return _flatten(self._start(fn, iterable, Mode.ONE, False, chunksize, progress, timeout,
                                    errors, "task"))

    def close(self, timeout: float | None = None) -> None:
        """Finish submitted work, then close the client; past ``timeout`` s, terminate."""
        self.shutdown(wait=False)
        with self._lock:
            pending = [future for _, future in self._submits.values()]
        deadline = None if timeout is None else time.monotonic() + timeout
        for future in pending:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                future.exception(left)
            except TimeoutError:
                self.terminate()
                return
            except BaseException:  # noqa: BLE001 - cancelled: nothing to wait for
                pass
        self._close_client()

    def terminate(self) -> None:
        """Stop now: cancel every task of this pool (running ones finish on their workers,
        unseen), fail unfinished submits with Cancelled, and close the client."""
        self._shutdown = True
        for run in list(self._runs):
            run.cancelled = Cancelled("the pool was terminated")
            self._cancel_tasks([task for task, _ in list(run.live.values())])
        with self._lock:
            submits = list(self._submits.values())
            self._submits.clear()
        self._cancel_tasks([task for task, _ in submits])
        for _, future in submits:  # taken from _submits under the lock: ours to settle
            if future.set_running_or_notify_cancel():
                future.set_exception(Cancelled("the pool was terminated"))
        self._close_client()

    def __enter__(self) -> ClusterPool:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Literal[False]:
        if exc_type is not None and not issubclass(exc_type, Exception):
            self.terminate()  # Ctrl-C, SystemExit: stop now
        else:
            self.shutdown(wait=True)
        return False

    def __repr__(self) -> str:
        state = "closed" if self._shutdown else "open"
        return f"<corelane.ClusterPool scheduler={self.address} {state}>"

    # ------------------------------------------------------------------ the caller's side

    def _check_open(self) -> None:
        if self._shutdown:
            raise Closed("cannot schedule new work after shutdown: the pool is closed")
        if self.client.status in ("closing", "closed"):
            raise Broken(f"the Dask client of {self.address} is closed")

    def _fn(self, fn: Callable[..., Any]) -> Any:
        """The pickled function as tasks take it: its bytes, or, past SCATTER_ABOVE, the
        Future of the bytes scattered once (each worker fetches them once, not per chunk).
        When it is pickled again follows the local pool's rule (:func:`engine.pool._fn`)."""
        rec = _fn(fn)
        if len(rec.data) <= SCATTER_ABOVE:
            return rec.data
        with self._lock:
            shipped = self._scattered.get(rec)
        if shipped is None:
            shipped = self.client.scatter(rec.data, hash=True)
            with self._lock:
                self._scattered[rec] = shipped
        return shipped

    def _close_client(self) -> None:
        if self._owned and self.client.status not in ("closing", "closed"):
            with contextlib.suppress(Exception):
                self.client.close(timeout=5)

    def _cancel_task(self, task: Any) -> None:
        with self._lock:
            self._submits.pop(task.key, None)
        self._cancel_tasks([task])

    def _cancel_tasks(self, tasks: list[Any]) -> None:
        if tasks and self.client.status == "running":
            with contextlib.suppress(Exception):
                self.client.cancel(tasks, force=True)

    def _settle(self, task: Any, future: Future[Any], call: _Call) -> None:
        """A submit's task is done (Dask's callback thread): complete its Future."""
        with self._lock:
            if self._submits.pop(task.key, None) is None:
                return  # terminated (the Future is settled there) or cancelled
        data = fetch(self.client, [task]).get(task.key)
        if lost(task, data) and call.lost < LOST_RESENDS and not future.cancelled():
            call.lost += 1  # its worker died after it finished: run it again (bounded)
            with contextlib.suppress(Exception):  # a closed client: the Future's error below
                self._submit_task(call, future)
                return
        if not future.set_running_or_notify_cancel():
            return
        try:
            runs = self._outcomes(None, task, _Chunk([0], [call.item]), data)
        except BaseException as exc:  # noqa: BLE001 - Broken and the like: the future's error
            future.set_exception(exc)
            return
        value = runs[0][1][0]
        if isinstance(value, Failure):
            future.set_exception(value.raised())
        else:
            future.set_result(value)

    def _restart(self, address: str) -> None:
        """Restart a worker whose item overran its timeout (its nanny starts a fresh one)."""
        def restart() -> None:
            with contextlib.suppress(Exception):
                self.client.restart_workers([address], timeout=RESTART_TIMEOUT,
                                            raise_for_error=False)

        threading.Thread(target=restart, name="corelane-cluster-restart", daemon=True).start()

    def _send(self, run: _Run, chunks: list[_Chunk]) -> list[Run]:
        """Submit each chunk as one task, all in one message to the scheduler; items that
        cannot be pickled come back as failures."""
        failures: list[Run] = []
        sent: list[tuple[_Chunk, bytes]] = []
        for chunk in chunks:
            try:
                sent.append((chunk, dumps(chunk.items)))
                continue
            except NotPicklable:
                pass
            keep = _Chunk([], [])
            for index, item in zip(chunk.indices, chunk.items, strict=True):
                try:
                    dumps(item)
                except NotPicklable as exc:
                    err = NotPicklable(f"item {index} ({describe(item)})", exc.reason)
                    failures.append((index, [Failure(index, item, err)], 1))
                else:
                    keep.indices.append(index)
                    keep.items.append(item)
            if keep.items:
                sent.append((keep, dumps(keep.items)))
        if not sent:
            return failures
        # Client.map with pure=False: a fresh key per task (no merging of equal chunks).
        tasks = self.client.map(run_chunk, [data for _, data in sent],
                                [len(chunk.items) for chunk, _ in sent], fn_data=run.fn_data,
                                mode=int(run.mode), timeout=run.timeout, pure=False)
        for task, (chunk, _) in zip(tasks, sent, strict=True):
            run.live[task.key] = (task, chunk)
            task.add_done_callback(run.done.put)
        return failures

    def _outcomes(self, run: _Run | None, task: Any, chunk: _Chunk,
                  data: bytes | None) -> list[Run]:
        """Turn a finished task (``data``: its result) into runs of results; resend what must
        run item by item."""
        distributed = _distributed()
        status = task.status
        if data is not None:
            if data == RELOAD and run is not None:
                return self._split(run, chunk)
            values, problems, elapsed, _pid = loads(data)
            if run is not None:
                run.chunker.observe(elapsed / CHUNK_SCALE, len(chunk.items))
            for position, outcome in problems.items():  # only the items that did not return
                index, item = chunk.indices[position], chunk.items[position]
                if outcome[0] == ERROR:
                    values[position] = Failure(index, item, outcome[1], outcome[2])
                else:  # TIMEOUT: (kind, worker address, worker pid)
                    assert run is not None and run.timeout is not None
                    self._restart(outcome[1])
                    values[position] = Failure(index, item,
                                               TaskTimeout(index, run.timeout, outcome[2]))
            return _contiguous(chunk.indices, values, len(problems))
        if status == "error":
            exc = task.exception()
            if isinstance(exc, distributed.KilledWorker):
                if run is not None and len(chunk.items) > 1:
                    return self._split(run, chunk)
                index = chunk.indices[0]
                died = WorkerDied(index if run else None, None, None, f"{_GAVE_UP} ({exc})")
                return [(index, [Failure(index, chunk.items[0], died)], 1)]
            raise Broken(f"the Dask workers could not run corelane's task: {exc!r} (is corelane "
                         f"installed on every worker?)")
        if lost(task, data) and run is not None and chunk.lost < LOST_RESENDS:
            # Its worker died holding the finished result: run it again (bounded).
            return self._send(run, [_Chunk(chunk.indices, chunk.items, chunk.lost + 1)])
        raise Broken(f"the Dask scheduler at {self.address} lost a task ({status}): was the "
                     f"client disconnected, or the task cancelled elsewhere?")

    def _split(self, run: _Run, chunk: _Chunk) -> list[Run]:
        return self._send(run, [_Chunk([index], [item])
                                for index, item in zip(chunk.indices, chunk.items, strict=True)])

    def _next_done(self, run: _Run, deadline: float | None) -> list[Run]:
        while True:
            if run.cancelled is not None:
                raise run.cancelled
            wait = POLL if deadline is None else min(POLL, deadline - time.monotonic())
            try:
                tasks = [run.done.get(timeout=max(wait, 0.0))]
            except queue.Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError("the map did not finish within its timeout") from None
                if self.client.status in ("closing", "closed"):
                    raise Broken(f"the Dask client of {self.address} closed") from None
                continue
            with contextlib.suppress(queue.Empty):
                while True:  # every task done by now: their results in one gather
                    tasks.append(run.done.get_nowait())
            tasks = [task for task in tasks if task.key in run.live]
            datas = fetch(self.client, tasks)
            runs: list[Run] = []
            for task in tasks:
                _, chunk = run.live.pop(task.key)
                runs.extend(self._outcomes(run, task, chunk, datas.get(task.key)))
            if tasks:
                return runs

    def _start(self, fn: Callable[..., Any], iterable: Iterable[Any], mode: Mode, ordered: bool,
               chunksize: int | None, progress: bool | Sink, timeout: float | None,
               errors: Errors, style: Style, *, eager: bool = False,
               deadline: float | None = None, owned: bool = False) -> Iterator[list[Any]]:
        """Validate, start the run (an eager one is sent whole now), return its result lists."""
        if errors not in ("raise", "return"):
            raise ValueError(f'errors must be "raise" or "return", got {errors!r}')
        if timeout is not None and timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        if timeout is not None and chunksize is None:
            chunksize = 1  # one item per task: an overdue item holds up no other
        self._check_open()
        slots = max(1, self.workers)
        chunker = Chunker(slots, chunksize)
        total: int | None
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            total = None
        chunker.total = total
        run = _Run(self._fn(fn), mode, chunker, timeout)
        self._runs.add(run)
        reporter = Reporter(make_sink(progress), total)
        it = iter(iterable)
        early: list[Run] = []
        end = None
        if eager:
            cut = 0
            chunks = []
            while items := list(itertools.islice(it, chunker.size(cut))):
                chunks.append(_Chunk(list(range(cut, cut + len(items))), items))
                cut += len(items)
            early.extend(self._send(run, chunks))
            end = cut
        return self._consume(run, it, early, end, slots, ordered, errors, style, reporter,
                             deadline, owned)

    def _consume(self, run: _Run, it: Iterator[Any], early: list[Run], end: int | None,
                 slots: int, ordered: bool, errors: Errors, style: Style, reporter: Reporter,
                 deadline: float | None, owned: bool) -> Iterator[list[Any]]:
        """Feed a lazy run a window at a time and yield its results as ``ordered`` asks; a
        failure with ``errors="raise"`` surfaces in turn (after every earlier result)."""
        order = InTurn(ordered, errors, style, reporter)
        cut = end or 0
        state = "cancelled"
        try:
            while True:
                if end is None:
                    in_flight = slots * _window_chunks(run.chunker)
                    window = run.chunker.size(cut) * in_flight
                    # An input of known length is in memory: its chunks go in one message,
                    # and only the chunks in flight are bounded (counting items not yet
                    # yielded instead would starve the workers while one slow chunk holds
                    # up the order). Another may block between items (a pipeline's queue, a
                    # slow generator): each chunk goes as soon as it is read, and what is
                    # read but not yet yielded is bounded, which keeps memory flat.
                    chunks: list[_Chunk] = []
                    while (len(run.live) + len(chunks) < in_flight if run.chunker.total is not None
                           else cut - order.yielded < window):
                        items = list(itertools.islice(it, run.chunker.size(cut)))
                        if not items:
                            end = cut
                            break
                        chunks.append(_Chunk(list(range(cut, cut + len(items))), items))
                        cut += len(items)
                        if run.chunker.total is None:
                            early.extend(self._send(run, chunks))
                            chunks = []
                    if chunks:
                        early.extend(self._send(run, chunks))
                if end is not None and order.yielded == end:
                    break
                batch, early = (early, []) if early else (self._next_done(run, deadline), [])
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
            self._cancel_tasks([task for task, _ in run.live.values()])
            run.live.clear()
            self._runs.discard(run)
            reporter.finish(state)
            if owned and state == "finished":
                self._close_client()
            elif owned:
                self.terminate()


def _window_chunks(chunker: Chunker) -> int:
    """Chunks in flight per worker thread: 3, or up to 8 when chunks are short."""
    if chunker.per_item is None:
        return WINDOW_CHUNKS_PER_WORKER
    chunk_seconds = chunker.per_item * CHUNK_SCALE * chunker.size()
    wanted = math.ceil(WINDOW_SECONDS / max(chunk_seconds, 1e-9))
    return max(WINDOW_CHUNKS_PER_WORKER, min(MAX_WINDOW_CHUNKS_PER_WORKER, wanted))


_GAVE_UP = "Dask gave up on it after the workers running it died (its allowed-failures were spent)"


def _contiguous(indices: list[int], values: list[Any], failed: int) -> list[Run]:
    """Split a chunk's values into runs of consecutive indices (items dropped before sending
    leave gaps), each with its count of failures (``failed`` in all)."""
    if indices[-1] - indices[0] == len(indices) - 1:  # increasing: no gap, the usual chunk
        return [(indices[0], values, failed)]
    runs: list[Run] = []
    start = 0
    for k in range(1, len(indices) + 1):
        if k == len(indices) or indices[k] != indices[k - 1] + 1:
            part = values[start:k]
            n_failed = sum(type(v) is Failure for v in part) if failed else 0
            runs.append((indices[start], part, n_failed))
            start = k
    return runs
