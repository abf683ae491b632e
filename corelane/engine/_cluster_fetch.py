"""Fetching finished tasks' results from a Dask cluster without waiting on a dead worker.

``Client.gather`` asks the scheduler, which connects to the workers holding the results. A
worker that died a moment before (killed, or restarted by corelane after an overdue item) may
still be listed as a holder; connecting to it is retried until Dask's connect timeout
(``distributed.comm.timeouts.connect``, 30 s by default) before the scheduler looks elsewhere,
and the whole map waits that long (seen in CI: a 1.5 s map took 31.5 s). So a gather still
waiting after REGATHER_AFTER seconds is asked again beside the first; the new request sees
where the results are now (recomputed by Dask on a live worker if need be), and whichever
answer comes first is taken. The overtaken request ends on its own within Dask's timeout.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

__all__ = ["REGATHER_AFTER", "REGATHERS", "fetch", "lost"]

REGATHER_AFTER = 2.0  # s a gather may take before it is asked again beside the first
REGATHERS = 3  # at most this many extra requests per gather (each may move the data again)
WAIT = 0.5  # s between checks of the client while a gather is outstanding


def _bounded_gather(client: Any, tasks: list[Any]) -> tuple[bool, Any]:
    """``(True, values)`` of ``client.gather(tasks)``, or ``(False, exception)``; a request
    still unanswered after REGATHER_AFTER s is repeated (up to REGATHERS times)."""
    answers: queue.Queue[tuple[bool, Any]] = queue.Queue()

    def ask() -> None:
        try:
            answers.put((True, client.gather(tasks)))
        except BaseException as exc:  # noqa: BLE001 - the caller decides; this thread just ends
            answers.put((False, exc))

    asked, waited = 0, 0.0
    while True:
        if asked <= REGATHERS and waited >= REGATHER_AFTER * asked:
            threading.Thread(target=ask, name="corelane-cluster-gather", daemon=True).start()
            asked += 1
        try:
            return answers.get(timeout=WAIT)
        except queue.Empty:
            waited += WAIT
            if client.status in ("closing", "closed"):
                return False, RuntimeError("the Dask client closed during a gather")


def fetch(client: Any, tasks: list[Any]) -> dict[str, bytes | None]:
    """The results of the finished ones among ``tasks``, in one round trip where all can be
    had; a task whose result cannot be had (lost meanwhile) maps to None."""
    finished = [task for task in tasks if task.status == "finished"]
    if not finished:
        return {}
    ok, values = _bounded_gather(client, finished)
    if ok:
        return {task.key: value for task, value in zip(finished, values, strict=True)}
    if len(finished) == 1:
        return {finished[0].key: None}
    out: dict[str, bytes | None] = {}
    for task in finished:  # one was lost or failed meanwhile: each on its own
        out[task.key] = None
        if task.status == "finished":
            ok, values = _bounded_gather(client, [task])
            if ok:
                out[task.key] = values[0]
    return out


def lost(task: Any, data: bytes | None) -> bool:
    """Did Dask lose a task's result? Its worker died holding it: the status says "lost", or
    the task was re-queued ("pending", or "finished" with no result to fetch) while Dask's
    client re-runs it on its own."""
    return data is None and task.status not in ("error", "cancelled")
