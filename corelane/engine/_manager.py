"""The manager thread and its records: dispatch, results, deaths, timeouts.

::

    callers (any thread)                manager thread                        worker processes
    --------------------                --------------                        ----------------
    imap: cut + pickle chunks  ---->    job.pending / job.source --> idle --> load fn, load items,
    map: hand over the list             worker; waits in ONE place on:        run spans, pack and
    submit: one chunk, own Future       result pipes, sentinels, a wake       send results; the
    consume job.out  <-------------     pipe; watches timeouts                slot names the stage

All policy lives here; workers only run chunks. The manager holds no reference to the public
:class:`~corelane.engine.pool.Pool`, so a pool dropped without ``close()`` is collected and its
finalizer closes the manager. No user object can end this thread: everything a user made
(functions, items, results, exceptions, done-callbacks) is handled inside a guard that turns a
failure into that item's error. Should the thread die anyway, every pending and later call gets
``Broken`` at once.

Blame, when a worker dies, comes from its slot (see ``_protocol``): the stage it was in and the
span of positions that stage concerns. One position: that item fails with ``WorkerDied`` (or
``TaskTimeout`` when we killed it). Several: each re-runs alone, so the next death names the
culprit. None (idle, or freeing a finished chunk): its queued chunks go back unharmed; a chunk
that keeps meeting such deaths is isolated the same way, so the loop is bounded.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import traceback
from collections import deque
from concurrent.futures import Future
from multiprocessing.connection import wait
from typing import Any

from corelane.engine._protocol import (
    SLOT_CANCEL,
    SLOT_JOB,
    SLOT_SEQ,
    SLOT_SPAN,
    SLOT_STAGE,
    SLOT_START,
    Mode,
    Msg,
    Stage,
    unpack_span,
)
from corelane.engine._records import Chunk, Job, Worker, fresh, settle
from corelane.engine._serialize import describe, envelope, loads
from corelane.engine._workers import (
    close_conn,
    close_fd,
    register_fds,
    start_worker,
    stop_workers,
)
from corelane.engine.chunking import TARGET_SECONDS, Chunker
from corelane.engine.results import Failure
from corelane.engine.worker import FN_CACHE, InitArgs, Limits
from corelane.errors import (
    Broken,
    Cancelled,
    InitializerError,
    InternalError,
    NotPicklable,
    TaskTimeout,
    WorkerDied,
)

# Tuning constants, each with its trade-off.
IDLE_TICK = 0.5  # s between liveness checks when nothing is timed (sentinels wake us anyway)
TIMED_TICK = 0.02  # s between checks while a timeout or a cancellation is being watched
CANCEL_GRACE = 0.5  # s a cancelled job's chunk may go on (it stops between items) before its
#                     worker is killed and replaced; short, since a cancel means "stop now"
STARTUP_FAILURES = 3  # workers dying before they are ready, in a row, before the pool gives up
INNOCENT_DEATHS = 3  # deaths no stage pins on a chunk before its items are run one by one
FN_DEATHS = 2  # deaths while loading a run's function before the whole run fails
SUBMIT_BATCH = 64  # most submits sent as one chunk when a backlog builds (each keeps its Future)


class Manager:
    """Owns the workers, the jobs and the thread that connects them."""

    def __init__(self, workers: int, ctx: Any, start_method: str, init: bytes | None,
                 initargs: InitArgs, log_forwarder: Any, limits: Limits | None = None) -> None:
        self.workers = workers
        self._limits = limits
        self.start_method = start_method
        self._ctx = ctx
        self._init = init
        self._initargs = initargs
        self.log_forwarder = log_forwarder
        self._jobs: dict[int, Job] = {}
        self._rr: deque[int] = deque()  # job ids in round-robin order
        self._dirty: list[Job] = []  # jobs holding delivered runs to flush before we block
        self._to_stop: deque[Future[Any]] = deque()  # force-cancelled futures to stop
        self._lock = threading.Lock()
        self._pool: list[Worker] = []
        self.submits = Job(None, Mode.KWARGS, Chunker(1, fixed=1), None, shared=True)
        self._jobs[self.submits.id] = self.submits
        self._rr.append(self.submits.id)
        self._wake_lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._wake_sent = False
        register_fds(self._wake_r, self._wake_w)
        self.closing = False
        self.terminating = False
        self.cancel_futures = False
        self.broken: BaseException | None = None
        self._dead = False  # set (under _lock) once the thread stops taking work
        self._startup_failures = 0
        self.chunks_sent = 0  # statistics: messages of work sent
        self.deaths = 0  # statistics: workers that died after starting
        self.retired = 0  # statistics: workers replaced at their task or memory limit
        self._first_workers = threading.Event()  # set once the thread started its workers
        self.thread = threading.Thread(target=self._run, name="corelane-pool", daemon=True)
        self.thread._corelane = True  # type: ignore[attr-defined]
        self.thread.start()
        if start_method == "fork":
            self._wait_for_first_workers()

    def _wait_for_first_workers(self) -> None:
        """Under fork, hold the caller until the manager thread has forked the first workers.

        A fork copies every descriptor and lock of the process as it is at that instant. While
        the caller ran on during those forks, a worker could inherit what the caller held: the
        import lock of a module it was importing (the worker then hung on its first task that
        imported it), or the exec-status pipe of a ``subprocess.Popen`` being started
        (close-on-exec, but a worker never execs: ``subprocess.run()`` then waited for the
        pool's workers to exit). The forks stay on the manager thread, not the caller's: a
        worker's parent-death signal fires when the thread that forked it ends, and the
        caller's thread may end long before the pool (a request handler). Replacements are
        forked while the caller runs on: one fork's window per dead worker (recycling pools
        take the forkserver, see ``default_start_method``).
        """
        while not self._first_workers.wait(0.1):
            if not self.thread.is_alive():
                return

    # ------------------------------------------------------------------ caller side

    def add_job(self, job: Job) -> None:
        job.dirty = self._dirty
        with self._lock:
            if not self._dead:
                self._jobs[job.id] = job
                self._rr.append(job.id)
                job = None  # type: ignore[assignment]
        if job is not None:
            job.fail(self.broken or Cancelled("the pool was shut down"))
        self.wake()

    def add_submit(self, chunk: Chunk) -> None:
        with self._lock:
            dead = self._dead
            if not dead:
                self.submits.pending.append(chunk)
        if dead:
            assert chunk.futures is not None
            for future in chunk.futures.values():
                settle(future, error=fresh(self.broken or Cancelled("the pool was shut down")))
        self.wake()

    def wake(self) -> None:
        """Make the manager look at its jobs again: one byte on its pipe, unless one is there
        already (10,000 submits in a row cost a handful of writes, not 10,000)."""
        if self._wake_sent:
            return
        with self._wake_lock:  # never write to a closed (and maybe reused) descriptor
            self._wake_sent = True
            if self._wake_w >= 0:
                with contextlib.suppress(BlockingIOError, OSError):
                    os.write(self._wake_w, b"x")

    def force_cancel(self, future: Future[Any]) -> None:
        """Fail a running submit with Cancelled now, and stop the worker running it."""
        settle(future, error=Cancelled("cancelled while running: its worker was stopped"))
        self._to_stop.append(future)
        self.wake()

    def close_job(self, job: Job) -> None:
        job.closed = True
        self.wake()

    def close(self, why: str, cancel_futures: bool = False) -> None:
        """Take no more work; finish what was submitted (and eager runs), then stop. An open
        lazy run is cancelled: it only advances while someone consumes it."""
        self.closing = True
        with self._lock:
            lazy = [job for job in self._jobs.values() if job.source is None and not job.shared]
        for job in lazy:
            job.fail(Cancelled(why))
        if cancel_futures:
            self.cancel_futures = True
        self.wake()

    @property
    def pids(self) -> list[int]:
        return [w.proc.pid for w in list(self._pool) if w.proc.pid]

    # ------------------------------------------------------------------ the thread

    def _run(self) -> None:
        try:
            self._spawn_missing()
            self._first_workers.set()
            while True:
                self._spawn_missing()
                if self.cancel_futures:
                    self._cancel_pending()
                self._dispatch()
                if self.terminating or self.broken or (self.closing and self._all_idle()):
                    break
                self._flush()
                waitables: list[Any] = [self._wake_r]
                for w in self._pool:
                    waitables.append(w.conn)
                    waitables.append(w.proc.sentinel)
                ready = set(wait(waitables, timeout=self._tick()))
                if self._wake_r in ready:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._wake_r, 4096)
                    # After the read, not before: a wake() that skipped its write (the flag was
                    # still up) queued its work before this line, and the dispatch below sees it.
                    self._wake_sent = False
                for w in list(self._pool):
                    if w.conn in ready:
                        self._drain(w)
                for w in list(self._pool):
                    if w.proc.sentinel in ready:
                        self._on_death(w)
                self._watch()
                self._stop_cancelled()
                self._reap_jobs()
        except BaseException as exc:  # noqa: BLE001 - never die silently: fail every job
            text = "".join(traceback.format_exception(exc))
            error = Broken(f"the pool's manager thread failed; this is a bug in corelane, please "
                           f"report it with this message:\n{text}")
            error.__cause__ = InternalError(str(exc))
            self.broken = error
        finally:
            self._first_workers.set()
            self._shutdown_workers()
            self._close_wake_pipe()

    def _flush(self) -> None:
        while self._dirty:
            self._dirty.pop().flush()

    def _all_idle(self) -> bool:
        with self._lock:
            return all(job.closed or job.idle() for job in self._jobs.values())

    def _tick(self) -> float:
        for w in self._pool:
            if w.inflight and (w.inflight[0].job.timeout or w.inflight[0].job.closed):
                return TIMED_TICK
        return IDLE_TICK

    def _spawn_missing(self) -> None:
        # Closing still replaces a dead worker while submitted work is left: close() promises
        # to finish it, and with no worker to run it, it would wait for ever.
        if self.broken is not None or self.terminating or (self.closing and self._all_idle()):
            return
        while len(self._pool) < self.workers:
            self._spawn_one()

    def _spawn_one(self) -> None:
        self._pool.append(start_worker(self._ctx, self.start_method, self._init, self._initargs,
                                       self.log_forwarder, self._limits, len(self._pool)))

    def _next_chunk(self) -> Chunk | None:
        with self._lock:
            order = list(self._rr)
            self._rr.rotate(-1)
        for job_id in order:
            job = self._jobs.get(job_id)
            if job is None or job.closed:
                continue
            while (chunk := job.take()) is not None:
                if chunk.futures is not None and not chunk.claim():
                    continue  # cancelled before it started
                if job.fatal is not None:
                    chunk.fail(job.fatal)
                    continue
                if job.shared and len(job.pending) > self.workers:
                    chunk = self._batch(chunk)
                return chunk
        return None

    def _batch(self, chunk: Chunk) -> Chunk:
        """With a backlog of short submits, send several calls of the same function as one chunk
        (each keeps its own Future), as many as fit the chunk time target (~50 ms of calls
        measured so far: a batched call is running, so it can no longer be cancelled)."""
        job = self.submits
        per_item = job.chunker.per_item
        if per_item is None:
            return chunk  # unmeasured: calls may be long, and a batched call cannot be cancelled
        limit = min(SUBMIT_BATCH, int(TARGET_SECONDS / max(per_item, 1e-6)),
                    1 + len(job.pending) // self.workers)
        if limit <= 1 or chunk.precise or len(chunk.items) != 1:
            return chunk
        return job.batch(chunk, limit)

    def _dispatch(self) -> None:
        if self.terminating or self.broken is not None:
            return
        # First one chunk to every idle worker, then more ahead where chunks are short.
        for depth in (0, 1, 2):
            for w in self._pool:
                if not w.ready or w.kill_reason or w.retiring or len(w.inflight) != depth:
                    continue
                if depth and w.inflight[0].job.chunker.prefetch() <= depth:
                    continue
                chunk = self._next_chunk()
                if chunk is None:
                    return
                self._send_chunk(w, chunk)

    def _send_chunk(self, w: Worker, chunk: Chunk) -> None:
        job, fn = chunk.job, chunk.fn
        fn_bytes = None
        if fn.id not in w.fn_ids:
            fn_bytes = fn.data
            w.fn_ids[fn.id] = None
            if len(w.fn_ids) > FN_CACHE:
                w.fn_ids.popitem(last=False)
        w.seq += 1
        chunk.seq = w.seq
        message = (
            Msg.TASK, job.id, chunk.seq, fn.id, fn_bytes, job.mode,
            job.chunker.budget(len(chunk.indices)),
            job.timeout is not None or chunk.precise, len(chunk.indices), chunk.payload,
        )
        w.inflight.append(chunk)
        job.inflight += 1
        self.chunks_sent += 1
        with contextlib.suppress(OSError):  # a dead worker: its sentinel fires, _on_death requeues
            w.conn.send_bytes(envelope(message))

    # ------------------------------------------------------------------ what workers say

    def _drain(self, w: Worker, readable: bool = True) -> None:
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

    def _handle(self, w: Worker, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind is Msg.RESULTS:
            self._on_results(w, message)
        elif kind is Msg.LOAD_FAILED:
            self._on_load_failed(w, message[1], message[2])
        elif kind is Msg.READY:
            w.ready = True
            self._startup_failures = 0
        elif kind is Msg.RETIRE:
            w.retiring = True
            self.retired += 1
        elif kind is Msg.INIT_FAILED:
            self._fail_pool(InitializerError(
                "a worker's initializer raised; the pool stops instead of respawning it",
                message[1]))

    def _on_results(self, w: Worker, message: tuple[Any, ...]) -> None:
        _, job_id, first, n, blob, texts, fail_bytes, final, elapsed, n_run, stop = message
        chunk = w.inflight[0]
        job = chunk.job
        if job.id != job_id:
            raise InternalError(f"results for job {job_id} while job {job.id} was expected")
        values, failures, skip = chunk.unpack(first, n, blob, texts, fail_bytes)
        chunk.done = first + n
        chunk.deliver(chunk.runs(first, values, failures, skip))
        if final:
            w.inflight.popleft()
            job.inflight -= 1
            job.chunker.observe(elapsed, n_run)
            if job.fn is not None and job.chunker.fixed is None:
                job.fn.per_item = job.chunker.mean()
            if stop < len(chunk.indices):  # handed back: cancelled or over its budget
                chunk.requeue(recut=True)

    def _on_load_failed(self, w: Worker, what: str, text: str) -> None:
        chunk = w.inflight.popleft()
        job = chunk.job
        job.inflight -= 1
        reason = f"the worker could not unpickle it: {text.strip().splitlines()[-1]}"
        if what == "missing":  # the worker evicted it: send it again, with the function
            w.fn_ids.pop(chunk.fn.id, None)
            chunk.requeue()
        elif what == "fn":
            w.fn_ids.pop(chunk.fn.id, None)
            error = NotPicklable("the function", reason)
            if not job.shared:
                job.fatal = error
            chunk.fail(error)
        elif len(chunk.items) > 1:  # which item? each goes again in its own pickle
            chunk.isolate(list(range(len(chunk.items))))
        else:
            index = None if chunk.futures else chunk.indices[0]
            what_item = "the arguments" if chunk.futures else f"item {index}"
            chunk.fail(NotPicklable(f"{what_item} ({describe(chunk.items[0])})", reason))

    # ------------------------------------------------------------------ deaths and timeouts

    def _on_death(self, w: Worker) -> None:
        self._drain(w, readable=False)  # results it sent before dying still count
        w.proc.join(1.0)
        exitcode = w.proc.exitcode
        pid = w.proc.pid
        self._pool.remove(w)
        close_conn(w.conn)
        if not w.ready:
            if self.broken is None and not self.terminating:  # closing too: see _spawn_missing
                self._startup_failures += 1
                if self._startup_failures >= STARTUP_FAILURES:
                    self._fail_pool(Broken(
                        f"workers exit during start-up (last exit code {exitcode}); "
                        "is the main module importable (spawn/forkserver)?"))
            return
        if w.retiring or (w.kill_reason and w.kill_reason[0] == "force"):
            # A planned exit, or a kill for a cancelled future (already settled): everything
            # else it held goes back, blamed on nobody.
            w.hand_back()
            return
        self.deaths += 1
        seq, stage = w.mv[SLOT_SEQ], w.mv[SLOT_STAGE]
        pos, count = unpack_span(w.mv[SLOT_SPAN])
        pinned = stage in (Stage.LOAD_FN, Stage.LOAD_ITEMS, Stage.RUN, Stage.PACK)
        for chunk in w.inflight:
            job = chunk.job
            job.inflight -= 1
            if job.closed:
                continue
            if pinned and chunk.seq == seq and stage == Stage.LOAD_FN:
                self._fn_death(chunk, pid, exitcode)
            elif pinned and chunk.seq == seq:
                suspects = [p for p in range(pos, pos + count) if chunk.done <= p < len(chunk.items)]
                if len(suspects) == 1:
                    self._blame(w, chunk, suspects[0], pid, exitcode)
                elif suspects:
                    chunk.isolate(suspects)
                chunk.requeue(set(suspects))
            else:
                chunk.innocent += 1
                left = list(range(chunk.done, len(chunk.items)))
                if chunk.innocent < INNOCENT_DEATHS:
                    chunk.requeue()
                elif len(left) > 1:
                    chunk.isolate(left)
                elif left:
                    self._blame(w, chunk, left[0], pid, exitcode)
        w.inflight.clear()

    def _fn_death(self, chunk: Chunk, pid: int | None, exitcode: int | None) -> None:
        """The worker died loading the function: that future fails, or (again) the whole run."""
        job = chunk.job
        job.fn_deaths += 1
        if chunk.futures is None and job.fn_deaths < FN_DEATHS:
            chunk.requeue()
            return
        error = WorkerDied(None, pid, exitcode)
        if chunk.futures is None:
            job.fatal = error
        chunk.fail(error)

    def _blame(self, w: Worker, chunk: Chunk, pos: int, pid: int | None, exitcode: int | None) -> None:
        """Fail the item at ``pos``: its worker died (or was killed for overrunning its timeout)."""
        index = None if chunk.futures is not None else chunk.indices[pos]
        error: BaseException
        if w.kill_reason and w.kill_reason[0] == "timeout" and w.kill_reason[1] == pos:
            error = TaskTimeout(index, w.kill_reason[2], pid)
        else:
            error = WorkerDied(index, pid, exitcode)
        chunk.deliver([(chunk.indices[pos], [Failure(chunk.indices[pos], chunk.items[pos],
                                                            error)], 1)])

    def _watch(self) -> None:
        """Enforce timeouts and cancellations on what the workers are running now."""
        now = time.monotonic()
        for w in self._pool:
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

    def _stop_cancelled(self) -> None:
        """Kill the workers running force-cancelled futures (their other items go back)."""
        while self._to_stop:
            future = self._to_stop.popleft()
            for w in self._pool:
                chunk = w.inflight[0] if w.inflight else None
                if chunk is None or chunk.futures is None or w.kill_reason:
                    continue
                if any(f is future for f in chunk.futures.values()):
                    w.kill_reason = ("force", -1, 0.0)
                    with contextlib.suppress(OSError):
                        w.proc.kill()

    def _cancel_pending(self) -> None:
        """shutdown(cancel_futures=True): drop every queued submit and eager run."""
        self.cancel_futures = False
        while self.submits.pending:
            chunk = self.submits.pending.popleft()
            for future in (chunk.futures or {}).values():
                future.cancel()  # a requeued call (its first worker died) is running: it fails
                settle(future, error=Cancelled("the pool was shut down before it ran"))
        with self._lock:
            eager = [job for job in self._jobs.values() if job.source is not None]
        for job in eager:
            job.fail(Cancelled("the pool was shut down with cancel_futures=True"))

    def _reap_jobs(self) -> None:
        with self._lock:
            for job_id, job in list(self._jobs.items()):
                if job.closed:
                    job.pending.clear()
                    if job.inflight == 0:
                        del self._jobs[job_id]
                        with contextlib.suppress(ValueError):
                            self._rr.remove(job_id)

    def _fail_pool(self, error: BaseException) -> None:
        if self.broken is None:
            self.broken = error
        self._fail_everything(error)

    def _fail_everything(self, error: BaseException) -> None:
        self._flush()  # what was delivered comes before the error
        for w in self._pool:
            for chunk in w.inflight:
                for future in (chunk.futures or {}).values():
                    settle(future, error=fresh(error))
        with self._lock:
            jobs = list(self._jobs.values())
        while self.submits.pending:
            chunk = self.submits.pending.popleft()
            for future in (chunk.futures or {}).values():
                settle(future, error=fresh(error))
        for job in jobs:
            if not job.shared:
                job.fail(error)

    def _shutdown_workers(self) -> None:
        with self._lock:
            self._dead = True  # from here on, add_job/add_submit fail at once
        error = self.broken or Cancelled("the pool was terminated before this work finished")
        self._fail_everything(error)
        stop_workers(self._pool, graceful=not self.terminating and self.broken is None)
        self._pool.clear()

    def cleanup(self) -> None:
        """Stop the log forwarder (the thread closes its own wake pipe as it ends)."""
        if self.log_forwarder is not None:
            self.log_forwarder.stop()
            self.log_forwarder = None

    def _close_wake_pipe(self) -> None:
        with self._wake_lock:  # wake() never writes to a closed (and maybe reused) fd
            for fd in (self._wake_r, self._wake_w):
                if fd >= 0:
                    close_fd(fd)
            self._wake_r = self._wake_w = -1
