"""The embedded runner: a thread in the web process that runs queued jobs on the engine.

::

    store (queued jobs) --claim oldest--> runner thread --imap_unordered--> engine workers
                                               |  (one item = one image, chunksize 1,     | write outputs
                                               |   errors="return", per-item timeout)     | to objects/
                                               v                                          v
                                  store: item done/failed  <----- small summary dicts ----+
                                               |
                                               v
                                   bus: item_done / item_failed / job_progress / job_finished

Jobs run one at a time, oldest first. A worker that dies on an item (a poison input) or overruns
the timeout is retried up to ``max_attempts`` times in a later pass, then the item fails with a
clear error; the rest of the job goes on. On start, jobs left ``running`` by a crash go back to
``queued`` and only their unsettled items run again (settled items are never redone: every
settle is a conditional UPDATE on ``state = 'queued'``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from corelane.engine import Failure, Pool
from corelane.errors import Broken, Closed, TaskTimeout, WorkerDied
from corelane.service.bus import Bus, BusEvent
from corelane.service.config import ServiceConfig
from corelane.service.jobs import FINISH_EVENTS, EventName, ItemState, JobState, final_state
from corelane.service.objects import ObjectStore
from corelane.service.runners._claim import claim_jobs
from corelane.service.runners._work import ItemTask, init_worker, process_item
from corelane.service.runners.policy import (
    ItemLimits,
    ProgressClock,
    decode_options,
    failure_text,
    gave_up_text,
    retry_or_give_up,
    timeout_text,
)
from corelane.service.store import Store

log = logging.getLogger(__name__)



class LocalRunner:
    """Runs jobs from the store on a long-lived engine Pool, publishing events on the bus."""

    def __init__(
        self,
        store: Store,
        objects: ObjectStore,
        bus: Bus,
        config: ServiceConfig,
        *,
        process_fn: Callable[[ItemTask], dict[str, Any]] = process_item,
    ) -> None:
        self.store = store
        self.objects = objects
        self.bus = bus
        self.config = config
        self.process_fn = process_fn
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._cancelled: set[str] = set()
        self._lock = threading.Lock()
        self._pool: Pool | None = None
        self._thread: threading.Thread | None = None
        self.current_job: str | None = None

    # ------------------------------------------------------------------ control

    def start(self) -> None:
        """Requeue jobs a crash left running, then start the runner thread."""
        recovered = self.store.recover()
        if recovered:
            log.info("requeued %d job(s) left running: %s", len(recovered), recovered)
            self.objects.sweep_temp()  # half-written outputs of the interrupted items
        self._thread = threading.Thread(target=self._loop, name="corelane-runner", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Look for queued jobs now (called after a job is created or retried)."""
        self._wake.set()

    def cancel(self, job_id: str) -> None:
        """Stop running ``job_id`` soon (the store already marked it cancelled)."""
        with self._lock:
            self._cancelled.add(job_id)
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread and the workers; the job in progress stays ``running`` (resumed later)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.terminate()

    def worker_pids(self) -> list[int]:
        """Process ids of the engine workers (empty before the first job)."""
        pool = self._pool
        return list(pool.pids) if pool is not None else []

    # ------------------------------------------------------------------ the loop

    def _get_pool(self) -> Pool:
        if self._pool is None:
            self._pool = Pool(self.config.workers, initializer=init_worker,
                              initargs=(self.config.nice,),
                              start_method=self.config.start_method)
        return self._pool

    def _loop(self) -> None:
        claim_jobs(self.store, self._stop, self._wake, self._run_job)

    def _publish(self, name: EventName, job_id: str, data: dict[str, Any]) -> None:
        self.bus.publish(BusEvent(name.value, job_id, data))

    def _tasks(self, job: dict[str, Any], pending: list[dict[str, Any]]) -> list[ItemTask]:
        options = decode_options(job["options"])
        limits = ItemLimits.from_config(self.config).image_limits()
        root = str(self.objects.root)
        return [ItemTask(item["id"], str(self.objects.path(item["source_key"])), root, options,
                         limits) for item in pending]

    def _run_job(self, job: dict[str, Any]) -> None:
        job_id = job["id"]
        self.current_job = job_id
        try:
            self._run_items(job)
        finally:
            self.current_job = None
            with self._lock:
                self._cancelled.discard(job_id)

    def _is_cancelled(self, job_id: str) -> bool:
        return job_id in self._cancelled or self._stop.is_set()

    def _run_items(self, job: dict[str, Any]) -> None:
        job_id = job["id"]
        counts = {k: job[k] for k in ("done", "failed", "cancelled")}
        total = job["total"]
        started = time.monotonic()
        settled_here = 0
        clock = ProgressClock()

        def progress() -> None:
            if not clock.due(final=sum(counts.values()) >= total):
                return
            elapsed = max(time.monotonic() - started, 1e-6)
            rate = settled_here / elapsed
            left = total - sum(counts.values())
            self._publish(EventName.JOB_PROGRESS, job_id, {
                "job_id": job_id, "state": JobState.RUNNING.value, "total": total, **counts,
                "rate": round(rate, 3), "eta": round(left / rate, 2) if rate > 0 else None,
            })

        progress()
        pending = [i for i in self.store.list_items(job_id, ItemState.QUEUED) if i["source_key"]]
        attempts = {item["id"]: int(item["attempts"]) for item in pending}
        while pending and not self._is_cancelled(job_id):
            tasks = self._tasks(job, pending)
            retry: list[dict[str, Any]] = []
            try:
                results = self._get_pool().imap_unordered(
                    self.process_fn, tasks, chunksize=1, timeout=self.config.item_timeout,
                    errors="return")
            except (Broken, Closed):
                self._pool = None
                results = self._get_pool().imap_unordered(
                    self.process_fn, tasks, chunksize=1, timeout=self.config.item_timeout,
                    errors="return")
            try:
                for res in results:
                    if isinstance(res, Failure):
                        item = pending[res.index]
                        exc = res.exception
                        if isinstance(exc, WorkerDied | TaskTimeout):
                            n = attempts[item["id"]] + 1
                            attempts[item["id"]] = n
                            if retry_or_give_up(n, self.config.max_attempts) \
                                    and not self._is_cancelled(job_id):
                                self.store.set_attempts(item["id"], n)
                                retry.append(item)
                                continue
                            cause = timeout_text(self.config.item_timeout) \
                                if isinstance(exc, TaskTimeout) else str(exc)
                            ok = self.store.item_failed(item["id"], gave_up_text(n, cause),
                                                        attempts=n)
                        else:
                            ok = self.store.item_failed(item["id"], failure_text(exc))
                        if ok:
                            counts["failed"] += 1
                            settled_here += 1
                            self._publish(EventName.ITEM_FAILED, job_id, {
                                "job_id": job_id, "item": self.store.get_item(job_id, item["id"])})
                    else:
                        if self.store.item_done(res["item_id"], res):
                            counts["done"] += 1
                            settled_here += 1
                            self._publish(EventName.ITEM_DONE, job_id, {
                                "job_id": job_id,
                                "item": self.store.get_item(job_id, res["item_id"]),
                                "worker_done_at": res.get("worker_done_at")})
                    progress()
                    if self._is_cancelled(job_id):
                        break
            finally:
                close = getattr(results, "close", None)
                if close is not None:
                    close()
            pending = retry
        if self._stop.is_set():
            return  # shutting down: the job stays running and resumes on the next start
        self._finish(job_id)

    def _finish(self, job_id: str) -> None:
        current = self.store.get_job(job_id)
        if current["state"] == JobState.RUNNING.value:
            state = final_state(current["done"], current["failed"], current["cancelled"],
                                current["total"])
            if current["queued"] == 0 and self.store.finish_job(job_id, state):
                current = self.store.get_job(job_id)
                self._publish(FINISH_EVENTS[state], job_id, {"job_id": job_id, "job": current})
        # A job cancelled meanwhile was settled (and announced) by the cancel request.
