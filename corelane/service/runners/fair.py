"""Fair scheduling between jobs, the one rule both runners follow: round-robin, each job capped.

::

    running jobs, in the order they started        take(): the job whose last turn is oldest
      job A  [a5 a6 a7 ... a400]   out: 2 (cap 2)   -> skipped (at its cap)
      job B  [b1]                  out: 0, never    -> b1 (a newcomer goes first)
      job C  []                    out: 1           -> skipped (nothing pending)

A job that arrives while a 400-image job runs gets the next free slot, not the 401st: its images
interleave with the big one's instead of waiting behind them. ``cap`` bounds how many items of one
job are out at once (on engine workers locally, in the broker or on Celery workers), so one job
cannot hold every worker even when it is alone with a short one. The runners add the mechanism:
the local one takes an item whenever an engine worker is free, the Celery dispatcher whenever the
broker holds fewer than its window (runners/local.py, runners/celery.py).

Not thread-safe: each runner calls it from one thread or under its own lock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any


class _Lane:
    """One running job: its items not yet handed out, and how many are out."""

    __slots__ = ("pending", "out", "turn")

    def __init__(self, items: Iterable[Any]) -> None:
        self.pending: deque[Any] = deque(items)
        self.out = 0
        self.turn = -1  # when it last got an item (-1: never, so a newcomer goes first)


class FairQueue:
    """Items of several jobs, handed out round-robin with at most ``cap`` out per job."""

    def __init__(self, cap: int | None = None) -> None:
        """
        Args:
            cap: items of one job out at once (None: no cap but the caller's own limit).
        """
        if cap is not None and cap < 1:
            raise ValueError(f"cap must be >= 1 (or None for no cap), got {cap}")
        self.cap = cap
        self._lanes: dict[str, _Lane] = {}  # in the order the jobs came
        self._turns = 0

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._lanes

    def __len__(self) -> int:
        return len(self._lanes)

    def jobs(self) -> list[str]:
        """The jobs held, in the order they came."""
        return list(self._lanes)

    def add_job(self, job_id: str, items: Iterable[Any]) -> None:
        """Put a job in the ring: it gets the next turn (it has had none), after other newcomers."""
        if job_id in self._lanes:
            self._lanes[job_id].pending.extend(items)
            return
        self._lanes[job_id] = _Lane(items)

    def put_back(self, job_id: str, item: Any) -> None:
        """Queue an item again (a retry), at the end of its job's line; it no longer counts as out.
        """
        lane = self._lanes[job_id]
        lane.out = max(0, lane.out - 1)
        lane.pending.append(item)

    def take(self) -> tuple[str, Any] | None:
        """The next item to run as (job id, item), or None when every job is idle or at its cap.

        Among the jobs that may take one, the one whose last turn is oldest goes (a job that
        never had one first, in the order they came): round-robin that a newcomer joins at once.
        """
        best: tuple[str, _Lane] | None = None
        for job_id, lane in self._lanes.items():
            if lane.pending and (self.cap is None or lane.out < self.cap) \
                    and (best is None or lane.turn < best[1].turn):
                best = (job_id, lane)
        if best is None:
            return None
        job_id, lane = best
        lane.out += 1
        lane.turn = self._turns
        self._turns += 1
        return job_id, lane.pending.popleft()

    def settle(self, job_id: str) -> None:
        """One item of ``job_id`` that was out came back (done or failed for good)."""
        lane = self._lanes.get(job_id)
        if lane is not None:
            lane.out = max(0, lane.out - 1)

    def clear(self, job_id: str) -> list[Any]:
        """Forget a job's items not yet handed out (cancelled); those out still settle."""
        lane = self._lanes.get(job_id)
        if lane is None:
            return []
        left = list(lane.pending)
        lane.pending.clear()
        return left

    def drop(self, job_id: str) -> list[Any]:
        """Take a job out of the ring (cancelled, or finished); returns its items never handed out.
        """
        lane = self._lanes.pop(job_id, None)
        return list(lane.pending) if lane is not None else []

    def out(self, job_id: str) -> int:
        """Items of ``job_id`` handed out and not yet settled."""
        lane = self._lanes.get(job_id)
        return lane.out if lane is not None else 0

    def pending(self, job_id: str) -> int:
        """Items of ``job_id`` not yet handed out."""
        lane = self._lanes.get(job_id)
        return len(lane.pending) if lane is not None else 0

    def idle(self, job_id: str) -> bool:
        """True when ``job_id`` has nothing pending and nothing out (its run is over)."""
        return self.pending(job_id) == 0 and self.out(job_id) == 0

    def total_out(self) -> int:
        """Items out across all jobs."""
        return sum(lane.out for lane in self._lanes.values())


def job_cap(job_concurrency: int, slots: int) -> int | None:
    """The per-job cap a runner uses: ``job_concurrency`` when set (> 0), else no cap beyond
    the ``slots`` the runner fills (engine workers, or the Celery dispatcher's window)."""
    if job_concurrency > 0:
        return min(job_concurrency, max(1, slots))
    return None
