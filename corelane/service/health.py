"""What ``GET /api/health`` reports: each part the service depends on, ok or degraded and why.

::

    store   SELECT 1 on the job database                      (always)
    broker  PING (Redis) / a connection (AMQP) to the broker  (with --broker)
    bus     the progress subscription over Redis pub/sub      (with --broker)

The answer is ``{"status": "ok" | "degraded", "checks": {part: {"status", "reason"?}}, ...}``
with HTTP 200 when every part is ok and 503 otherwise, so a load balancer stops sending uploads to
a node that cannot run them. Reasons name the failure, never a password (URLs are masked).
Results are cached (CACHE_S when all is ok, DEGRADED_CACHE_S otherwise, so a recovery shows
soon) and a busy health probe or upload path costs one round trip per part at most that often.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import sqlalchemy as sa

from corelane.service.runners.brokers import describe, is_redis

log = logging.getLogger(__name__)

CACHE_S = 2.0
DEGRADED_CACHE_S = 0.5
PROBE_TIMEOUT_S = 3.0
OK = "ok"
DEGRADED = "degraded"


def _check_store(service: Any) -> dict[str, Any]:
    try:
        with service.store.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return {"status": OK}
    except Exception as exc:
        return {"status": DEGRADED, "reason": f"the job database does not answer: {describe(exc)}"}


def _check_broker(service: Any) -> dict[str, Any]:
    url = service.config.broker_url
    try:
        if is_redis(url):
            client = _client(service)
            client.ping()
        else:
            from kombu import Connection

            with Connection(url, connect_timeout=PROBE_TIMEOUT_S, **_ssl(service)) as conn:
                conn.ensure_connection(max_retries=1, timeout=PROBE_TIMEOUT_S)
        return {"status": OK}
    except Exception as exc:
        return {"status": DEGRADED, "reason": f"the broker does not answer: {describe(exc)}"}


def _ssl(service: Any) -> dict[str, Any]:
    runner = service.runner
    app = getattr(runner, "app", None)
    ssl = app.conf.broker_use_ssl if app is not None else None
    return {"ssl": ssl} if ssl else {}


def _check_bus(service: Any) -> dict[str, Any]:
    health = getattr(service.bus, "health", None)
    if health is None:
        return {"status": OK}
    ok, reason = health()
    if ok:
        return {"status": OK}
    return {"status": DEGRADED, "reason": f"progress events cannot be received: {reason}"}


def _client(service: Any) -> Any:
    client = service.extra.get("health_redis")
    if client is None:
        from corelane.service.bus_redis import redis_client

        client = redis_client(service.config.broker_url, timeout=PROBE_TIMEOUT_S)
        service.extra["health_redis"] = client
    return client


_lock = threading.Lock()


def checks(service: Any, fresh: bool = False) -> dict[str, dict[str, Any]]:
    """Each part's status (cached, see the module docstring, unless ``fresh``)."""
    with _lock:
        cached = service.extra.get("health_cache")
        if cached and not fresh and time.monotonic() < cached[0]:
            return dict(cached[1])
    result = {"store": _check_store(service)}
    if service.config.broker_url:
        result["broker"] = _check_broker(service)
        result["bus"] = _check_bus(service)
    ok = all(part["status"] == OK for part in result.values())
    with _lock:
        service.extra["health_cache"] = (time.monotonic() + (CACHE_S if ok else DEGRADED_CACHE_S),
                                          result)
    return result


def report(service: Any) -> tuple[dict[str, Any], int]:
    """The body and HTTP status of ``GET /api/health``."""
    parts = checks(service)
    ok = all(part["status"] == OK for part in parts.values())
    body: dict[str, Any] = {"status": OK if ok else DEGRADED, "checks": parts,
                            "mode": "celery" if service.config.broker_url else "local"}
    try:
        body["queued_jobs"] = service.store.queued_count()
    except Exception:
        body["queued_jobs"] = None
    body["running_job"] = service.running_job()
    body["workers"] = service.workers
    return body, 200 if ok else 503


def upload_refusal(service: Any) -> str | None:
    """Why a new job cannot be accepted now (broker mode, broker or store down), or None."""
    parts = checks(service)
    for name in ("store", "broker"):
        part = parts.get(name)
        if part is not None and part["status"] != OK:
            return f"uploads are refused until this is fixed: {part['reason']}"
    return None
