"""The loop each worker process runs: receive a chunk, run it, send results, repeat.

A reader thread drains the task pipe into a local queue, so the parent's sends never block on a
worker that is itself blocked sending results (the classic two-full-pipes deadlock). When the
pipe closes (the parent died) the reader ends the process at once, so no worker outlives its pool.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import signal
import sys
import threading
import time
import traceback
from collections import OrderedDict
from multiprocessing.connection import Connection
from typing import Any

from corelane.engine._protocol import (
    SLOT_CANCEL,
    SLOT_JOB,
    SLOT_SEQ,
    SLOT_SIZE,
    SLOT_SPAN,
    SLOT_STAGE,
    SLOT_START,
    Mode,
    Msg,
    Stage,
    pack_span,
)
from corelane.engine._serialize import dumps, envelope, loads, portable_exception
from corelane.errors import NotPicklable

FLUSH_SECONDS = 0.1  # send partial results (and so progress) at most this often within a chunk
CHECK_SECONDS = 0.01  # look at the clock-driven checks (cancel, budget, flush) this often
MAX_STRIDE = 1 << 16  # longest span of items run between two looks at the clock
FN_CACHE = 32  # functions kept per worker (first in, first out; the parent mirrors it)
InitArgs = bytes | tuple[Any, ...] | None  # pickled once, or as given (multiprocessing objects
#                                            that travel only as a process starts; see Pool)

_state: dict[str, Any] = {}


def worker_state() -> dict[str, Any]:
    """A dict private to the current worker process, for state built once per worker.

    An ``initializer`` can load a model into it; every task on that worker then finds it there.
    In the parent process it is just an ordinary (empty) dict.
    """
    return _state


def _steady_malloc() -> None:
    """Let glibc keep freed memory for the next chunk instead of returning it to the kernel.

    A worker is forked from the pool's manager thread, so its allocations live in that
    thread's malloc arena, which hands large blocks straight back (mmap/munmap, madvise) by
    default: every chunk's items, results and message bytes were then faulted in and zeroed
    anew, which cost a worker on a trivial map a third of its CPU in the kernel. Blocks up to
    32 MiB now come from the heap and up to 64 MiB of free heap is kept.
    """
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None)
        m_trim_threshold, m_mmap_threshold = -1, -3
        libc.mallopt(m_mmap_threshold, 32 << 20)
        libc.mallopt(m_trim_threshold, 64 << 20)


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this worker if the thread that started it goes away."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)


def _reader(conn: Connection, inbox: queue.SimpleQueue[bytes | None]) -> None:
    try:
        while True:
            inbox.put(conn.recv_bytes())
    except (EOFError, OSError):
        # The parent is gone (or closed our pipe): nobody can use our results any more.
        os._exit(0)


def _send(conn: Connection, message: tuple[Any, ...]) -> None:
    conn.send_bytes(envelope(message))


def _format(exc: BaseException) -> str:
    try:
        return "".join(traceback.format_exception(exc))
    except BaseException:  # noqa: BLE001 - a __str__ that raises still leaves the type
        return f"{type(exc).__name__} (its message could not be formatted)"


def _pack_values(values: list[Any], failures: dict[int, Any], first: int) -> bytes:
    """Pickle the results once; an unpicklable value becomes a NotPicklable failure instead."""
    try:
        return dumps(values, to_parent=True)
    except BaseException:  # noqa: BLE001 - find the culprit below, whatever it raised
        packed: list[Any] = []
        for offset, value in enumerate(values):
            try:
                dumps(value, to_parent=True)
                packed.append(value)
            except BaseException as exc:  # noqa: BLE001
                pos = first + offset
                reason = exc.reason if isinstance(exc, NotPicklable) else f"{type(exc).__name__}: {exc}"
                err = NotPicklable(f"the result of chunk item {pos} ({type(value).__name__})", reason)
                failures[pos] = (err, "")
                packed.append(None)
        return dumps(packed, to_parent=True)


def _send_results(
    conn: Connection, mv: Any, job_id: int, first: int, values: list[Any],
    failures: dict[int, Any], final: bool, elapsed: float, n_run: int,
) -> None:
    """Pickle and send the results of positions ``first..``; the slot names them meanwhile."""
    mv[SLOT_SPAN] = pack_span(first, len(values))
    mv[SLOT_STAGE] = Stage.PACK
    packed = _pack_values(values, failures, first)
    texts: dict[int, str] | None = None
    fail_bytes = b""
    if failures:
        texts = {pos: text for pos, (_, text) in failures.items()}
        fail_bytes = dumps({pos: portable_exception(exc) for pos, (exc, _) in failures.items()},
                           to_parent=True)
    _send(conn, (Msg.RESULTS, job_id, first, len(values), packed, texts, fail_bytes, final,
                 elapsed, n_run, n_run))


class Limits:
    """When a worker retires: after ``max_tasks`` items, or once its RSS passes ``max_memory``
    bytes (checked between items, so an item over the line still finishes)."""

    __slots__ = ("max_tasks", "max_memory", "tasks")

    def __init__(self, max_tasks: int | None = None, max_memory: int | None = None) -> None:
        self.max_tasks = max_tasks
        self.max_memory = max_memory
        self.tasks = 0

    def reached(self, running: int = 0) -> bool:
        """At a limit, counting ``running`` items of the current chunk as done."""
        if self.max_tasks is not None and self.tasks + running >= self.max_tasks:
            return True
        return self.max_memory is not None and rss() > self.max_memory


def rss() -> int:
    """This process's resident memory in bytes (Linux: /proc; elsewhere the peak so far)."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def worker_main(
    conn: Connection,
    slot: Any,
    initializer: bytes | None,
    initargs: InitArgs,
    log_config: Any,
    close_fds: list[int],
    limits: Limits | None = None,
) -> None:
    """Entry point of a worker process (the target given to ``Process``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    _steady_malloc()
    _die_with_parent()
    for fd in close_fds:  # fork: drop other workers' parent ends, so EOF reaches them
        with contextlib.suppress(OSError):
            os.close(fd)
    mv = memoryview(slot).cast("B").cast("q")
    mvd: Any = memoryview(slot).cast("B").cast("d")  # SLOT_START holds a float: time.monotonic()
    assert len(mv) == SLOT_SIZE
    try:
        if log_config is not None:
            from corelane.engine._logs import configure_worker

            configure_worker(log_config)
        if initializer is not None:
            init = loads(initializer)
            args = loads(initargs) if isinstance(initargs, bytes) else initargs or ()
            init(*args)
    except BaseException as exc:  # noqa: BLE001 - report anything, then stop without respawn
        with contextlib.suppress(OSError):
            _send(conn, (Msg.INIT_FAILED, _format(exc)))
        return
    _send(conn, (Msg.READY, os.getpid()))

    inbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
    threading.Thread(target=_reader, args=(conn, inbox), daemon=True, name="corelane-reader").start()
    functions: OrderedDict[int, Any] = OrderedDict()
    watch = _Watch()  # its thread starts with the first chunk that has a budget
    while True:
        message = loads(inbox.get())  # type: ignore[arg-type]
        if message[0] is Msg.SHUTDOWN:
            break
        _, job_id, seq, fn_id, fn_bytes, mode, budget, precise, n_items, payload = message
        mv[SLOT_SEQ] = seq
        mv[SLOT_JOB] = job_id
        mv[SLOT_SPAN] = pack_span(0, n_items)
        mv[SLOT_STAGE] = Stage.LOAD_FN
        fn = functions.get(fn_id)
        if fn is None:
            try:
                if fn_bytes is None:
                    raise LookupError("the worker no longer holds this function")
                fn = loads(fn_bytes)
            except BaseException as exc:  # noqa: BLE001 - the function's own fault
                _send(conn, (Msg.LOAD_FAILED, "fn", _format(exc)))
                mv[SLOT_STAGE] = Stage.IDLE
                continue
            functions[fn_id] = fn
            if len(functions) > FN_CACHE:
                functions.popitem(last=False)
        mv[SLOT_STAGE] = Stage.LOAD_ITEMS
        try:
            items = loads(payload)
        except BaseException as exc:  # noqa: BLE001 - e.g. a class spawn cannot import
            _send(conn, (Msg.LOAD_FAILED, "items", _format(exc)))
            mv[SLOT_STAGE] = Stage.IDLE
            continue
        _run_chunk(conn, mv, mvd, job_id, fn, mode, budget, precise, items, limits, watch)
        mv[SLOT_STAGE] = Stage.FREE  # results are sent: a death from here on blames nobody
        del fn, items, message, payload
        mv[SLOT_STAGE] = Stage.IDLE
        if limits is not None and limits.reached():
            _send(conn, (Msg.RETIRE,))  # the parent gives what we still hold to another
            return


class _Watch:
    """Ends the running span when its chunk passes its time budget.

    A span is a list the worker maps over, and a list's iterator reads the list's length at
    every step: emptying the list from this thread ends the span once the running item returns
    (nothing is cut short, and the loop pays nothing per item). Without it, a span grown long on
    cheap items ran on through any heavy items behind them: a whole heavy tail on one worker.

    Arming wakes the thread only when it would otherwise sleep past the new deadline: each
    wake-up costs the running chunk a GIL hand-off.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._deadline = 0.0  # 0: no chunk with a budget is running
        self._until: float | None = None  # when the thread wakes by itself (None: it does not)
        self.fired = False  # the running chunk is past its budget
        self.span: list[Any] | None = None
        self._thread: threading.Thread | None = None

    def arm(self, deadline: float) -> None:
        with self._cond:
            self._deadline = deadline
            self.fired = False
            self.span = None
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="corelane-budget")
                self._thread.start()
            elif self._until is None or self._until > deadline:
                self._cond.notify()

    def disarm(self) -> None:
        self._deadline = 0.0
        self.span = None

    def _run(self) -> None:
        with self._cond:
            while True:
                if not self._deadline:
                    self._until = None
                    self._cond.wait()
                    continue
                left = self._deadline - time.monotonic()
                if left > 0:
                    self._until = self._deadline
                    self._cond.wait(left)
                    continue
                self._deadline = 0.0
                self.fired = True  # before the span: a span begun after this sees the flag
                span = self.span
                if span is not None:
                    span.clear()


