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
    SLOT_SIZE,
    SLOT_SPAN,
    SLOT_START,
    Msg,
    pack_span,
)
from corelane.engine._serialize import dumps, loads, portable_exception
from corelane.errors import NotPicklable

FLUSH_SECONDS = 0.1  # send partial results (and so progress) at most this often within a chunk
CHECK_SECONDS = 0.01  # look at the clock-driven checks (cancel, budget, flush) this often
MAX_STRIDE = 1 << 16  # longest span of items run between two looks at the clock
FN_CACHE = 32  # functions kept per worker, keyed by the parent's fn id

_state: dict[str, Any] = {}


def worker_state() -> dict[str, Any]:
    """A dict private to the current worker process, for state built once per worker.

    An ``initializer`` can load a model into it; every task on that worker then finds it there.
    In the parent process it is just an ordinary (empty) dict.
    """
    return _state


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
    conn.send_bytes(dumps(message))


def _pack_values(values: list[Any], failures: dict[int, Any], first: int) -> bytes:
    """Pickle the results once; an unpicklable value becomes a NotPicklable failure instead."""
    try:
        return dumps(values)
    except NotPicklable:
        packed: list[Any] = []
        for offset, value in enumerate(values):
            try:
                dumps(value)
                packed.append(value)
            except NotPicklable as exc:
                pos = first + offset
                err = NotPicklable(f"the result of chunk item {pos} ({type(value).__name__})", exc.reason)
                failures[pos] = (err, "")
                packed.append(None)
        return dumps(packed)


def worker_main(
    conn: Connection,
    slot: Any,
    initializer: bytes | None,
    initargs: bytes | None,
    log_config: Any,
    close_fds: list[int],
) -> None:
    """Entry point of a worker process (the target given to ``Process``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    _die_with_parent()
    for fd in close_fds:  # fork: drop other workers' parent ends, so EOF reaches them
        with contextlib.suppress(OSError):
            os.close(fd)
    mv = memoryview(slot).cast("B").cast("q")
    mvd: Any = memoryview(slot).cast("B").cast("d")  # SLOT_START holds a float: time.monotonic()
    assert len(mv) == SLOT_SIZE
    try:
        if log_config is not None:
            from corelane.ipc.logging import configure_worker

            configure_worker(log_config)
        if initializer is not None:
            init = loads(initializer)
            args = loads(initargs) if initargs is not None else ()
            init(*args)
    except BaseException as exc:  # noqa: BLE001 - report anything, then stop without respawn
        text = "".join(traceback.format_exception(exc))
        with contextlib.suppress(OSError):
            _send(conn, (Msg.INIT_FAILED, text))
        return
    _send(conn, (Msg.READY, os.getpid()))

    inbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
    threading.Thread(target=_reader, args=(conn, inbox), daemon=True, name="corelane-reader").start()
    functions: OrderedDict[int, Any] = OrderedDict()
    while True:
        message = loads(inbox.get())  # type: ignore[arg-type]
        if message[0] is Msg.SHUTDOWN:
            break
        _, job_id, fn_id, fn_bytes, star, budget, precise, n_items, payload = message
        try:
            fn = functions.get(fn_id)
            if fn is None:
                fn = loads(fn_bytes)
                functions[fn_id] = fn
                if len(functions) > FN_CACHE:
                    functions.popitem(last=False)
            items = loads(payload)
        except BaseException as exc:  # noqa: BLE001 - e.g. a class spawn cannot import
            text = "".join(traceback.format_exception(exc))
            exc = portable_exception(exc)
            failures = {pos: (exc, text) for pos in range(n_items)}
            _send(conn, (Msg.RESULTS, job_id, 0, n_items, dumps([None] * n_items), failures, True,
                         0.0, 0, n_items))
            continue
        _run_chunk(conn, mv, mvd, job_id, fn, star, budget, precise, items)
        del fn, items, message  # drop references before blocking for the next chunk


def _run_chunk(
    conn: Connection,
    mv: Any,
    mvd: Any,
    job_id: int,
    fn: Any,
    star: bool,
    budget: float,
    precise: bool,
    items: list[Any],
) -> None:
    """Run one chunk; stop early (handing back the rest) when cancelled or past the time budget.

    Items run in spans: a span is ``stride`` items mapped back to back, the stride doubling until
    clock reads are about CHECK_SECONDS apart. A precise chunk uses spans of one item, each with
    its start time in the slot (for timeouts and for naming a crashing item).

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
    mv[SLOT_JOB] = job_id
    mvd[SLOT_START] = started
    call = (lambda item: fn(*item[0], **item[1])) if star else fn
    while pos < n:
        if pos:
            now = monotonic()
            if not precise and now - last_check < CHECK_SECONDS and stride < MAX_STRIDE:
                stride *= 2
            last_check = now
            if mv[SLOT_CANCEL] == job_id or (budget and now - started > budget):
                break
            if now - last_flush >= FLUSH_SECONDS:
                packed = _pack_values(values, failures, first)
                _send(conn, (Msg.RESULTS, job_id, first, len(values), packed, failures, False,
                             0.0, 0, 0))
                values = []
                extend = values.extend
                failures = {}
                first = pos
                last_flush = now
            if precise:
                mvd[SLOT_START] = now
        end = min(n, pos + stride)
        mv[SLOT_SPAN] = pack_span(pos, end - pos)
        results = map(call, items[pos:end])
        while True:
            try:
                extend(results)  # keeps what it appended before an exception
                break
            except BaseException as exc:  # noqa: BLE001 - SystemExit from a task is a task failure
                text = "".join(traceback.format_exception(exc))
                failures[first + len(values)] = (portable_exception(exc), text)
                values.append(None)
        pos = end
    mvd[SLOT_START] = 0.0
    mv[SLOT_JOB] = 0
    elapsed = monotonic() - started
    packed = _pack_values(values, failures, first)
    _send(conn, (Msg.RESULTS, job_id, first, len(values), packed, failures, True, elapsed,
                 pos, pos))
