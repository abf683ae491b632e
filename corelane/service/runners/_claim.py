"""The loop both runners share: claim the oldest queued job, run it, or sleep until woken."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

IDLE_POLL_S = 1.0  # how often an idle runner looks for queued jobs (a wake() is immediate)


def claim_jobs(store: Any, stop: threading.Event, wake: threading.Event,
               run: Callable[[dict[str, Any]], None]) -> None:
    """Until ``stop``: claim the next queued job and ``run`` it; a failure is logged, not fatal."""
    while not stop.is_set():
        try:
            job = store.claim_next_job()
        except Exception:
            log.exception("could not read the job queue; retrying")
            job = None
        if job is None:
            wake.wait(IDLE_POLL_S)
            wake.clear()
            continue
        try:
            run(job)
        except Exception:
            log.exception("runner failed on job %s; it stays running until restart", job["id"])
            stop.wait(IDLE_POLL_S)
