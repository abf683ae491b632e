"""Pool: worker lifecycle, dispatch, result collection, respawn and shutdown.

::

    caller thread (imap generator)            manager thread                    worker processes
    ------------------------------            --------------                    ----------------
    reads the input lazily, cuts chunks  -->  job.pending  --> idle worker --> run chunk, report
    (sizes from the Chunker), pickles         waits in ONE place on: result     which item runs
    them, bounded by a window                 pipes, worker sentinels and a     in a shared slot
                                              wakeup pipe; watches timeouts
    yields results (ordered or not)  <------  job.out  <---------------------- results per chunk
                                                                               (and every 0.1 s)

A worker that dies fails exactly the item its slot names (WorkerDied, or TaskTimeout when we
killed it for overrunning); the rest of its chunks go back to the front of their job's queue and
a new worker takes its place. All policy lives in the manager thread; workers only run chunks.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import queue
import threading
import time
import traceback
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from multiprocessing.connection import wait
from typing import Any, Literal

from corelane.engine import _startmethod
from corelane.engine._protocol import (
    SLOT_CANCEL,
    SLOT_JOB,
    SLOT_SIZE,
    SLOT_SPAN,
    SLOT_START,
    Msg,
    unpack_span,
)
from corelane.engine._serialize import describe, dumps, loads
from corelane.engine.chunking import Chunker
from corelane.engine.results import Failure
from corelane.engine.worker import worker_main
from corelane.errors import (
    Broken,
    Cancelled,
    Closed,
    InitializerError,
    InternalError,
    NotPicklable,
    TaskTimeout,
    WorkerDied,
)
from corelane.progress import Reporter, Sink, make_sink

Errors = Literal["raise", "return"]

# Tuning constants, each with its trade-off.
WINDOW_CHUNKS_PER_WORKER = 3  # chunks cut ahead per worker: more keeps workers fed, costs memory
IDLE_TICK = 0.5  # s between liveness checks when nothing is timed (sentinels wake us anyway)
TIMED_TICK = 0.02  # s between checks while a timeout or a cancellation is being watched
CANCEL_GRACE = 0.5  # s a cancelled job's chunk may go on (it stops between items) before its
#                     worker is killed and replaced; short, since a cancel means "stop now"
STARTUP_FAILURES = 3  # workers dying before they are ready, in a row, before the pool gives up
CHUNK_DEATHS = 3  # deaths with no item to blame before a chunk's items fail as WorkerDied
JOIN_TIMEOUT = 2.0  # s to wait for a worker to exit after SHUTDOWN before it is killed
FN_CACHE = 64  # functions remembered by id for submit()

_job_ids = itertools.count(1)
_live_pools: weakref.WeakSet[Pool] = weakref.WeakSet()
_parent_fds: set[int] = set()  # parent-side pipe ends of every pool's workers (and wake pipes)
_spawn_lock = threading.Lock()  # one worker start at a time, process-wide (see _spawn_one)


# A run of results for consecutive input indices: (first index, values, failures among them).
# Failed items hold a Failure in their place in ``values``.
Run = tuple[int, list[Any], int]


class _Chunk:
    """Items sent to a worker as one message; ``done`` counts the positions with results."""

    __slots__ = ("job", "indices", "items", "payload", "done", "deaths", "precise")

    def __init__(self, job: _Job, indices: list[int], items: list[Any], payload: bytes):
        self.job = job
        self.indices = indices
        self.items = items
        self.payload = payload
        self.done = 0
        self.deaths = 0
        self.precise = False  # one item at a time, each timed (set when isolating a crash)

    def runs(self, first: int, values: list[Any], failures: dict[int, Any]) -> list[Run]:
        """Results for positions ``first..`` as runs of consecutive input indices."""
        for pos, (exc, text) in failures.items():
            values[pos - first] = Failure(self.indices[pos], self.items[pos], exc, text)
        indices = self.indices[first : first + len(values)]
        if not indices:
            return []
        if indices[-1] - indices[0] == len(indices) - 1:  # the usual case: one run
            return [(indices[0], values, len(failures))]
        runs: list[Run] = []
        start = 0
        for k in range(1, len(indices) + 1):
            if k == len(indices) or indices[k] != indices[k - 1] + 1:
                part = values[start:k]
                runs.append((indices[start], part, sum(isinstance(v, Failure) for v in part)))
                start = k
        return runs


class _Job:
    """One run (an imap call or a submit) as the manager sees it."""

    def __init__(
        self,
        fn_id: int,
        fn_bytes: bytes,
        star: bool,
        chunker: Chunker,
        timeout: float | None,
        future: Future[Any] | None = None,
    ) -> None:
        self.id = next(_job_ids)
        self.fn_id = fn_id
        self.fn_bytes = fn_bytes
        self.star = star
        self.chunker = chunker
        self.timeout = timeout
        self.future = future
        self.pending: deque[_Chunk] = deque()
        self.out: queue.SimpleQueue[list[Run] | BaseException] = queue.SimpleQueue()
        self.inflight = 0  # chunks on workers
        self.closed = False  # the caller is done with it (finished, cancelled or failed)

    def deliver(self, runs: list[Run]) -> None:
        if self.closed or not runs:
            return
        if self.future is None:
            self.out.put(runs)
            return
        value = runs[0][1][0]
        if not self.future.done():
            if isinstance(value, Failure):
                self.future.set_exception(value.to_error())
            else:
                self.future.set_result(value)
        self.closed = True

    def fail(self, error: BaseException) -> None:
        if self.closed:
            return
        if self.future is None:
            self.out.put(error)
        elif not self.future.done() and (
            self.future.running() or self.future.set_running_or_notify_cancel()
        ):
            self.future.set_exception(error)
        self.closed = True


class _Worker:
    __slots__ = (
        "proc", "conn", "slot", "mv", "mvd", "inflight", "fn_ids", "ready", "kill_reason",
        "cancel_seen",
    )

    def __init__(self, proc: Any, conn: Any, slot: Any) -> None:
        self.proc = proc
        self.conn = conn
        self.slot = slot
        self.mv = memoryview(slot).cast("B").cast("q")
        self.mvd: Any = memoryview(slot).cast("B").cast("d")
        self.inflight: deque[_Chunk] = deque()
        self.fn_ids: set[int] = set()
        self.ready = False
        self.kill_reason: tuple[str, int, float] | None = None  # ("timeout"|"cancel", pos, s)
        self.cancel_seen = 0.0  # when the parent first saw the running job cancelled


class Pool:
    """A reusable pool of worker processes.

    Args:
        workers: number of processes (default: the CPUs this process may use).
        initializer: called once in each worker before any task, with ``initargs``. If it raises,
            the pool fails with InitializerError instead of respawning workers forever.
        initargs: arguments for ``initializer``.
        start_method: "fork", "forkserver" or "spawn"; default: fork when this process has no
            threads of its own, else forkserver (forking a threaded parent can deadlock).
        log_level: when set, log records at this level from the workers reach this process's
            handlers, tagged with the worker's name.
    """

    def __init__(
        self,
        workers: int | None = None,
        *,
        initializer: Callable[..., Any] | None = None,
        initargs: tuple[Any, ...] = (),
        start_method: str | None = None,
        log_level: int | str | None = None,
    ) -> None:
        if workers is None:
            workers = _startmethod.available_cpus()
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.workers = workers
        self.start_method = start_method or _startmethod.default_start_method()
        self._ctx = _startmethod.get_context(self.start_method)
        self._init_bytes = dumps(initializer, "the initializer") if initializer else None
        self._initargs_bytes = dumps(initargs, "the initargs") if initializer else None
        self._log = None
        if log_level is not None:
            from corelane.ipc.logging import LogForwarder

            self._log = LogForwarder(self._ctx, log_level)
            self._log.start()
        self._jobs: dict[int, _Job] = {}
        self._rr: deque[int] = deque()  # job ids in round-robin order
        self._lock = threading.Lock()
        self._workers: list[_Worker] = []
        self._fns: OrderedDict[int, tuple[Any, int, bytes]] = OrderedDict()
        self._fn_ids = itertools.count(1)
        self._wake_lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        _parent_fds.update((self._wake_r, self._wake_w))
        self._closing = False
        self._terminating = False
        self._broken: BaseException | None = None
        self._startup_failures = 0
        self._thread = threading.Thread(target=self._run, name="corelane-pool", daemon=True)
        self._thread._corelane = True  # type: ignore[attr-defined]
        self._thread.start()
        _live_pools.add(self)

    # ------------------------------------------------------------------ public API

    def map(
        self,
        fn: Callable[[Any], Any],
        iterable: Iterable[Any],
        *,
        chunksize: int | None = None,
        ordered: bool = True,
        progress: bool | Sink = False,
        timeout: float | None = None,
        errors: Errors = "raise",
    ) -> list[Any]:
        """Apply ``fn`` to every item and return the results as a list.

        Args:
            fn: a function of one argument (module-level, lambda or closure).
            iterable: the inputs; read lazily.
            chunksize: force this many items per message instead of adapting.
            ordered: results in input order (default) or in completion order.
            progress: True for a bar on stderr, or a callable receiving corelane.events.
            timeout: seconds one item may run before its worker is replaced (TaskTimeout).
            errors: "raise" stops at the first failure; "return" puts a Failure in its place.

        Raises:
            TaskError: ``fn`` raised (with the worker's traceback; the original as __cause__).
            WorkerDied: a worker died running an item. TaskTimeout: an item overran ``timeout``.
            NotPicklable: ``fn`` or an item cannot be sent to a worker.
        """
        runs = self._start(fn, iterable, ordered, chunksize, progress, timeout, errors, batched=True)
        return _collect(runs)

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
        """Like :meth:`map`, lazily: results in input order as they become available.

        The input is read only as fast as results are consumed (a bounded number of chunks in
        flight), so an endless generator runs in flat memory. Closing the iterator early
        cancels the rest of the run.
        """
        return self._start(fn, iterable, True, chunksize, progress, timeout, errors)

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
        return self._start(fn, iterable, False, chunksize, progress, timeout, errors)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Run ``fn(*args, **kwargs)`` in a worker; return a Future for its result.

        The Future's exception is a TaskError (with the worker's traceback), or WorkerDied when
        the worker running it died. Cancelling the Future before it starts skips it.
        """
        self._check_open()
        fn_id, fn_bytes = self._register_fn(fn)
        payload = dumps([(args, kwargs)], f"the arguments of {describe(fn)}")
        future: Future[Any] = Future()
        job = _Job(fn_id, fn_bytes, True, Chunker(1, fixed=1), None, future)
        job.pending.append(_Chunk(job, [0], [(args, kwargs)], payload))
        self._add_job(job)
        return future

    def close(self, timeout: float | None = None) -> None:
        """Finish submitted futures, then stop the workers and wait for them.

        An ``imap`` iterator still open at this point is cancelled (its consumer gets Cancelled):
        its work only advances while someone consumes it, so waiting for it could wait forever.

        Args:
            timeout: seconds to wait for outstanding work; past it the pool is terminated.
        """
        self._closing = True
        with self._lock:
            runs = [job for job in self._jobs.values() if job.future is None]
        for job in runs:
            job.fail(Cancelled("the pool was closed before this run was consumed"))
        self._wake()
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._thread.is_alive():
            if deadline is not None and time.monotonic() > deadline:
                self.terminate()
                return
            self._thread.join(0.1)
        self._cleanup()

    def terminate(self) -> None:
        """Stop now: kill the workers, fail unfinished work with Cancelled, and wait (bounded)."""
        self._closing = True
        self._terminating = True
        self._wake()
        if threading.current_thread() is not self._thread:
            self._thread.join(JOIN_TIMEOUT * 3)
        self._cleanup()

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.terminate()

    @property
    def pids(self) -> list[int]:
        """Process ids of the current workers."""
        return [w.proc.pid for w in list(self._workers) if w.proc.pid]

    def __repr__(self) -> str:
        state = "broken" if self._broken else "closed" if self._closing else "open"
        return f"<corelane.Pool workers={self.workers} start_method={self.start_method} {state}>"

    # ------------------------------------------------------------------ caller side

    def _check_open(self) -> None:
        if self._broken is not None:
            raise self._broken
        if self._closing:
            raise Closed("the pool is closed")

    def _register_fn(self, fn: Callable[..., Any]) -> tuple[int, bytes]:
        if not callable(fn):
            raise TypeError(f"expected a callable, got {describe(fn)}")
        with self._lock:
            hit = self._fns.get(id(fn))
            if hit is not None and hit[0] is fn:
                self._fns.move_to_end(id(fn))
                return hit[1], hit[2]
        fn_bytes = dumps(fn)
        fn_id = next(self._fn_ids)
        with self._lock:
            self._fns[id(fn)] = (fn, fn_id, fn_bytes)  # holds fn, so its id is not reused
            if len(self._fns) > FN_CACHE:
                self._fns.popitem(last=False)
        return fn_id, fn_bytes

    def _add_job(self, job: _Job) -> None:
        with self._lock:
            self._jobs[job.id] = job
            self._rr.append(job.id)
        self._wake()

    def _wake(self) -> None:
        with self._wake_lock:  # never write to a closed (and maybe reused) descriptor
            if self._wake_w >= 0:
                with contextlib.suppress(BlockingIOError, OSError):
                    os.write(self._wake_w, b"x")

    def _start(
        self,
        fn: Callable[[Any], Any],
        iterable: Iterable[Any],
        ordered: bool,
        chunksize: int | None,
        progress: bool | Sink,
        timeout: float | None,
        errors: Errors,
        owned: bool = False,
        batched: bool = False,
    ) -> Iterator[Any]:
        """Validate, register the run, and return its result iterator (of lists if ``batched``)."""
        if errors not in ("raise", "return"):
            raise ValueError(f'errors must be "raise" or "return", got {errors!r}')
        if timeout is not None and timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        self._check_open()
        fn_id, fn_bytes = self._register_fn(fn)
        total: int | None
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            total = None
        job = _Job(fn_id, fn_bytes, False, Chunker(self.workers, chunksize, total), timeout)
        reporter = Reporter(make_sink(progress), total)
        self._add_job(job)
        runs = self._consume(job, iter(iterable), ordered, errors, reporter, owned)
        return runs if batched else _flatten(runs)

    def _cut(self, job: _Job, first: int, items: list[Any], errors: Errors) -> list[Run]:
        """Queue ``items`` (indices from ``first``) as one chunk; return failures of unsendable ones."""
        indices = list(range(first, first + len(items)))
        failures: list[Run] = []
        try:
            payload = dumps(items)
        except NotPicklable:
            keep = []
            for index, item in zip(indices, items, strict=True):
                try:
                    dumps(item)
                    keep.append((index, item))
                except NotPicklable as exc:
                    err = NotPicklable(f"item {index} ({describe(item)})", exc.reason)
                    if errors == "raise":
                        raise err from None
                    failures.append((index, [Failure(index, item, err)], 1))
            indices = [index for index, _ in keep]
            items = [item for _, item in keep]
            payload = dumps(items)
        if indices:
            job.pending.append(_Chunk(job, indices, items, payload))
            self._wake()
        return failures

    def _next_results(self, job: _Job) -> list[Run]:
        while True:
            try:
                got = job.out.get(timeout=0.1)
            except queue.Empty:
                if self._broken is not None:
                    raise self._broken from None
                if not self._thread.is_alive():
                    raise Cancelled("the pool was terminated") from None
                continue
            if isinstance(got, BaseException):
                raise got
            return got

    def _consume(
        self,
        job: _Job,
        it: Iterator[Any],
        ordered: bool,
        errors: Errors,
        reporter: Reporter,
        owned: bool,
    ) -> Iterator[Any]:
        chunker = job.chunker
        buffered: dict[int, list[Any]] = {}  # ordered mode: runs waiting for earlier ones
        next_index = cut = yielded = 0
        exhausted = False
        state = "cancelled"
        try:
            while True:
                window = chunker.size(cut) * self.workers * WINDOW_CHUNKS_PER_WORKER
                early: list[Run] = []
                while not exhausted and cut - yielded < window:
                    items = list(itertools.islice(it, chunker.size(cut)))
                    if not items:
                        exhausted = True
                        break
                    early.extend(self._cut(job, cut, items, errors))
                    cut += len(items)
                if exhausted and yielded == cut:
                    break
                for first, values, n_failed in early or self._next_results(job):
                    if n_failed:
                        reporter.add(0, n_failed)
                        if errors == "raise":
                            state = "failed"
                            bad = next(v for v in values if isinstance(v, Failure))
                            raise bad.to_error()
                    reporter.add(len(values))
                    if not ordered:
                        yielded += len(values)
                        yield values
                    elif first == next_index:
                        next_index += len(values)
                        yielded += len(values)
                        yield values
                    else:
                        buffered[first] = values
                    while next_index in buffered:
                        values = buffered.pop(next_index)
                        next_index += len(values)
                        yielded += len(values)
                        yield values
            state = "finished"
        except KeyboardInterrupt:
            self.terminate()
            raise
        finally:
            self._close_job(job)
            reporter.finish(state)
            if owned:
                if state == "finished":
                    self.close()
                else:
                    self.terminate()

    def _close_job(self, job: _Job) -> None:
        job.closed = True
        self._wake()

    # ------------------------------------------------------------------ manager thread

    def _run(self) -> None:
        try:
            while True:
                self._spawn_missing()
                self._dispatch()
                if self._terminating or (self._closing and not self._jobs) or self._broken:
                    break
                waitables: list[Any] = [self._wake_r]
                for w in self._workers:
                    waitables.append(w.conn)
                    waitables.append(w.proc.sentinel)
                ready = set(wait(waitables, timeout=self._tick()))
                if self._wake_r in ready:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._wake_r, 4096)
                for w in list(self._workers):
                    if w.conn in ready:
                        self._drain(w)
                for w in list(self._workers):
                    if w.proc.sentinel in ready:
                        self._on_death(w)
                self._watch()
                self._reap_jobs()
        except BaseException as exc:  # noqa: BLE001 - never die silently: fail every job
            text = "".join(traceback.format_exception(exc))
            self._broken = InternalError(f"the pool's manager thread failed:\n{text}")
        finally:
            self._shutdown_workers()

    def _tick(self) -> float:
        for w in self._workers:
            if w.inflight and (w.inflight[0].job.timeout or w.inflight[0].job.closed):
                return TIMED_TICK
        return IDLE_TICK

    def _spawn_missing(self) -> None:
        if self._closing or self._broken is not None:
            return
        while len(self._workers) < self.workers:
            with _spawn_lock:
                self._spawn_one()

    def _spawn_one(self) -> None:
        """Start one worker (under _spawn_lock: under fork, a child of another pool's spawn must
        not catch this pipe between its creation and the closing of our child end)."""
        slot = self._ctx.RawArray("q", SLOT_SIZE)
        parent_end, child_end = self._ctx.Pipe(duplex=True)
        close_fds: list[int] = []
        if self.start_method == "fork":
            # The child must not keep any pool's parent-side pipe ends open, or EOF (which
            # ends workers whose parent died) would never reach those workers.
            close_fds = [parent_end.fileno(), *_parent_fds]
        log_config = self._log.worker_config() if self._log is not None else None
        proc = self._ctx.Process(  # type: ignore[attr-defined]
            target=worker_main,
            args=(child_end, slot, self._init_bytes, self._initargs_bytes, log_config, close_fds),
            name=f"corelane-worker-{len(self._workers)}",
            daemon=False,
        )
        proc.start()
        child_end.close()
        _parent_fds.add(parent_end.fileno())
        self._workers.append(_Worker(proc, parent_end, slot))

    def _next_chunk(self) -> _Chunk | None:
        with self._lock:
            for _ in range(len(self._rr)):
                job = self._jobs.get(self._rr[0])
                self._rr.rotate(-1)
                if job is None or job.closed or not job.pending:
                    continue
                chunk = job.pending.popleft()
                if job.future is not None and not job.future.set_running_or_notify_cancel():
                    job.closed = True  # cancelled before it started
                    continue
                return chunk
        return None

    def _dispatch(self) -> None:
        if self._terminating or self._broken is not None:
            return
        # First one chunk to every idle worker, then more ahead where chunks are short.
        for depth in (0, 1, 2):
            for w in self._workers:
                if not w.ready or w.kill_reason or len(w.inflight) != depth:
                    continue
                if depth and w.inflight[0].job.chunker.prefetch() <= depth:
                    continue
                chunk = self._next_chunk()
                if chunk is None:
                    return
                self._send_chunk(w, chunk)

    def _send_chunk(self, w: _Worker, chunk: _Chunk) -> None:
        job = chunk.job
        fn_bytes = None if job.fn_id in w.fn_ids else job.fn_bytes
        message = (
            Msg.TASK, job.id, job.fn_id, fn_bytes, job.star, job.chunker.budget,
            job.timeout is not None or chunk.precise, len(chunk.indices), chunk.payload,
        )
        w.inflight.append(chunk)
        job.inflight += 1
        try:
            w.conn.send_bytes(dumps(message))
            w.fn_ids.add(job.fn_id)
        except OSError:
            pass  # the worker is dead: its sentinel fires and _on_death re-queues the chunk

    def _drain(self, w: _Worker, readable: bool = True) -> None:
        """Handle every message waiting on ``w``'s pipe.

        ``readable``: wait() just said so, so the first read needs no poll (every syscall here
        may cost a GIL hand-off when the caller's thread is busy).
        """
        try:
            ready = readable or w.conn.poll()
            while ready:
                self._handle(w, loads(w.conn.recv_bytes()))
                ready = w.conn.poll()
        except (EOFError, OSError):
            pass  # the worker is exiting; its sentinel will tell us how

    def _handle(self, w: _Worker, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind is Msg.RESULTS:
            _, job_id, first, n, blob, failures, final, elapsed, n_run, stop = message
            try:
                values = loads(blob)
            except Exception as exc:  # e.g. a result whose class the parent cannot import
                err = NotPicklable(f"a result of chunk positions {first}..{first + n - 1}",
                                   f"the parent could not unpickle it: {type(exc).__name__}: {exc}")
                values = [None] * n
                failures = {**{p: (err, "") for p in range(first, first + n)}, **failures}
            chunk = w.inflight[0]
            job = chunk.job
            if job.id != job_id:
                raise InternalError(f"results for job {job_id} while job {job.id} was expected")
            chunk.done = first + len(values)
            job.deliver(chunk.runs(first, values, failures))
            if final:
                w.inflight.popleft()
                job.inflight -= 1
                job.chunker.observe(elapsed, n_run)
                if stop < len(chunk.indices):  # handed back: cancelled or over its budget
                    self._requeue(chunk)
        elif kind is Msg.READY:
            w.ready = True
            self._startup_failures = 0
        elif kind is Msg.INIT_FAILED:
            self._fail_pool(
                InitializerError(
                    "a worker's initializer raised; the pool stops instead of respawning it",
                    message[1],
                )
            )

    def _requeue(self, chunk: _Chunk, skip: set[int] | None = None) -> None:
        """Put a chunk's unfinished items (all but positions ``skip``) back at the queue's front."""
        job = chunk.job
        if job.closed:
            return
        positions = [p for p in range(chunk.done, len(chunk.indices)) if not skip or p not in skip]
        if not positions:
            return
        if len(positions) != len(chunk.indices):
            items = [chunk.items[p] for p in positions]
            chunk.indices = [chunk.indices[p] for p in positions]
            chunk.items = items
            chunk.payload = dumps(items)
            chunk.done = 0
        job.pending.appendleft(chunk)

    def _on_death(self, w: _Worker) -> None:
        self._drain(w, readable=False)  # results it sent before dying still count
        w.proc.join(1.0)
        exitcode = w.proc.exitcode
        pid = w.proc.pid
        self._workers.remove(w)
        _parent_fds.discard(w.conn.fileno())
        w.conn.close()
        if not w.ready:
            if self._broken is None and not self._terminating and not self._closing:
                self._startup_failures += 1
                if self._startup_failures >= STARTUP_FAILURES:
                    self._fail_pool(
                        Broken(f"workers exit during start-up (last exit code {exitcode}); "
                               "is the main module importable (spawn/forkserver)?")
                    )
            return
        job_id, started = w.mv[SLOT_JOB], w.mvd[SLOT_START]
        pos, count = unpack_span(w.mv[SLOT_SPAN])
        for position, chunk in enumerate(w.inflight):
            job = chunk.job
            job.inflight -= 1
            skip: set[int] = set()
            if position == 0 and started and job_id == job.id:
                live = [p for p in range(pos, pos + count) if chunk.done <= p < len(chunk.items)]
                if len(live) == 1:
                    skip = {live[0]}
                    self._blame(w, chunk, live[0], pid, exitcode)
                elif live and not job.closed:
                    # Died inside a span of several items: run each of them alone, precisely,
                    # so that a second death names the culprit.
                    skip = set(live)
                    for p in reversed(live):
                        item = chunk.items[p]
                        single = _Chunk(job, [chunk.indices[p]], [item], dumps([item]))
                        single.precise = True
                        job.pending.appendleft(single)
            elif position == 0:
                chunk.deaths += 1
                if chunk.deaths >= CHUNK_DEATHS:  # nothing to blame, again and again: give up
                    runs = [
                        (i, [Failure(i, it, WorkerDied(i, pid, exitcode))], 1)
                        for i, it in zip(chunk.indices[chunk.done:], chunk.items[chunk.done:], strict=True)
                    ]
                    job.deliver(runs)
                    continue
            self._requeue(chunk, skip)
        w.inflight.clear()

    def _blame(self, w: _Worker, chunk: _Chunk, pos: int, pid: int | None, exitcode: int | None) -> None:
        """Fail the item at ``pos``: its worker died (or was killed for overrunning its timeout)."""
        index, item = chunk.indices[pos], chunk.items[pos]
        error: BaseException
        if w.kill_reason and w.kill_reason[0] == "timeout" and w.kill_reason[1] == pos:
            error = TaskTimeout(index, w.kill_reason[2], pid)
        else:
            error = WorkerDied(index, pid, exitcode)
        chunk.job.deliver([(index, [Failure(index, item, error)], 1)])

    def _watch(self) -> None:
        """Enforce timeouts and cancellations on what the workers are running now."""
        now = time.monotonic()
        for w in self._workers:
            if not w.inflight or w.kill_reason:
                continue
            job = w.inflight[0].job
            if job.closed:
                if not w.cancel_seen:
                    w.cancel_seen = now
                    w.mv[SLOT_CANCEL] = job.id
                if now - w.cancel_seen > CANCEL_GRACE:
                    w.kill_reason = ("cancel", -1, now - w.cancel_seen)
                    with contextlib.suppress(OSError):
                        w.proc.kill()
                continue
            w.cancel_seen = 0.0
            if job.timeout is None:
                continue
            started, span = w.mvd[SLOT_START], w.mv[SLOT_SPAN]
            if not started or w.mv[SLOT_JOB] != job.id or started != w.mvd[SLOT_START]:
                continue
            if now - started > job.timeout:
                w.kill_reason = ("timeout", unpack_span(span)[0], job.timeout)
                with contextlib.suppress(OSError):
                    w.proc.kill()

    def _reap_jobs(self) -> None:
        with self._lock:
            for job_id, job in list(self._jobs.items()):
                if job.closed:
                    job.pending.clear()
                if job.closed and job.inflight == 0:
                    del self._jobs[job_id]
                    with contextlib.suppress(ValueError):
                        self._rr.remove(job_id)

    def _fail_pool(self, error: BaseException) -> None:
        if self._broken is None:
            self._broken = error
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            job.fail(error)

    def _shutdown_workers(self) -> None:
        error = self._broken or Cancelled("the pool was terminated before this work finished")
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            job.fail(error)
        graceful = not self._terminating and self._broken is None
        for w in self._workers:
            if graceful and w.ready:
                with contextlib.suppress(OSError):
                    w.conn.send_bytes(dumps((Msg.SHUTDOWN,)))
            else:
                with contextlib.suppress(OSError):
                    w.proc.kill()
        deadline = time.monotonic() + JOIN_TIMEOUT
        for w in self._workers:
            w.proc.join(max(0.0, deadline - time.monotonic()))
            if w.proc.exitcode is None:
                with contextlib.suppress(OSError):
                    w.proc.kill()
                w.proc.join(1.0)
            _parent_fds.discard(w.conn.fileno())
            w.conn.close()
        self._workers.clear()

    def _cleanup(self) -> None:
        if self._log is not None:
            self._log.stop()
            self._log = None
        if self._thread.is_alive():
            return  # a wedged manager (bounded join timed out) may still use the wake pipe
        with self._wake_lock:
            for fd in (self._wake_r, self._wake_w):
                if fd >= 0:
                    _parent_fds.discard(fd)
                    with contextlib.suppress(OSError):
                        os.close(fd)
            self._wake_r = self._wake_w = -1
        _live_pools.discard(self)


def _collect(runs: Iterator[list[Any]]) -> list[Any]:
    out: list[Any] = []
    for values in runs:
        out.extend(values)
    return out


def _flatten(runs: Iterator[list[Any]]) -> Iterator[Any]:
    """Yield item by item; closing this generator closes (and so cancels) the run."""
    try:
        for values in runs:
            yield from values
    finally:
        runs.close()  # type: ignore[attr-defined]


@atexit.register
def _terminate_live_pools() -> None:
    """No worker outlives the program, even when a pool was never closed."""
    for pool in list(_live_pools):
        with contextlib.suppress(Exception):
            pool.terminate()
