"""Progress events: the one vocabulary of the engine's runs (local and on a cluster) and pipelines.

Events are frozen dataclasses, cheap to build and safe to send between processes and threads.
A *sink* is any callable that takes an event; :mod:`corelane.progress` has the stock ones.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    """Where a run stands.

    Attributes:
        done: items finished (succeeded or failed).
        total: items expected, or None when the input has no known length.
        failed: items that failed.
        elapsed: seconds since the run started.
        rate: items finished per second since the run started.
        label: what the numbers count (a stage name, a job id ...), or "".
    """

    done: int
    total: int | None
    failed: int
    elapsed: float
    rate: float
    label: str = ""

    kind = "progress"

    @property
    def eta(self) -> float | None:
        """Seconds left at the current rate, or None when unknown."""
        if self.total is None or self.rate <= 0:
            return None
        return max(0.0, (self.total - self.done) / self.rate)

    @property
    def fraction(self) -> float | None:
        if not self.total:
            return None
        return self.done / self.total

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = self.kind
        data["eta"] = self.eta
        return data


@dataclass(frozen=True, slots=True)
class ItemFailed:
    """One item failed; the run goes on (``errors="return"``) or stops (``errors="raise"``)."""

    index: int
    error: str
    label: str = ""

    kind = "item_failed"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = self.kind
        return data


@dataclass(frozen=True, slots=True)
class RunFinished:
    """The run ended: every item is done, or it was stopped (``state`` says which)."""

    done: int
    total: int | None
    failed: int
    elapsed: float
    state: str = "finished"  # finished | failed | cancelled
    label: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    kind = "finished"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = self.kind
        return data


Event = ProgressEvent | ItemFailed | RunFinished
