"""Process-aware logging: records logged in workers reach the parent's handlers.

``corelane.Pool(log_level=logging.INFO)`` turns it on for a pool; :func:`forward_worker_logs` does
the same for plain ``multiprocessing`` code. Nothing else to wire: no QueueHandler, no listener.

::

    worker process                                  parent process
    --------------                                  --------------
    configure_worker(config): the root logger's     LogForwarder: one thread waits on every
    handlers are replaced by one that formats the   worker's pipe and hands each record to
    message (args, exception text), tags it with    logging.getLogger(record.name).handle(record),
    the worker's name and pid, and sends it on      i.e. to the parent's own handlers
    the worker's OWN pipe  ------------------------>

One pipe per worker (not one queue shared by all): a shared queue has a shared write lock, and a
worker SIGKILLed while holding it would silence every other worker for good. With a pipe each,
a dead worker loses at most its own last record, and records of one worker arrive in order.

Under fork a worker inherits the parent's root handlers; they are removed there, so a record is
not written twice (once by the worker, once by the parent).
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
import pickle
import queue as queue_module
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

DRAIN_SECONDS = 2.0  # how long stop() may spend reading records still in the pipes
_HELLO = "corelane-log-hello"  # a worker's first message: it started, its pipe is its alone


def _as_level(level: int | str) -> int:
    if isinstance(level, str):
        value = logging.getLevelName(level.upper())
        if not isinstance(value, int):
            raise ValueError(f"unknown log level {level!r}")
        return value
    return int(level)


@dataclass(frozen=True)
class WorkerLogConfig:
    """What a worker needs to forward its records (picklable when a process is created).

    Attributes:
        level: the worker's root logger level.
        conn: this worker's own pipe to the parent (Pool), or None.
        queue: a multiprocessing queue shared by the workers (forward_worker_logs), or None.
        tag: prefix each message with ``[<process name> pid <pid>]``.
    """

    level: int
    conn: Connection | None = None
    queue: Any = None
    tag: bool = True


def _prepare(record: logging.LogRecord, tag: bool) -> dict[str, Any]:
    """Make ``record`` safe to pickle: the message formatted, exception text inlined, tagged."""
    message = record.getMessage()
    if record.exc_info:
        message += "\n" + logging.Formatter().formatException(record.exc_info)
    elif record.exc_text:
        message += "\n" + record.exc_text
    if record.stack_info:
        message += "\n" + record.stack_info
    record.worker = f"{record.processName}[{record.process}]"
    if tag:
        message = f"[{record.processName} pid {record.process}] {message}"
    data = dict(record.__dict__)
    data.update(msg=message, message=message, args=None, exc_info=None, exc_text=None,
                stack_info=None)
    for key, value in list(data.items()):  # extra= attributes that cannot travel become text
        try:
            pickle.dumps(value)
        except Exception:  # noqa: BLE001 - anything unpicklable
            data[key] = repr(value)
    return data


class _PipeHandler(logging.Handler):
    """Worker side: sends each record on this worker's pipe (Handler.handle holds self.lock)."""

    def __init__(self, conn: Connection, tag: bool) -> None:
        super().__init__()
        self.conn = conn
        self.tag = tag

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.conn.send_bytes(pickle.dumps(_prepare(record, self.tag)))
        except (OSError, EOFError):
            pass  # the parent stopped listening: nobody is left to read it
        except Exception:  # noqa: BLE001 - logging must never break the task
            self.handleError(record)


class _QueueHandler(logging.handlers.QueueHandler):
    def __init__(self, queue: Any, tag: bool) -> None:
        super().__init__(queue)
        self.tag = tag

    def prepare(self, record: logging.LogRecord) -> Any:
        return _prepare(record, self.tag)


def configure_worker(config: WorkerLogConfig) -> None:
    """Route this process's log records to the parent (call it first thing in a worker)."""
    root = logging.getLogger()
    for old in list(root.handlers):  # inherited under fork: the parent writes them already
        root.removeHandler(old)
    handler: logging.Handler
    if config.conn is not None:
        handler = _PipeHandler(config.conn, config.tag)
        with contextlib.suppress(OSError):
            config.conn.send_bytes(pickle.dumps(_HELLO))
    elif config.queue is not None:
        handler = _QueueHandler(config.queue, config.tag)
    else:
        raise ValueError("a WorkerLogConfig needs a conn or a queue")
    root.addHandler(handler)
    root.setLevel(config.level)


def _dispatch(data: Any) -> None:
    """Parent side: hand a worker's record to the parent's logger of the same name."""
    record = data if isinstance(data, logging.LogRecord) else logging.makeLogRecord(data)
    logger = logging.getLogger(record.name) if record.name != "root" else logging.getLogger()
    logger.handle(record)


