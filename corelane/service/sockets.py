"""Socket.IO handlers and the relay from the bus to the browser.

Rooms: ``jobs`` (everyone watching the job list) and ``job:<id>`` (everyone watching one job).
A client joins, then gets a snapshot of the current state (``jobs_state`` / ``job_state``) so a
late or reconnecting client never misses what already happened; the snapshot is read *after*
joining, so no event falls in the gap (counts only grow, and the page keeps the larger value).
"""

from __future__ import annotations

import re
from typing import Any

from flask import request
from flask_socketio import SocketIO, emit, join_room, leave_room

from corelane.errors import JobNotFound
from corelane.service.bus import BusEvent
from corelane.service.guard import token_ok
from corelane.service.jobs import EventName
from corelane.service.views import public_item, public_job

_JOB_ID = re.compile(r"^[0-9a-f]{32}$")
JOBS_ROOM = "jobs"

# Events that also concern the job list; the others go to the job's own room only.
_LIST_EVENTS = {EventName.JOB_CREATED.value, EventName.JOB_PROGRESS.value,
                EventName.JOB_FINISHED.value, EventName.JOB_FAILED.value,
                EventName.JOB_CANCELLED.value, EventName.JOB_QUEUED.value,
                EventName.JOB_DELETED.value}


def job_room(job_id: str) -> str:
    return f"job:{job_id}"


def register(socketio: SocketIO, service: Any) -> None:
    """Attach the connect/join handlers and subscribe the relay to the service's bus."""

    @socketio.on("connect")
    def on_connect(auth: Any = None) -> bool:
        token = auth.get("token") if isinstance(auth, dict) else None
        return token_ok(service.config, request, token)

    @socketio.on("subscribe_jobs")
    def on_subscribe_jobs(_data: Any = None) -> dict[str, Any]:
        join_room(JOBS_ROOM)
        jobs = [public_job(j) for j in service.store.list_jobs()]
        emit(EventName.JOBS_STATE.value, {"jobs": jobs})
        return {"ok": True}

    @socketio.on("join")
    def on_join(data: Any = None) -> dict[str, Any]:
        job_id = data.get("job_id") if isinstance(data, dict) else None
        if not isinstance(job_id, str) or not _JOB_ID.match(job_id):
            return {"ok": False, "error": "join needs {'job_id': <32 hex digits>}"}
        try:
            service.store.get_job(job_id)
        except JobNotFound as exc:
            return {"ok": False, "error": str(exc)}
        join_room(job_room(job_id))
        emit(EventName.JOB_STATE.value, snapshot(service, job_id))
        return {"ok": True}

    @socketio.on("leave")
    def on_leave(data: Any = None) -> dict[str, Any]:
        job_id = data.get("job_id") if isinstance(data, dict) else None
        if isinstance(job_id, str) and _JOB_ID.match(job_id):
            leave_room(job_room(job_id))
        return {"ok": True}

    def relay(event: BusEvent) -> None:
        payload = dict(event.data)
        if "item" in payload:
            payload["item"] = public_item(payload["item"])
        if "job" in payload:
            payload["job"] = public_job(payload["job"])
        payload["sent_at"] = event.sent_at
        # Every web process gets every bus event and relays it to its own clients only
        # (ignore_queue), so a Socket.IO message queue shared by several processes never
        # delivers the same event twice.
        socketio.emit(event.name, payload, to=job_room(event.job_id), ignore_queue=True)
        if event.name in _LIST_EVENTS:
            socketio.emit(event.name, payload, to=JOBS_ROOM, ignore_queue=True)

    service.bus.subscribe(relay)


def snapshot(service: Any, job_id: str) -> dict[str, Any]:
    """The job and all its items, as the REST API shows them."""
    job = public_job(service.store.get_job(job_id))
    items = [public_item(i) for i in service.store.list_items(job_id)]
    return {"job_id": job_id, "job": job, "items": items}
