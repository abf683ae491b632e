"""The distributed runner: items become Celery tasks over Redis, run by ``corelane worker`` hosts.

::

    web process (CeleryRunner)                 Redis                 corelane worker (any host)
    claim jobs (up to max_running_jobs)
    FairQueue: round-robin, per-job cap
      --send_task, while fewer than  ----->  queue "corelane"  -->  process_item(job, item)
        the window are out                                            read upload (shared dir)
    relay to browsers  <--- pub/sub "corelane:events" <-----------  write outputs, settle item
    poll the store: sent items settled?                               in the store, publish
      -> their places go to the next items

The dispatcher keeps at most a window of messages out (twice the live worker processes in the
registry) and fills it round-robin from the running jobs (runners/fair.py), so the broker's FIFO
queue never holds one job's thousand images in front of another's one. A job whose items are not
all sent yet is marked "dispatching" in Redis: reconcilers re-send only what it did send (see
corelane/service/reconcile.py); on a clean stop the marks go and the reconciler sends the rest.

Delivery is at-least-once and every write is idempotent, so nothing is lost or duplicated:

- JSON only (``accept_content=["json"]``): no pickle crosses the network.
- ``acks_late`` + ``reject_on_worker_lost``: a worker killed mid-image does not ack, so the
  message is delivered again (at once when a pool child dies; after ``visibility_timeout`` when
  the whole worker host vanishes).
- Each delivery increments the item's ``attempts`` first; past ``max_attempts`` the item fails
  with a clear error instead of looping (a poison image that kills every worker it touches).
- Outputs go to deterministic keys, written atomically; an item is settled by a conditional
  UPDATE (``state = 'queued'``), so a redelivered or duplicated task changes nothing.
- The worker that settles an item's last one finishes the job (again a conditional UPDATE).

Within a worker host the CPU work runs in Celery's prefork pool: its per-child processes are what
``reject_on_worker_lost`` watches, and a second pool inside them would only add a hop.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from celery import Celery
from celery.exceptions import Reject, SoftTimeLimitExceeded

from corelane.errors import JobNotFound
from corelane.service.bus import Bus, BusEvent
from corelane.service.config import ServiceConfig
from corelane.service.jobs import FINISH_EVENTS, EventName, ItemState, JobState, final_state
from corelane.service.objects import ObjectStore, open_objects
from corelane.service.reconcile import (
    Reconciler,
    mark_dispatching,
    mark_sent,
    resync_clients,
)
from corelane.service.runners import registry
from corelane.service.runners._work import ItemTask, process_item
from corelane.service.runners.brokers import celery_broker_url, celery_ssl, is_redis, mask_url
from corelane.service.runners.fair import FairQueue, job_cap
from corelane.service.runners.policy import (
    ItemLimits,
    decode_options,
    failure_text,
    gave_up_text,
    retry_or_give_up,
    timeout_text,
)
from corelane.service.store import Store

log = logging.getLogger(__name__)

TASK_NAME = "corelane.process_item"
QUEUE = "corelane"
DISPATCH_RETRY_MAX_S = 5.0  # backoff cap while the broker is unreachable
IDLE_POLL_S = 1.0  # an idle dispatcher looks for queued jobs this often (a wake() is immediate)
DISPATCH_POLL_S = 0.05  # while items are out: how often to look which settled (one SELECT)
STATE_POLL_S = 0.5  # how often a job with unsent items is checked for a cancel
WINDOW_PER_SLOT = 2  # messages out per live worker process: one running, one waiting
WINDOW_MIN = 4  # ... and at least this many (no worker registered yet)
SLOTS_REFRESH_S = 5.0  # how often the window is recomputed from the worker registry
MARK_RENEW_S = 10.0  # "dispatching" marks (TTL reconcile.DISPATCHING_TTL_S) renewed this often
# After the soft limit (the item timeout) the task settles the item itself; the hard limit kills
# a child stuck where the soft one cannot reach (C code), and the reconciler re-sends its item.
HARD_LIMIT_GRACE_S = 30.0


def _transport_options(config: ServiceConfig) -> dict[str, Any]:
    if not is_redis(config.broker_url):
        # AMQP: the server requeues a dead consumer's unacknowledged messages by itself (no
        # visibility timeout); kombu's heartbeats notice a dead connection.
        return {"confirm_publish": True}
    return {
        "visibility_timeout": config.visibility_timeout,
        # kombu sweeps for expired unacked messages every interval * throttle seconds
        # (100 s by default); sweep at about a third of the visibility timeout instead.
        "unacked_restore_interval": max(1, min(10, int(config.visibility_timeout // 3))),
        "unacked_restore_throttle": 1,
        # no command may wait forever on a dead connection (kombu's default)
        "socket_timeout": 10,
        "socket_connect_timeout": 5,
        "health_check_interval": 10,
    }


def make_celery(config: ServiceConfig) -> Celery:
    """The Celery app for ``config.broker_url``, configured for no loss and no pickle."""
    if not config.broker_url:
        raise ValueError("the Celery runner needs a broker URL (--broker redis://HOST:6379/0)")
    app = Celery("corelane", broker=celery_broker_url(config.broker_url), set_as_current=False)
    app.conf.update(
        broker_use_ssl=celery_ssl(config.broker_url),  # rediss://: certificates verified
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_default_queue=QUEUE,
        worker_prefetch_multiplier=1,  # a slow image never holds others hostage in a prefetch
        broker_transport_options=_transport_options(config),
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    app.task(name=TASK_NAME, acks_late=True, reject_on_worker_lost=True)(process_item_task)
    return app


# ---------------------------------------------------------------------- worker side


@dataclass
class _WorkerContext:
    config: ServiceConfig
    store: Store
    objects: ObjectStore
    bus: Bus
    name: str
    registry: Any  # a Redis client for the worker registry


@lru_cache(maxsize=1)
def _context() -> _WorkerContext:
    """Per-process state of a worker child, built on its first task from CORELANE_* env vars."""
    from corelane.service.bus_redis import RedisBus

    config = ServiceConfig.from_env()
    assert config.broker_url, "corelane worker sets CORELANE_BROKER_URL for its children"
    name = os.environ.get("CORELANE_WORKER_NAME") or f"{socket.gethostname()}-{os.getpid()}"
    return _WorkerContext(config, Store(config.database_url), open_objects(config),
                          RedisBus(_bus_url(config)), name, _redis(config))


def process_item_task(job_id: str, item_id: str, limits: dict[str, Any] | None = None) -> str:
    """Celery task: process one image of a job, settle it, announce it. Safe to run twice.

    ``limits`` are the dispatching web node's (see policy.ItemLimits); a message from an older
    node without them runs under this host's configuration.
    """
    ctx = _context()
    store, bus = ctx.store, ctx.bus
    try:
        item = store.get_item(job_id, item_id)
        job = store.get_job(job_id)
    except JobNotFound:
        return "unknown item"
    if item["state"] != ItemState.QUEUED.value:
        return f"already {item['state']}"
    if job["state"] != JobState.RUNNING.value:
        return f"job is {job['state']}"  # cancelled, or requeued: the dispatcher sends it again
    _tally(ctx, "deliveries", 1)
    caps = ItemLimits.from_dict(limits) if limits else ItemLimits.from_config(ctx.config)
    attempts = int(item["attempts"]) + 1
    store.set_attempts(item_id, attempts)
    if attempts > caps.max_attempts:
        # Each earlier delivery ended with its worker gone (a clean end settles the item).
        error = gave_up_text(attempts - 1, "its worker died each time")
        settled = store.item_failed(item_id, error, attempts=attempts - 1)
        name = EventName.ITEM_FAILED
    else:
        try:
            objects = ctx.objects
            summary = process_item(ItemTask(
                item["id"], str(objects.path(item["source_key"])), str(objects.root),
                decode_options(job["options"]), caps.image_limits(),
                objects.location if objects.location != str(objects.root) else ""))
        except SoftTimeLimitExceeded:
            if retry_or_give_up(attempts, caps.max_attempts):
                raise Reject("item timeout; trying again", requeue=True) from None
            error = gave_up_text(attempts, timeout_text(caps.item_timeout))
            settled = store.item_failed(item_id, error, attempts=attempts)
            name = EventName.ITEM_FAILED
        except Exception as exc:  # a bad image (or a bug) fails this item only
            settled = store.item_failed(item_id, failure_text(exc))
            name = EventName.ITEM_FAILED
        else:
            summary["worker"] = ctx.name
            settled = store.item_done(item_id, summary)
            name = EventName.ITEM_DONE
        _tally(ctx, "done" if name is EventName.ITEM_DONE else "failed", 1)
    if settled:
        bus.publish(BusEvent(name.value, job_id, {"job_id": job_id,
                                                  "item": store.get_item(job_id, item_id)}))
        announce(store, bus, job_id)
    return name.value if settled else "settled elsewhere"


def announce(store: Store, bus: Bus, job_id: str) -> None:
    """Publish the job's progress; finish it when no item is left queued (exactly once)."""
    job = store.get_job(job_id)
    settled = job["done"] + job["failed"] + job["cancelled"]
    elapsed = max(time.time() - (job["started_at"] or job["created_at"]), 1e-6)
    rate = settled / elapsed
    left = job["total"] - settled
    bus.publish(BusEvent(EventName.JOB_PROGRESS.value, job_id, {
        "job_id": job_id, "state": job["state"], "total": job["total"], "done": job["done"],
        "failed": job["failed"], "cancelled": job["cancelled"], "rate": round(rate, 3),
        "eta": round(left / rate, 2) if rate > 0 else None,
    }))
    if job["state"] == JobState.RUNNING.value and job["queued"] == 0:
        state = final_state(job["done"], job["failed"], job["cancelled"], job["total"])
        if store.finish_job(job_id, state):
            bus.publish(BusEvent(FINISH_EVENTS[state].value, job_id,
                                 {"job_id": job_id, "job": store.get_job(job_id)}))


