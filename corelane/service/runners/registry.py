"""The worker registry in Redis: who is alive, what each one holds, how busy it is.

::

    corelane worker (main process)                Redis                      web nodes
    heartbeat thread, every HEARTBEAT_S:
      read Celery's own request sets  --->  corelane:worker:<name>   --->  /api/workers
      (reserved + active, this process)       hash, TTL HEARTBEAT_TTL_S
                                        --->  corelane:holds:<name>   --->  the reconciler:
                                              set of item ids, same TTL     "who holds item X?"
    pool child, per task:
      done / failed / deliveries tallies ->  corelane:worker:<name>

``busy`` and ``holds`` are recomputed from Celery's request bookkeeping in the worker's main
process on every beat, so a pool child killed mid-item (or a whole host gone) can never leave a
count or a claim behind: the next beat rewrites them, and a host that stops beating disappears
after ``HEARTBEAT_TTL_S``.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import threading
import time
from typing import Any

log = logging.getLogger(__name__)

HEARTBEAT_S = 2.0  # how often a worker refreshes its registry entry and its holds
HEARTBEAT_TTL_S = 10  # an entry not refreshed for this long disappears (the host is gone)
WORKER_KEY = "corelane:worker:"
HOLDS_KEY = "corelane:holds:"


def item_of_message(raw: bytes | str | dict[str, Any]) -> str | None:
    """The item id a Celery task message (kombu's JSON envelope) is about, or None."""
    try:
        envelope = raw if isinstance(raw, dict) else json.loads(raw)
        body = json.loads(base64.b64decode(envelope["body"]))
        args = body[0]
        return str(args[1]) if len(args) >= 2 else None
    except (ValueError, KeyError, TypeError, IndexError):
        return None


def _requests() -> tuple[list[Any], list[Any]]:
    """Celery's (reserved, active) requests in this process (copied: the consumer mutates them)."""
    from celery.worker import state

    for _ in range(5):
        try:
            return list(state.reserved_requests), list(state.active_requests)
        except RuntimeError:  # "set changed size during iteration": try again
            time.sleep(0.001)
    return [], []


def _item_id(request: Any) -> str | None:
    try:
        args = request.args
        return str(args[1]) if args and len(args) >= 2 else None
    except Exception:
        return None


def beat_once(client: Any, name: str, concurrency: int) -> None:
    """Write this worker's entry and the item ids it holds (one transaction, both with a TTL)."""
    reserved, active = _requests()
    holds = {i for i in map(_item_id, reserved + active) if i}
    key, holds_key = WORKER_KEY + name, HOLDS_KEY + name
    pipe = client.pipeline(transaction=True)
    pipe.hset(key, mapping={"name": name, "host": socket.gethostname(), "pid": os.getpid(),
                            "concurrency": concurrency, "busy": len(active),
                            "last_seen": time.time()})
    pipe.expire(key, HEARTBEAT_TTL_S)
    pipe.delete(holds_key)
    if holds:
        pipe.sadd(holds_key, *sorted(holds))
        pipe.expire(holds_key, HEARTBEAT_TTL_S)
    pipe.execute()


def start_heartbeat(client: Any, name: str, concurrency: int,
                    stop: threading.Event) -> threading.Thread:
    """Keep this worker's registry entry and holds alive until ``stop`` (then remove them)."""

    def beat() -> None:
        while not stop.is_set():
            try:
                beat_once(client, name, concurrency)
            except Exception:
                log.debug("heartbeat failed", exc_info=True)
            stop.wait(HEARTBEAT_S)
        try:
            client.delete(WORKER_KEY + name, HOLDS_KEY + name)
        except Exception:
            log.debug("could not remove the registry entry", exc_info=True)

    thread = threading.Thread(target=beat, name="corelane-heartbeat", daemon=True)
    thread.start()
    return thread


def tally(client: Any, name: str, field: str, by: int = 1) -> None:
    """Count in the registry (done, failed, deliveries); the registry is a view, never fatal."""
    try:
        client.hincrby(WORKER_KEY + name, field, by)
    except Exception:
        log.debug("worker registry update failed", exc_info=True)


def live_holds(client: Any) -> dict[str, str]:
    """item id -> name of the live worker holding it (received or running)."""
    out: dict[str, str] = {}
    for key in client.scan_iter(match=HOLDS_KEY + "*", count=100):
        worker = key.decode()[len(HOLDS_KEY):]
        for item in client.smembers(key):
            out[item.decode()] = worker
    return out


def list_workers(client: Any) -> list[dict[str, Any]]:
    """The registry: one entry per live ``corelane worker``."""
    out = []
    for key in sorted(client.scan_iter(match=WORKER_KEY + "*", count=100)):
        raw = client.hgetall(key)
        entry = {k.decode(): v.decode() for k, v in raw.items()}
        if "last_seen" not in entry:  # a tally that outlived its worker's entry
            continue
        out.append({
            "name": entry.get("name", key.decode()[len(WORKER_KEY):]),
            "host": entry.get("host"), "pid": int(entry.get("pid", 0)),
            "kind": "celery", "concurrency": int(entry.get("concurrency", 0)),
            "busy": int(entry.get("busy", 0)), "done": int(entry.get("done", 0)),
            "failed": int(entry.get("failed", 0)),
            "deliveries": int(entry.get("deliveries", 0)),
            "last_seen": float(entry.get("last_seen", 0.0)),
        })
    return out
