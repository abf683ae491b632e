"""Starting and stopping worker processes: the one place that touches their pipes and fds."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from typing import Any

from corelane.engine import _startmethod
from corelane.engine._protocol import SLOT_SIZE, Msg
from corelane.engine._records import Worker
from corelane.engine._serialize import envelope
from corelane.engine.worker import InitArgs, Limits, worker_main

JOIN_TIMEOUT = 2.0  # s to wait for a worker to exit after SHUTDOWN before it is killed

parent_fds: set[int] = set()  # parent-side pipe ends of every pool's workers (and wake pipes)
_spawn_lock = threading.Lock()  # one worker start at a time, process-wide (see start_worker)


def start_worker(ctx: Any, start_method: str, init: bytes | None, initargs: InitArgs,
                 log_forwarder: Any, limits: Limits | None, number: int) -> Worker:
    """Start one worker process and return its record.

    One start at a time, process-wide: under fork, a child of another pool's start must not
    catch this pipe between its creation and the closing of our child end.
    """
    with _spawn_lock:
        slot = ctx.RawArray("q", SLOT_SIZE)
        parent_end, child_end = ctx.Pipe(duplex=True)
        _widen(parent_end, child_end)
        close_fds: list[int] = []
        if start_method == "fork":
            # The child must not keep any pool's parent-side pipe ends open, or EOF (which
            # ends workers whose parent died) would never reach those workers.
            close_fds = [parent_end.fileno(), *parent_fds]
        log_config = log_forwarder.worker_config() if log_forwarder is not None else None
        proc = ctx.Process(
            target=worker_main,
            args=(child_end, slot, init, initargs, log_config, close_fds, limits),
            name=f"corelane-worker-{number}",
            daemon=False,
        )
        with _startmethod.main_hidden_if_interactive():
            proc.start()
        child_end.close()
        parent_fds.add(parent_end.fileno())
        return Worker(proc, parent_end, slot)


SOCKET_BUFFER = 4 << 20  # bytes each way: a chunk of items or results in a few reads, not dozens


def _widen(*conns: Any) -> None:
    """Bigger socket buffers for a worker's pipe (a Unix socket pair): fewer reads, each of
    which the worker's reader thread pays for with a GIL hand-off from the running task."""
    for conn in conns:
        with contextlib.suppress(OSError):
            sock = socket.socket(fileno=os.dup(conn.fileno()))
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
            finally:
                sock.close()


def register_fds(*fds: int) -> None:
    """Note parent-side fds that every forked worker must close (see start_worker)."""
    with _spawn_lock:
        parent_fds.update(fds)


def close_fd(fd: int) -> None:
    """Close a registered parent-side fd. Under the spawn lock: closed while another thread is
    between listing ``parent_fds`` and forking, its number could be reused by the new child's
    own sentinel pipe, which the child would then close in itself (its parent would see it
    die while it lives, and wait for it forever)."""
    with _spawn_lock:
        parent_fds.discard(fd)
        with contextlib.suppress(OSError):
            os.close(fd)


def close_conn(conn: Any) -> None:
    """Close a worker's parent-side pipe end (see close_fd)."""
    with _spawn_lock:
        with contextlib.suppress(OSError):
            parent_fds.discard(conn.fileno())
        conn.close()


def stop_workers(workers: list[Worker], graceful: bool) -> None:
    """Ask ready workers to finish (or kill them all), then wait, bounded, and kill stragglers."""
    for w in workers:
        if graceful and w.ready:
            with contextlib.suppress(OSError):
                w.conn.send_bytes(envelope((Msg.SHUTDOWN,)))
        else:
            with contextlib.suppress(OSError):
                w.proc.kill()
    deadline = time.monotonic() + JOIN_TIMEOUT
    for w in workers:
        w.proc.join(max(0.0, deadline - time.monotonic()))
        if w.proc.exitcode is None:
            with contextlib.suppress(OSError):
                w.proc.kill()
            w.proc.join(1.0)
        close_conn(w.conn)
