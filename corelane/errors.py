"""The one exception hierarchy of corelane.

::

    CorelaneError
    ├── TaskError          the user's function raised; .index, .item, .remote_traceback
    ├── RemoteTraceback    the worker's traceback, chained as __cause__ of a task's own
    │                      exception where the Executor API raises that exception itself
    ├── WorkerDied         the process running the item vanished; .pid, .exitcode, .signal
    ├── TaskTimeout        the item overran its budget (also a TimeoutError)
    ├── Cancelled          the caller stopped the run
    ├── Closed             the object was closed by you (also a RuntimeError, as the
    │                      Executor contract asks after shutdown)
    ├── Full               a bound on pending work was reached (also a queue.Full)
    ├── Broken             the other end went away for good (a pool: also
    │                      concurrent.futures.BrokenExecutor)
    │   └── InitializerError   a worker's initializer raised; the pool will not respawn it
    ├── NotPicklable       cannot cross a process boundary (also a pickle.PicklingError)
    ├── StageError         a pipeline stage failed; .stage, .cause
    ├── BadImage           an image was refused (corrupt, format not allowed, over the caps)
    ├── ServiceError       errors of the web service, mapped to HTTP in one handler
    │   ├── UploadRejected     (400/413/415)
    │   └── JobNotFound        (404)
    └── InternalError      our bug; the message asks for a report

Every error keeps its state in ``args`` (or a ``__reduce__``) so it survives a pickle round trip
between processes.
"""

from __future__ import annotations

import pickle
import queue
import signal as _signal
from concurrent.futures import BrokenExecutor
from typing import Any


class CorelaneError(Exception):
    """Base class of every error corelane raises."""


class TaskError(CorelaneError):
    """The user's function raised while processing one item.

    The original exception is chained as ``__cause__`` (rebuilt in the parent), and the worker's
    formatted traceback is kept as text in ``remote_traceback``.
    """

    def __init__(
        self, index: int | None, item: Any, exception: BaseException, remote_traceback: str = ""
    ) -> None:
        self.index = index
        self.item = item
        self.exception = exception
        self.remote_traceback = remote_traceback
        where = f"item {index}" if index is not None else "task"
        message = f"{where} failed: {type(exception).__name__}: {exception}"
        if remote_traceback:
            message += "\n\nWorker traceback:\n" + remote_traceback.rstrip()
        super().__init__(message)
        self.__cause__ = exception

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.index, self.item, self.exception, self.remote_traceback))


class RemoteTraceback(CorelaneError):
    """The traceback of an exception raised in a worker, as text (CPython's _RemoteTraceback).

    The Executor API (``Pool.submit``, ``Pool.map``) raises a task's own exception, as
    ProcessPoolExecutor does; this is its ``__cause__``, so the worker's file and line show.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        super().__init__(f'\n"""\n{text.rstrip()}\n"""')

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.text,))


def _signal_name(signum: int | None) -> str | None:
    if signum is None:
        return None
    try:
        return _signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class WorkerDied(CorelaneError):
    """The worker process running an item exited without reporting a result."""

    def __init__(self, index: int | None, pid: int | None, exitcode: int | None,
                 how: str | None = None) -> None:
        self.index = index
        self.pid = pid
        self.exitcode = exitcode
        self.how = how  # said instead of pid and exit code where those are unknown (Dask)
        self.signal = -exitcode if exitcode is not None and exitcode < 0 else None
        where = f"item {index}" if index is not None else "a task"
        if how is not None:
            super().__init__(f"{where}: {how}; other items continue")
            return
        if self.signal is not None:
            how = f"killed by {_signal_name(self.signal)}"
            if self.signal == _signal.SIGKILL:
                how += " (often the out-of-memory killer)"
        else:
            how = f"exited with code {exitcode}"
        super().__init__(
            f"{where}: worker {pid} {how}; a new worker takes its place, other items continue"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.index, self.pid, self.exitcode, self.how))


class TaskTimeout(CorelaneError, TimeoutError):
    """An item ran longer than its ``timeout``; its worker was stopped and replaced."""

    def __init__(self, index: int | None, timeout: float, pid: int | None = None) -> None:
        self.index = index
        self.timeout = timeout
        self.pid = pid
        where = f"item {index}" if index is not None else "task"
        super().__init__(
            f"{where} exceeded its {timeout:g} s timeout; worker {pid} was stopped and replaced"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.index, self.timeout, self.pid))


class Cancelled(CorelaneError):
    """The run was stopped by the caller (or by an earlier failure with ``errors="raise"``)."""


class Closed(CorelaneError, RuntimeError):
    """The pool (or other object) was closed by its owner and cannot take more work."""


class Broken(CorelaneError, BrokenExecutor):
    """The object can no longer work, because something it depends on went away for good."""


class InitializerError(Broken):
    """A worker's ``initializer`` raised: the pool stops instead of respawning forever (gh-87472)."""

    def __init__(self, message: str, remote_traceback: str = "") -> None:
        self.remote_traceback = remote_traceback
        full = message
        if remote_traceback:
            full += "\n\nWorker traceback:\n" + remote_traceback.rstrip()
        super().__init__(full)
        self._message = message

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self._message, self.remote_traceback))


class NotPicklable(CorelaneError, pickle.PicklingError):
    """An object could not be serialized (neither by pickle nor by cloudpickle)."""

    def __init__(self, what: str, reason: str = "") -> None:
        self.what = what
        self.reason = reason
        message = f"cannot send {what} to another process"
        if reason:
            message += f": {reason}"
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.what, self.reason))


class StageError(CorelaneError):
    """A pipeline stage failed; ``stage`` names it and ``__cause__`` holds the item's error."""

    def __init__(self, stage: str, cause: BaseException) -> None:
        self.stage = stage
        self.cause = cause
        super().__init__(f"stage {stage!r}: {cause}")
        self.__cause__ = cause

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.stage, self.cause))


class ServiceError(CorelaneError):
    """An error of the web service that maps to an HTTP status."""

    status = 400

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.status))


class UploadRejected(ServiceError):
    """An upload or its options were refused (bad content, too large, malformed)."""

    status = 400


class JobNotFound(ServiceError):
    """No job (or item) with that id."""

    status = 404


class InternalError(CorelaneError):
    """A bug in corelane itself."""

    def __init__(self, message: str) -> None:
        super().__init__(
            f"{message} (this is a bug in corelane; please report it with this message)"
        )


class BadImage(CorelaneError, ValueError):
    """An image was refused: unreadable, not an allowed format, or over the size/pixel caps."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


class Full(CorelaneError, queue.Full):
    """A bound on pending work was reached: collect results (e.g. ``Offloader.poll``) first."""