def _run_chunk(
    conn: Connection,
    mv: Any,
    mvd: Any,
    job_id: int,
    fn: Any,
    mode: int,
    budget: float,
    precise: bool,
    items: list[Any],
    limits: Limits | None = None,
    watch: _Watch | None = None,
) -> None:
    """Run one chunk; stop early (handing back the rest) when cancelled, past the time budget,
    or at the worker's task or memory limit (then it retires after this chunk).

    Items run in spans: a span is ``stride`` items mapped back to back, the stride doubling until
    clock reads are about CHECK_SECONDS apart (a quarter of the budget, when that is shorter). A
    precise chunk uses spans of one item, each with its start time in the slot (for timeouts and
    for naming a crashing item).

    Results go back as a list of values for chunk positions ``first..``; failures travel beside
    them keyed by position (their value slot holds None).
    """
    monotonic = time.monotonic
    values: list[Any] = []
    extend = values.extend
    failures: dict[int, Any] = {}
    first = pos = 0
    n = len(items)
    started = last_flush = last_check = monotonic()
    stride = 1
    check = min(CHECK_SECONDS, budget / 4) if budget else CHECK_SECONDS
    if not budget or precise:
        watch = None
    if watch is not None:
        watch.arm(started + budget)
    mvd[SLOT_START] = started
    if mode == Mode.KWARGS:
        call = lambda item: fn(*item[0], **item[1])  # noqa: E731
    elif mode == Mode.STAR:
        call = lambda item: fn(*item)  # noqa: E731
    else:
        call = fn
    mv[SLOT_STAGE] = Stage.RUN
    while pos < n:
        if pos:
            now = monotonic()
            if not precise and now - last_check < check and stride < MAX_STRIDE:
                stride *= 2
            last_check = now
            if mv[SLOT_CANCEL] == job_id or (budget and now - started > budget):
                break
            if limits is not None and limits.reached(pos):
                break
            if now - last_flush >= FLUSH_SECONDS:
                _send_results(conn, mv, job_id, first, values, failures, False, 0.0, 0)
                values = []
                extend = values.extend
                failures = {}
                first = pos
                last_flush = now
                mv[SLOT_STAGE] = Stage.RUN
            if precise:
                mvd[SLOT_START] = now
        end = min(n, pos + stride)
        if limits is not None and limits.max_tasks is not None:
            end = min(end, pos + max(1, limits.max_tasks - limits.tasks - pos))
        mv[SLOT_SPAN] = pack_span(pos, end - pos)
        span = items[pos:end]
        if watch is not None:
            watch.span = span
            if watch.fired:  # past the budget already (the check above read the clock first)
                break
        results = map(call, span)
        while True:
            try:
                extend(results)  # keeps what it appended before an exception
                break
            except BaseException as exc:  # noqa: BLE001 - SystemExit from a task is a task failure
                failures[first + len(values)] = (exc, _format(exc))
                values.append(None)
        ran = first + len(values)  # the span is shorter if the watch emptied it: stop there
        if ran < end:
            pos = ran
            break
        pos = end
    if watch is not None:
        watch.disarm()
    mvd[SLOT_START] = 0.0
    mv[SLOT_JOB] = 0
    if limits is not None:
        limits.tasks += pos
    elapsed = monotonic() - started
    _send_results(conn, mv, job_id, first, values, failures, True, elapsed, pos)
