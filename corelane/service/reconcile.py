"""Stall detection and reconciliation for the Celery runner: no image waits for a dead worker.

::

    every RECONCILE_S, on the one web node holding the lock "corelane:reconcile"
      broker view (Redis)                      store view (SQL)
      queue "corelane"     item ids waiting     running jobs -> their queued items
      hash "unacked"       item ids delivered
      corelane:holds:*     item ids a LIVE worker has received or runs (heartbeats, TTL 10 s)

      unacked, and no live worker holds it  -> restore it to the queue  (its worker died)
      queued in the store, known nowhere    -> send it again            (Redis lost it)
      running job, nothing left queued      -> finish it                (announcer died)

Each action needs the same finding on two passes in a row (RECONCILE_S apart), so a message
in transit between the broker and a worker's bookkeeping is never mistaken for a lost one. A
worker host that vanishes stops beating; its holds expire after HEARTBEAT_TTL_S and its
unacknowledged images are back in the queue within HEARTBEAT_TTL_S + 2 * RECONCILE_S (about
20 s), whatever the broker's visibility timeout. Only the lock holder acts (a Redis lock with a
TTL, renewed each pass; another node takes over within LOCK_TTL_S when the holder dies).

A job still marked "dispatching" (its dispatcher holds items back to share the workers fairly,
runners/fair.py) is looked at through what that dispatcher recorded as sent: an item it has not
sent yet is not lost, and the job is not finished here. When the dispatcher stops or dies, its
marks go (or expire after DISPATCHING_TTL_S) and the job is reconciled like any other.

Nothing here touches an item that a live worker holds or that waits in the queue, so a web node
that (re)starts re-sends nothing another node or worker owns. Attempts stay bounded as before:
every delivery counts one in the store, and past ``max_attempts`` the worker fails the item.

With an AMQP broker (RabbitMQ) the server itself requeues the messages of a consumer whose
connection dropped, and keeps its durable queue across restarts, but the queue cannot be listed:
there the dispatcher records what it sent (``corelane:sent:<job>`` in Redis) and the reconciler
re-sends only queued items that were never sent and no live worker holds (a dispatcher that died
mid-job). If that Redis loses its data, the unfinished items of running jobs are sent once more
(redundant deliveries, settled once: the worker skips an item that is no longer queued).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from corelane.service.bus import BusEvent
from corelane.service.jobs import EventName, ItemState, JobState
from corelane.service.runners.registry import item_of_message, live_holds
from corelane.service.store import Store, jobs

log = logging.getLogger(__name__)

RECONCILE_S = 5.0  # seconds between passes; two passes in a row must agree before acting
LOCK_KEY = "corelane:reconcile"
LOCK_TTL_S = 15  # a dead lock holder is replaced after this long
DISPATCHING_KEY = "corelane:dispatching:"  # + job id: a dispatcher is sending this job's items
DISPATCHING_TTL_S = 30
SENT_KEY = "corelane:sent:"  # + job id: item ids a dispatcher handed to a non-Redis broker
SENT_TTL_S = 7 * 24 * 3600
QUEUE = "corelane"
UNACKED_KEY = "unacked"  # kombu's Redis transport: delivered, not yet acknowledged
RESYNC_SLACK_S = 5.0  # jobs that ended this long before the bus loss are resent too (clock skew)


class Reconciler:
    """The periodic pass described in the module docstring (a daemon thread per web node)."""

    def __init__(self, store: Store, client: Any, *, send: Callable[[str, str], None],
                 restore: Callable[[str], None] | None, finish: Callable[[str], None],
                 interval: float = RECONCILE_S) -> None:
        """
        Args:
            store: the job store.
            client: a Redis client (the registry, the lock, the dispatch markers).
            send: dispatch one item again: ``send(job_id, item_id)``.
            restore: put an unacknowledged message back in the queue by its delivery tag; None
                when the broker is not Redis (its queue cannot be inspected).
            finish: publish progress and finish a job whose items are all settled.
        """
        self.store = store
        self.client = client
        self.send = send
        self.restore = restore
        self.finish = finish
        self.interval = interval
        self._lock = client.lock(LOCK_KEY, timeout=LOCK_TTL_S, blocking=False)
        self._suspects: set[tuple[str, str]] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.stats = {"passes": 0, "restored": 0, "resent": 0, "finished": 0}

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="corelane-reconcile",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        try:
            if self._lock.owned():
                self._lock.release()
        except Exception:
            log.debug("could not release the reconcile lock", exc_info=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if self._hold_lock():
                    self.run_once()
                else:
                    self._suspects.clear()
            except Exception as exc:  # Redis or the database away: try again next pass
                self._suspects.clear()
                log.warning("reconcile pass failed: %s", exc)

    def _hold_lock(self) -> bool:
        try:
            if self._lock.owned():
                self._lock.reacquire()
                return True
        except Exception:  # the key vanished (Redis restarted, or it expired): take it anew
            log.debug("lost the reconcile lock", exc_info=True)
        return bool(self._lock.acquire(blocking=False))

    # ------------------------------------------------------------------ one pass

    def run_once(self) -> dict[str, int]:
        """One pass (call only while holding the lock); returns what it did."""
        self.stats["passes"] += 1
        done = {"restored": 0, "resent": 0, "finished": 0}
        suspects: set[tuple[str, str]] = set()
        holds = live_holds(self.client)
        unacked = self._unacked() if self.restore is not None else {}
        # 1. delivered to a worker that is gone
        for tag, item in unacked.items():
            if item in holds:
                continue
            if self._confirmed(("restore", tag), suspects):
                log.warning("item %s: its worker is gone; back to the queue", item)
                assert self.restore is not None
                self.restore(tag)
                done["restored"] += 1
        # 2. and 3. the store's view of running jobs. A job still being dispatched holds some
        # items back on purpose (fair scheduling): only those it did send can be lost.
        jobs: dict[str, list[dict[str, Any]]] = {}
        dispatching: set[str] = set()
        for job_id in self._running_jobs():
            queued = self.store.list_items(job_id, ItemState.QUEUED)
            if self._dispatching(job_id):
                dispatching.add(job_id)
                sent = self._sent(job_id)
                queued = [row for row in queued if row["id"] in sent]
            jobs[job_id] = queued
        in_flight = set(unacked.values()) | set(holds)
        waiting = self._waiting(jobs, in_flight) if self.restore is not None else set()
        for job_id, queued in jobs.items():
            if not queued:
                if job_id not in dispatching and self._confirmed(("finish", job_id), suspects):
                    self.finish(job_id)
                    done["finished"] += 1
                continue
            if waiting is None:
                continue  # the broker accounts for every queued item
            known = waiting | in_flight
            if self.restore is None:  # the broker cannot be listed: trust what was sent
                known = self._sent(job_id) | in_flight
            for row in queued:
                if row["id"] in known or not row["source_key"]:
                    continue
                if self._confirmed(("resend", row["id"]), suspects):
                    log.warning("item %s of job %s is in no queue and held by no worker; "
                                "sending it again", row["id"], job_id)
                    self.send(job_id, row["id"])
                    done["resent"] += 1
        self._suspects = suspects
        for what, count in done.items():
            self.stats[what] += count
        return done

    def _confirmed(self, finding: tuple[str, str], suspects: set[tuple[str, str]]) -> bool:
        """True when ``finding`` was also made on the previous pass (then act, and forget it);
        otherwise remember it for the next pass."""
        if finding in self._suspects:
            return True
        suspects.add(finding)
        return False

    def _unacked(self) -> dict[str, str]:
        """Delivery tag -> item id of every message delivered and not yet acknowledged."""
        out = {}
        for tag, raw in self.client.hgetall(UNACKED_KEY).items():
            try:
                item = item_of_message(_envelope(raw))
            except (ValueError, IndexError, TypeError):
                item = None
            if item:
                out[tag.decode()] = item
        return out

    def _waiting(self, jobs: dict[str, list[dict[str, Any]]],
                 in_flight: set[str]) -> set[str] | None:
        """Item ids waiting in the queue, or None when the counts show nothing can be missing
        (so a long backlog is not parsed every pass)."""
        queued = sum(len(rows) for rows in jobs.values())
        if queued == 0:
            return None
        if self.client.llen(QUEUE) + len(in_flight) >= queued:
            return None
        return {i for i in map(item_of_message, self.client.lrange(QUEUE, 0, -1)) if i}

    def _running_jobs(self) -> list[str]:
        with self.store.engine.connect() as conn:
            rows = conn.execute(sa.select(jobs.c.id).where(jobs.c.state == JobState.RUNNING.value)
                                .order_by(jobs.c.seq))
            return [r.id for r in rows]

    def _sent(self, job_id: str) -> set[str]:
        return {m.decode() for m in self.client.smembers(SENT_KEY + job_id)}

    def _dispatching(self, job_id: str) -> bool:
        return bool(self.client.exists(DISPATCHING_KEY + job_id))


def _envelope(raw: bytes) -> Any:
    """kombu stores ``[message, exchange, routing_key]`` as JSON in the unacked hash."""
    return json.loads(raw)[0]


def mark_sent(client: Any, job_id: str, item_ids: list[str]) -> None:
    """Record that these items of ``job_id`` are in the broker's hands (see the docstring)."""
    if not item_ids:
        return
    try:
        pipe = client.pipeline(transaction=False)
        pipe.sadd(SENT_KEY + job_id, *item_ids)
        pipe.expire(SENT_KEY + job_id, SENT_TTL_S)
        pipe.execute()
    except Exception:
        log.debug("could not record %d sent item(s) of job %s", len(item_ids), job_id,
                  exc_info=True)


def mark_dispatching(client: Any, job_id: str, on: bool) -> None:
    """Tell reconcilers that a dispatcher is (or no longer is) sending ``job_id``'s items."""
    try:
        if on:
            client.set(DISPATCHING_KEY + job_id, "1", ex=DISPATCHING_TTL_S)
        else:
            client.delete(DISPATCHING_KEY + job_id)
    except Exception:
        log.debug("could not mark job %s dispatching=%s", job_id, on, exc_info=True)


def resync_clients(store: Store, deliver: Callable[[BusEvent], None], lost_at: float) -> int:
    """After the bus reconnects: hand this node's Socket.IO rooms a fresh ``job_state`` (the job
    and all its items) for every job that is live or ended since ``lost_at``, because the events
    published while the subscription was down are gone. Returns how many jobs were sent."""
    from corelane.service.views import public_item

    sent = 0
    for job in store.list_jobs():
        if JobState(job["state"]).finished and (job["finished_at"] or 0) < lost_at - RESYNC_SLACK_S:
            continue
        items = [public_item(i) for i in store.list_items(job["id"])]
        deliver(BusEvent(EventName.JOB_STATE.value, job["id"],
                         {"job_id": job["id"], "job": job, "items": items}))
        sent += 1
    return sent
