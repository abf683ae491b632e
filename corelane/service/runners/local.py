"""The embedded runner: a thread in the web process that runs queued jobs on the engine.

::

    store (queued jobs) --claim, up to max_running_jobs--> runner thread: FairQueue (fair.py)
                                                                  | round-robin, per-job cap
                              lanes (workers + 1 threads) <--take-+
                                 | one item: imap_unordered([task], timeout, errors="return")
                                 v                                                  | write
                           engine workers ---- small summary dicts ---> lane       | outputs
                                                                         |          v objects/
                                          runner thread <--- results ----+
                                               |  store: item done/failed (one writer thread)
                                               v
                                   bus: item_done / item_failed / job_progress / job_finished

Running jobs share the workers: each lane keeps one engine worker busy (one more lane keeps the
next item waiting in the engine, so no worker idles while a result travels back) and takes its
next item from the FairQueue, so a 1-image job that arrives behind a 400-image job runs as soon
as a worker frees up. A worker that dies on an item (a poison input) or overruns the timeout is
retried up to ``max_attempts`` times (the item goes to the back of its job's line), then the
item fails with a clear error; the rest of the job goes on. On start, jobs left ``running`` by a
crash go back to ``queued`` and only their unsettled items run again (settled items are never
redone: every settle is a conditional UPDATE on ``state = 'queued'``).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from corelane.engine import Failure, Pool
from corelane.engine._startmethod import available_cpus
from corelane.errors import Broken, Closed, TaskTimeout, WorkerDied
from corelane.service.bus import Bus, BusEvent
from corelane.service.config import ServiceConfig
from corelane.service.jobs import FINISH_EVENTS, EventName, ItemState, JobState, final_state
from corelane.service.objects import ObjectStore
from corelane.service.runners._work import ItemTask, init_worker, process_item
from corelane.service.runners.fair import FairQueue, job_cap
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

IDLE_POLL_S = 1.0  # how often an idle runner looks for queued jobs (a wake() is immediate)
EXTRA_LANES = 1  # lanes beyond the workers: an item waits in the engine, ready for a free worker


@dataclass
class _Run:
    """What the runner thread keeps about one running job."""

    job_id: str
    total: int
    counts: dict[str, int]
    attempts: dict[str, int]
    started: float = field(default_factory=time.monotonic)
    settled_here: int = 0
    clock: ProgressClock = field(default_factory=ProgressClock)


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
        self.slots = config.workers or available_cpus()
        self._events: queue.SimpleQueue[tuple[str, Any, Any] | None] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._cancelled: set[str] = set()
        self._lock = threading.Lock()
        self._cv = threading.Condition()  # guards _fair; lanes wait on it for work
        self._fair = FairQueue(job_cap(config.job_concurrency, self.slots))
        self._runs: dict[str, _Run] = {}  # running jobs, oldest first (the runner thread's)
        self._pool: Pool | None = None
        self._pool_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._lanes: list[threading.Thread] = []

    @property
    def current_job(self) -> str | None:
        """The oldest running job (None when idle); :attr:`running_jobs` lists them all."""
        return next(iter(list(self._runs)), None)

    @property
    def running_jobs(self) -> list[str]:
        return list(self._runs)

    # ------------------------------------------------------------------ control

    def start(self) -> None:
        """Requeue jobs a crash left running, then start the runner thread and its lanes."""
        recovered = self.store.recover()
        if recovered:
            log.info("requeued %d job(s) left running: %s", len(recovered), recovered)
            self.objects.sweep_temp()  # half-written outputs of the interrupted items
        self._thread = threading.Thread(target=self._loop, name="corelane-runner", daemon=True)
        self._thread.start()
        for n in range(self.slots + EXTRA_LANES):
            lane = threading.Thread(target=self._lane, name=f"corelane-lane-{n}", daemon=True)
            lane.start()
            self._lanes.append(lane)

    def wake(self) -> None:
        """Look for queued jobs now (called after a job is created or retried)."""
        self._events.put(None)

    def cancel(self, job_id: str) -> None:
        """Stop running ``job_id`` soon (the store already marked it cancelled)."""
        with self._lock:
            self._cancelled.add(job_id)
        self._events.put(None)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the threads and the workers; jobs in progress stay ``running`` (resumed later)."""
        self._stop.set()
        self._events.put(None)
        with self._cv:
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.terminate()
        for lane in self._lanes:
            lane.join(max(0.1, timeout / 4))

    def worker_pids(self) -> list[int]:
        """Process ids of the engine workers (empty before the first job)."""
        pool = self._pool
        return list(pool.pids) if pool is not None else []

    # ------------------------------------------------------------------ lanes

    def _get_pool(self) -> Pool:
        with self._pool_lock:
            if self._stop.is_set():
                raise Closed("the runner is stopping")
            if self._pool is None:
                self._pool = Pool(self.config.workers, initializer=init_worker,
                                  initargs=(self.config.nice,),
                                  start_method=self.config.start_method)
            return self._pool

    def _lane(self) -> None:
        """Take the next item the FairQueue gives, run it on the engine, hand back the result."""
        while True:
            with self._cv:
                got = None
                while not self._stop.is_set() and (got := self._fair.take()) is None:
                    self._cv.wait()
            if got is None:
                return
            job_id, work = got
            try:
                result: Any = self._run_one(work[1])
            except Exception as exc:  # the pool broke twice, or is being stopped
                if self._stop.is_set():
                    return
                result = exc
            self._events.put((job_id, work, result))

    def _run_one(self, task: ItemTask) -> Any:
        """One item on the engine: its summary, or a Failure (errors="return")."""
        for again in (False, True):
            pool = self._get_pool()
            try:
                results = pool.imap_unordered(self.process_fn, [task], chunksize=1,
                                              timeout=self.config.item_timeout, errors="return")
                try:
                    return next(iter(results))
                finally:
                    results.close()  # type: ignore[attr-defined]
            except (Broken, Closed):
                if again or self._stop.is_set():
                    raise
                with self._pool_lock:  # a broken pool is replaced once, by whichever lane saw it
                    if self._pool is pool:
                        self._pool = None
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ the runner thread

    def _loop(self) -> None:
        """Claim jobs, settle what the lanes hand back, finish jobs: one thread writes."""
        while not self._stop.is_set():
            self._admit()
            try:
                event = self._events.get(timeout=IDLE_POLL_S)
            except queue.Empty:
                event = None
            while True:
                if event is not None:
                    try:
                        self._settle(*event)
                    except Exception:
                        log.exception("could not record a result of job %s; it stays running "
                                      "until restart", event[0])
                try:
                    event = self._events.get_nowait()
                except queue.Empty:
                    break
            self._sweep()

    def _admit(self) -> None:
        """Claim queued jobs while there is room in the round-robin."""
        while len(self._runs) < self.config.max_running_jobs and not self._stop.is_set():
            try:
                job = self.store.claim_next_job()
            except Exception:
                log.exception("could not read the job queue; retrying")
                return
            if job is None:
                return
            try:
                self._start_job(job)
            except Exception:
                log.exception("could not start job %s; it stays running until restart",
                              job["id"])

    def _start_job(self, job: dict[str, Any]) -> None:
        job_id = job["id"]
        with self._lock:  # claimed again: retried after a cancel whose items may still be out
            self._cancelled.discard(job_id)
        pending = [i for i in self.store.list_items(job_id, ItemState.QUEUED) if i["source_key"]]
        run = _Run(job_id, job["total"], {k: job[k] for k in ("done", "failed", "cancelled")},
                   {item["id"]: int(item["attempts"]) for item in pending})
        self._runs[job_id] = run
        options = decode_options(job["options"])
        limits = ItemLimits.from_config(self.config).image_limits()
        root = str(self.objects.root)
        work = [(item, ItemTask(item["id"], str(self.objects.path(item["source_key"])), root,
                                options, limits)) for item in pending]
        self._progress(run)
        with self._cv:
            self._fair.add_job(job_id, work)
            self._cv.notify_all()

    def _publish(self, name: EventName, job_id: str, data: dict[str, Any]) -> None:
        self.bus.publish(BusEvent(name.value, job_id, data))

    def _progress(self, run: _Run) -> None:
        counts = run.counts
        if not run.clock.due(final=sum(counts.values()) >= run.total):
            return
        rate = run.settled_here / max(time.monotonic() - run.started, 1e-6)
        left = run.total - sum(counts.values())
        self._publish(EventName.JOB_PROGRESS, run.job_id, {
            "job_id": run.job_id, "state": JobState.RUNNING.value, "total": run.total, **counts,
            "rate": round(rate, 3), "eta": round(left / rate, 2) if rate > 0 else None,
        })

    def _is_cancelled(self, job_id: str) -> bool:
        return job_id in self._cancelled or self._stop.is_set()

    def _settle(self, job_id: str, work: tuple[dict[str, Any], ItemTask], res: Any) -> None:
        """Record one item's outcome: done, failed, or back in line for another attempt."""
        run = self._runs.get(job_id)
        if run is None:
            return
        item = work[0]
        if isinstance(res, Failure | Exception):
            exc = res.exception if isinstance(res, Failure) else res
            if isinstance(exc, WorkerDied | TaskTimeout):
                n = run.attempts[item["id"]] + 1
                run.attempts[item["id"]] = n
                if retry_or_give_up(n, self.config.max_attempts) and not self._is_cancelled(job_id):
                    self.store.set_attempts(item["id"], n)
                    with self._cv:
                        self._fair.put_back(job_id, work)
                        self._cv.notify()
                    return
                cause = timeout_text(self.config.item_timeout) \
                    if isinstance(exc, TaskTimeout) else str(exc)
                ok = self.store.item_failed(item["id"], gave_up_text(n, cause), attempts=n)
            else:
                ok = self.store.item_failed(item["id"], failure_text(exc))
            if ok:
                run.counts["failed"] += 1
                self._publish(EventName.ITEM_FAILED, job_id, {
                    "job_id": job_id, "item": self.store.get_item(job_id, item["id"])})
        else:
            ok = self.store.item_done(res["item_id"], res)
            if ok:
                run.counts["done"] += 1
                self._publish(EventName.ITEM_DONE, job_id, {
                    "job_id": job_id, "item": self.store.get_item(job_id, res["item_id"]),
                    "worker_done_at": res.get("worker_done_at")})
        with self._cv:
            self._fair.settle(job_id)
            self._cv.notify()  # a job at its cap may take another item now
        if ok:
            run.settled_here += 1
            self._progress(run)

    def _sweep(self) -> None:
        """Drop cancelled jobs' waiting items; finish jobs with nothing pending or out."""
        if self._stop.is_set():
            return  # shutting down: jobs stay running and resume on the next start
        with self._lock:
            cancelled = self._cancelled & set(self._runs)
        for job_id in list(self._runs):
            with self._cv:
                if job_id in cancelled:
                    self._fair.clear(job_id)  # the items out come back and settle as no-ops
                idle = self._fair.idle(job_id)
                if idle:
                    self._fair.drop(job_id)
            if idle:
                del self._runs[job_id]
                with self._lock:
                    self._cancelled.discard(job_id)
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
