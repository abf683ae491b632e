"""What a run returns in place of a result when an item fails with ``errors="return"``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from corelane.errors import CorelaneError, RemoteTraceback, TaskError


@dataclass(frozen=True, slots=True)
class Failure:
    """A failed item, returned in its place (the tutorial's ``safe_wrapper``, built in).

    Attributes:
        index: position of the item in the input.
        item: the input item itself.
        exception: what went wrong: the task's own exception, or WorkerDied / TaskTimeout /
            NotPicklable from corelane.
        traceback: the worker's formatted traceback ("" when there is none, e.g. a dead worker).
    """

    index: int
    item: Any
    exception: BaseException
    traceback: str = ""

    def to_error(self) -> BaseException:
        """The exception ``errors="raise"`` raises for this failure."""
        if isinstance(self.exception, CorelaneError):
            return self.exception
        return TaskError(self.index, self.item, self.exception, self.traceback)

    def raised(self) -> BaseException:
        """The exception the Executor API raises: the task's own, its worker traceback chained
        as ``__cause__`` (what ProcessPoolExecutor does); corelane's own errors as they are."""
        exc = self.exception
        if self.traceback and exc.__cause__ is None:
            exc.__cause__ = RemoteTraceback(self.traceback)
        return exc

    def __bool__(self) -> bool:  # a Failure is falsy, so `if result:` filters failures out
        return False