# ---------------------------------------------------------------------- worker registry


def _redis(config: ServiceConfig) -> Any:
    from corelane.service.bus_redis import redis_client

    return redis_client(_bus_url(config))


def _bus_url(config: ServiceConfig) -> str:
    url = config.bus_url
    assert url, "a broker config always has a Redis for progress (ServiceConfig checks it)"
    return url


def _tally(ctx: _WorkerContext, field: str, by: int) -> None:
    registry.tally(ctx.registry, ctx.name, field, by)


def list_workers(config: ServiceConfig) -> list[dict[str, Any]]:
    """The registry: one entry per live ``corelane worker``."""
    client = _redis(config)
    try:
        return registry.list_workers(client)
    finally:
        client.close()


# ---------------------------------------------------------------------- web side


class CeleryRunner:
    """Dispatches queued jobs' items to Celery; the workers settle items and finish jobs.

    Same interface as :class:`~corelane.service.runners.local.LocalRunner`.
    """

    def __init__(self, store: Store, objects: ObjectStore, bus: Bus,
                 config: ServiceConfig) -> None:
        self.store = store
        self.objects = objects
        self.bus = bus
        self.config = config
        self.app = make_celery(config)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: Any = None
        self.reconciler: Reconciler | None = None
        self._fair = FairQueue()
        self._jobs: dict[str, set[str]] = {}  # running jobs this node dispatches -> ids out
        self._marked: dict[str, float] = {}  # jobs with unsent items -> when last marked
        self._slots = 0  # live worker processes (the registry), refreshed every SLOTS_REFRESH_S
        self._slots_at = 0.0
        self._state_at: dict[str, float] = {}  # job -> when to look at its state again

    def start(self) -> None:
        """Start dispatching queued jobs, and the reconciler.

        Jobs left ``running`` are not requeued here: their items wait in the broker or are held
        by live workers, and the reconciler re-sends only those that are nowhere (see
        corelane/service/reconcile.py), so a restart never re-sends another node's work.
        """
        self._client = _redis(self.config)
        self.reconciler = Reconciler(
            self.store, self._client, send=self._resend,
            restore=self._restore if is_redis(self.config.broker_url) else None,
            finish=lambda job_id: announce(self.store, self.bus, job_id))
        on_reconnect = getattr(self.bus, "on_reconnect", None)
        if on_reconnect is not None:  # progress that heals: fresh snapshots after a bus loss
            on_reconnect(self._resync_clients)
        self._thread = threading.Thread(target=self._loop, name="corelane-dispatch", daemon=True)
        self._thread.start()
        self.reconciler.start()

    def _resync_clients(self, lost_at: float) -> None:
        sent = resync_clients(self.store, self.bus.deliver_local,  # type: ignore[attr-defined]
                              lost_at)
        log.info("progress bus back: sent %d job snapshot(s) to this node's clients", sent)

    def wake(self) -> None:
        self._wake.set()

    def cancel(self, job_id: str) -> None:
        """Nothing to stop here: the store marked the job cancelled, and workers skip its items."""

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self.reconciler is not None:
            self.reconciler.stop()
        if self._client is not None:
            self._client.close()

    @property
    def current_job(self) -> str | None:
        """The oldest job this dispatcher is sending (None when idle)."""
        return next(iter(list(self._jobs)), None)

    # ------------------------------------------------------------------ the dispatcher

    def _loop(self) -> None:
        """Claim jobs, send their items round-robin into a bounded window, note what settled."""
        while not self._stop.is_set():
            try:
                self._admit()
                self._collect()
                self._send_due()
                self._renew_marks()
            except Exception:
                log.exception("dispatcher pass failed; retrying")
                self._stop.wait(IDLE_POLL_S)
            busy = self._fair.total_out() > 0
            self._wake.wait(DISPATCH_POLL_S if busy else IDLE_POLL_S)
            self._wake.clear()
        for job_id in list(self._jobs):  # the reconciler takes over what was never sent
            mark_dispatching(self._client, job_id, False)

    def _window(self) -> int:
        """Messages out (in the broker or on a worker) across all jobs: twice the live worker
        processes, so each worker has one running and one waiting, and a new job's first item
        waits behind at most one round of others."""
        now = time.monotonic()
        if now >= self._slots_at:
            self._slots_at = now + SLOTS_REFRESH_S
            try:
                self._slots = sum(int(w.get("concurrency", 0))
                                  for w in registry.list_workers(self._client))
            except Exception:
                log.debug("could not read the worker registry", exc_info=True)
        return max(WINDOW_MIN, WINDOW_PER_SLOT * self._slots)

    def _admit(self) -> None:
        while len(self._jobs) < self.config.max_running_jobs and not self._stop.is_set():
            job = self.store.claim_next_job()
            if job is None:
                return
            job_id = job["id"]
            pending = [i["id"] for i in self.store.list_items(job_id, ItemState.QUEUED)]
            if not pending:  # nothing left to run (e.g. requeued after its last item settled)
                announce(self.store, self.bus, job_id)
                continue
            mark_dispatching(self._client, job_id, True)
            self._jobs[job_id] = set()
            self._marked[job_id] = time.monotonic()
            self._fair.add_job(job_id, pending)

    def _collect(self) -> None:
        """Items sent that settled free their place; cancelled or finished jobs leave the ring."""
        for job_id, out in list(self._jobs.items()):
            if out:
                settled = out - self.store.still_queued(sorted(out))
                for _ in settled:
                    self._fair.settle(job_id)
                out -= settled
            if self._fair.pending(job_id) and time.monotonic() >= self._state_at.get(job_id, 0):
                self._state_at[job_id] = time.monotonic() + STATE_POLL_S
                if self.store.get_job(job_id)["state"] != JobState.RUNNING.value:
                    self._fair.clear(job_id)  # cancelled: its workers skip what was sent
            if self._fair.pending(job_id) == 0 and job_id in self._marked:
                del self._marked[job_id]
                mark_dispatching(self._client, job_id, False)  # all sent: the reconciler watches
            if self._fair.idle(job_id):
                self._fair.drop(job_id)
                del self._jobs[job_id]
                self._state_at.pop(job_id, None)

    def _send_due(self) -> None:
        window = self._window()
        self._fair.cap = job_cap(self.config.job_concurrency, window)
        sent: dict[str, list[str]] = {}
        backoff = 0.1
        while self._fair.total_out() < window and not self._stop.is_set():
            got = self._fair.take()
            if got is None:
                break
            job_id, item_id = got
            while not self._stop.is_set():
                try:
                    self._send(job_id, item_id)
                    break
                except Exception as exc:  # broker unreachable: wait and try the same item again
                    log.warning("cannot reach the broker (%s); retrying in %.1f s",
                                mask_url(str(exc)), backoff)
                    self._renew_marks(force=True)
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, DISPATCH_RETRY_MAX_S)
            self._jobs[job_id].add(item_id)
            sent.setdefault(job_id, []).append(item_id)
        for job_id, ids in sent.items():
            mark_sent(self._client, job_id, ids)

    def _renew_marks(self, force: bool = False) -> None:
        """Keep telling reconcilers which jobs still have items this dispatcher holds back."""
        now = time.monotonic()
        for job_id, at in list(self._marked.items()):
            if force or now - at >= MARK_RENEW_S:
                mark_dispatching(self._client, job_id, True)
                self._marked[job_id] = now

    def _resend(self, job_id: str, item_id: str) -> None:
        self._send(job_id, item_id)
        mark_sent(self._client, job_id, [item_id])

    def _send(self, job_id: str, item_id: str) -> None:
        """One task message: the item, with this node's limits and item timeout (policy.py)."""
        limits = ItemLimits.from_config(self.config)
        self.app.send_task(TASK_NAME, args=[job_id, item_id, limits.to_dict()], queue=QUEUE,
                           soft_time_limit=limits.item_timeout,
                           time_limit=limits.item_timeout + HARD_LIMIT_GRACE_S)

    def _restore(self, tag: str) -> None:
        """Put an unacknowledged message back at the head of its queue (kombu's own restore)."""
        with self.app.connection_for_write() as conn:
            conn.default_channel.qos.restore_by_tag(tag, leftmost=False)
