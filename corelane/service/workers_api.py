"""``GET /api/workers`` and the ``/workers`` page: who runs the work, busy or idle, items done.

What people open Flower or rq-dashboard for, in the service's own UI. With a broker it lists the
``corelane worker`` hosts from their heartbeats in Redis; embedded, it lists the local engine pool.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from flask import Blueprint, current_app, jsonify, render_template, request

from corelane.engine._cpus import cpu_count
from corelane.errors import ServiceError
from corelane.service.api import bp as api_bp  # /api/workers shares the API's token guard
from corelane.service.health import upload_refusal
from corelane.service.runners.brokers import describe

bp = Blueprint("workers", __name__)  # the HTML page


def _local(service: Any) -> list[dict[str, Any]]:
    runner = service.runner
    pool = getattr(runner, "_pool", None)
    pids = pool.pids if pool is not None else []
    return [{
        "name": f"{socket.gethostname()}-{os.getpid()}", "host": socket.gethostname(),
        "pid": os.getpid(), "kind": "local", "concurrency": service.config.workers or
        (pool.workers if pool is not None else cpu_count()),
        "busy": 1 if runner is not None and runner.current_job else 0,
        "done": None, "failed": None, "last_seen": time.time(), "worker_pids": pids,
    }]


@api_bp.before_request
def _refuse_uploads_while_degraded() -> None:
    """With a broker, a job accepted while the broker or the store is down would never move:
    refuse it with 503 and the reason instead (see corelane/service/health.py)."""
    if request.endpoint != "api.create_job":
        return
    service = current_app.extensions["corelane"]
    if service.config.broker_url:
        reason = upload_refusal(service)
        if reason:
            raise ServiceError(reason, status=503)


@api_bp.get("/workers")
def list_workers() -> Any:
    service = current_app.extensions["corelane"]
    if service.config.broker_url:
        from corelane.service.runners.celery import list_workers as registry

        try:
            workers = registry(service.config)
        except Exception as exc:
            raise ServiceError("the worker registry in Redis cannot be read: "
                               f"{describe(exc)}", status=503) from None
    else:
        workers = _local(service)
    return jsonify({"mode": "celery" if service.config.broker_url else "local",
                    "workers": workers})


@bp.get("/workers")
def workers_page() -> Any:
    return render_template("workers.html")