class LogForwarder:
    """The parent's end of worker logging for one pool: a pipe per worker and a listener thread.

    Args:
        ctx: the multiprocessing context the workers are started with.
        level: level of the workers' root loggers (an int or a name such as "INFO").
        tag: prefix each forwarded message with the worker's name and pid.
    """

    def __init__(self, ctx: Any, level: int | str, *, tag: bool = True) -> None:
        self.level = _as_level(level)
        self.tag = tag
        self._ctx = ctx
        self._lock = threading.Lock()
        self._pipes: dict[Connection, Connection | None] = {}  # read end -> our write copy
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="corelane-logs", daemon=True)
        self._thread._corelane = True  # type: ignore[attr-defined] # moves records, takes no user lock

    def start(self) -> None:
        """Start the listener thread."""
        self._thread.start()

    def worker_config(self) -> WorkerLogConfig:
        """A new pipe for one more worker; pass the result to it as it is created."""
        reader, writer = self._ctx.Pipe(duplex=False)
        with self._lock:
            self._pipes[reader] = writer
        self._wake()
        return WorkerLogConfig(self.level, conn=writer, tag=self.tag)

    def stop(self, timeout: float = DRAIN_SECONDS) -> None:
        """Deliver the records already sent (bounded by ``timeout``), then stop listening."""
        self._stopping = True
        self._wake()
        if self._thread.is_alive():
            self._thread.join(timeout + 1.0)
        if self._thread.is_alive():
            return  # wedged in a handler: leave its fds to it
        with self._lock:
            pipes = list(self._pipes.items())
            self._pipes.clear()
        for reader, writer in pipes:
            reader.close()
            if writer is not None:
                writer.close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def _run(self) -> None:
        while not self._stopping:
            with self._lock:
                readers = list(self._pipes)
            ready = wait([*readers, self._wake_r], timeout=0.5)
            for r in ready:
                if r == self._wake_r:
                    with contextlib.suppress(BlockingIOError, OSError):
                        os.read(self._wake_r, 4096)
                else:
                    self._read(r)  # type: ignore[arg-type]
        # Stopping: the workers have been shut down; what they sent is in the pipes already.
        deadline = time.monotonic() + DRAIN_SECONDS
        with self._lock:
            readers = list(self._pipes)
        for reader in readers:
            with contextlib.suppress(OSError, EOFError):
                while time.monotonic() < deadline and not reader.closed and reader.poll():
                    self._read(reader)

    def _read(self, reader: Connection) -> None:
        try:
            data = pickle.loads(reader.recv_bytes())
        except (EOFError, OSError):  # the worker exited and every copy of its write end is closed
            with self._lock:
                writer = self._pipes.pop(reader, None)
            reader.close()
            if writer is not None:
                writer.close()
            return
        if data == _HELLO:  # the worker has its copy now: drop ours, so its exit means EOF
            with self._lock:
                writer = self._pipes.get(reader)
                if reader in self._pipes:
                    self._pipes[reader] = None
            if writer is not None:
                writer.close()
            return
        with contextlib.suppress(Exception):
            _dispatch(data)


class _Dispatcher(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        _dispatch(record)


class WorkerLogs:
    """Worker logging for plain ``multiprocessing`` (see :func:`forward_worker_logs`).

    Attributes:
        config: pass to :func:`configure_worker` in each process you start yourself.
        initializer / initargs: give these to ``multiprocessing.Pool`` (or ProcessPoolExecutor).
    """

    initializer = staticmethod(configure_worker)

    def __init__(self, level: int | str, ctx: Any = None, tag: bool = True) -> None:
        import multiprocessing

        ctx = ctx or multiprocessing.get_context()
        self._queue = ctx.Queue()
        self.config = WorkerLogConfig(_as_level(level), queue=self._queue, tag=tag)
        self.initargs = (self.config,)
        self._listener = logging.handlers.QueueListener(self._queue, _Dispatcher())
        self._listener.start()

    def stop(self) -> None:
        """Deliver what the workers sent, then stop listening."""
        if self._listener._thread is not None:
            with contextlib.suppress(queue_module.Full, OSError, ValueError):
                self._listener.stop()
        self._queue.close()
        self._queue.join_thread()

    def __enter__(self) -> WorkerLogs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def forward_worker_logs(level: int | str = logging.INFO, *, ctx: Any = None,
                        tag: bool = True) -> WorkerLogs:
    """Send the log records of processes you start yourself to this process's handlers.

    Example:
        >>> with forward_worker_logs(logging.INFO) as logs, multiprocessing.Pool(
        ...         4, initializer=logs.initializer, initargs=logs.initargs) as pool:
        ...     pool.map(work, items)

    (With corelane, ``corelane.Pool(log_level=logging.INFO)`` is all it takes.) The workers share
    one queue here, as multiprocessing.Pool gives all of them the same initargs.
    """
    return WorkerLogs(level, ctx, tag)
