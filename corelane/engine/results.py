"""What a run returns: a Failure in place of a failed item (``errors="return"``), and the rule
that puts results in the order a call promises and raises a failure in its turn."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from corelane.errors import CorelaneError, RemoteTraceback, TaskError
from corelane.progress import Reporter


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


# A run of results for consecutive input indices: (first index, values, failures among them).
# Failed items hold a Failure in their place in ``values``.
Run = tuple[int, list[Any], int]
Errors = Literal["raise", "return"]
Style = Literal["task", "executor"]  # which exception a failure raises: TaskError or its own


class InTurn:
    """Turns runs, as they finish, into the lists a call yields: in input order when
    ``ordered`` (later runs wait for earlier ones), and with ``errors="raise"`` the first
    failure raised only after every result before it was yielded. One rule for every runner.
    """

    def __init__(self, ordered: bool, errors: Errors, style: Style, reporter: Reporter) -> None:
        self.ordered = ordered
        self.errors = errors
        self.style = style
        self.reporter = reporter
        self.yielded = 0  # results handed out so far (the read-ahead window counts from here)
        self._next = 0
        self._waiting: dict[int, tuple[list[Any], int]] = {}

    def emit(self, runs: list[Run]) -> Iterator[list[Any]]:
        for first, values, n_failed in runs:
            if self.ordered and first != self._next:
                self._waiting[first] = (values, n_failed)
                continue
            due = [(values, n_failed)]
            if self.ordered:
                self._next = first + len(values)
                while self._next in self._waiting:
                    due.append(self._waiting.pop(self._next))
                    self._next += len(due[-1][0])
            for values, n_failed in due:
                self.yielded += len(values)
                if n_failed and self.errors == "raise":
                    k = next(i for i, v in enumerate(values) if isinstance(v, Failure))
                    self.reporter.add(k, 1)
                    if k:
                        yield values[:k]
                    bad = values[k]
                    raise bad.to_error() if self.style == "task" else bad.raised()
                self.reporter.add(len(values), n_failed)
                yield values
