"""The job/item model and its state machine.

::

    job:   queued --claim--> running --all items settled--> done | failed
             ^  \\                 \\--cancel--> cancelled
             |   \\--cancel--> cancelled
             +---- retry failed (done/failed/cancelled with failed items)
             +---- server restart (running -> queued; only unfinished items run again)

    item:  queued --> done | failed | cancelled        (failed/cancelled --retry--> queued)

A job ends ``done`` when every item is done, ``failed`` when at least one item failed (the other
items' outputs are still there), ``cancelled`` when a person stopped it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class JobState(enum.StrEnum):
    """Where a job stands (stored as its string value)."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


class ItemState(enum.StrEnum):
    """Where one image of a job stands (stored as its string value)."""

    QUEUED = "queued"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


# Allowed job transitions: from -> set of to.
JOB_TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.RUNNING, JobState.CANCELLED, JobState.DONE,
                                JobState.FAILED}),
    JobState.RUNNING: frozenset({JobState.DONE, JobState.FAILED, JobState.CANCELLED,
                                 JobState.QUEUED}),
    JobState.DONE: frozenset({JobState.QUEUED}),
    JobState.FAILED: frozenset({JobState.QUEUED}),
    JobState.CANCELLED: frozenset({JobState.QUEUED}),
}


def can_move(current: JobState, to: JobState) -> bool:
    """True when a job in ``current`` may move to ``to``."""
    return to in JOB_TRANSITIONS[current]


def final_state(done: int, failed: int, cancelled: int, total: int) -> JobState:
    """The state a job ends in once none of its items is queued."""
    if cancelled:
        return JobState.CANCELLED
    if failed:
        return JobState.FAILED
    return JobState.DONE


class EventName(enum.StrEnum):
    """Socket.IO event names (also the bus's event kinds); documented in docs/events.md."""

    JOB_CREATED = "job_created"
    JOB_STATE = "job_state"  # a snapshot: the job and all its items (sent on join)
    JOBS_STATE = "jobs_state"  # a snapshot of the job list (sent on subscribe)
    JOB_PROGRESS = "job_progress"
    ITEM_DONE = "item_done"
    ITEM_FAILED = "item_failed"
    JOB_FINISHED = "job_finished"
    JOB_FAILED = "job_failed"
    JOB_CANCELLED = "job_cancelled"
    JOB_QUEUED = "job_queued"
    JOB_DELETED = "job_deleted"  # the job and its files are gone


FINISH_EVENTS = {
    JobState.DONE: EventName.JOB_FINISHED,
    JobState.FAILED: EventName.JOB_FAILED,
    JobState.CANCELLED: EventName.JOB_CANCELLED,
}


@dataclass
class Progress:
    """Counts of one job's items, with rate and ETA measured by the runner."""

    total: int
    done: int = 0
    failed: int = 0
    cancelled: int = 0
    rate: float = 0.0
    eta: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def settled(self) -> int:
        """Items that will not run again (done, failed or cancelled)."""
        return self.done + self.failed + self.cancelled

    def to_dict(self) -> dict[str, Any]:
        return {"total": self.total, "done": self.done, "failed": self.failed,
                "cancelled": self.cancelled, "rate": round(self.rate, 3),
                "eta": None if self.eta is None else round(self.eta, 2)}
