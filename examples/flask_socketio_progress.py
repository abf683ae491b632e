"""The tutorial's Flask + SocketIO background-worker pattern, corrected, in its smallest form.

A request starts a worker *process* that pushes ("progress", done, total) messages through a
multiprocessing Queue; a Socket.IO background task in the web process drains that queue and
emits ``job_progress`` / ``job_done`` to the clients in the job's room. What the tutorial's
sketch got wrong, and this fixes:

- ``cors_allowed_origins="*"`` lets any web site drive the socket: leave the default (same origin).
- The worker starts with "spawn": the web process has threads, and forking a threaded process
  can deadlock the child on a lock some other thread held.
- One emitter per job, started with ``socketio.start_background_task`` (it works in every async
  mode), that waits on the queue *with a timeout*, stops at "done" or when the worker dies, and
  joins the process; the tutorial's endless loop was never started and never ended.
- Each job has its own queue and room, so two jobs do not mix their progress.

Run it with the project's virtualenv (``make setup`` makes it; ``. .venv/bin/activate``):

    python examples/flask_socketio_progress.py [N]          # prints the events a client gets
    python examples/flask_socketio_progress.py --serve [PORT]   # an HTTP server, default :5000

``--serve`` uses Werkzeug's development server, which Flask-SocketIO refuses to start outside a
terminal unless told (``allow_unsafe_werkzeug=True``): fine for this loopback-only demo, never for
a service (``corelane serve`` runs gunicorn). Its ``/`` page says how to start a job.

For the real thing (persisted jobs, a pool, recovery), see ``corelane serve``.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import sys
import time
import uuid
from typing import Any

from flask import Flask, jsonify, request
from flask_socketio import SocketIO, join_room

app = Flask(__name__)
socketio = SocketIO(app, async_mode="threading")  # same-origin only by default
ctx = mp.get_context("spawn")


def background_task(items: list[int], q: Any) -> None:
    """The worker process: heavy work per item, a progress message after each."""
    total = len(items)
    for i, item in enumerate(items, 1):
        sum(k * k for k in range(item * 1000))  # stands in for real CPU-bound work
        q.put(("progress", i, total))
    q.put(("done", total, total))


def emit_progress(job_id: str, proc: Any, q: Any) -> None:
    """Relay the worker's messages to the job's room until it is done or dies."""
    while True:
        try:
            kind, done, total = q.get(timeout=0.5)
        except queue.Empty:
            if proc.is_alive():
                continue
            socketio.emit("job_failed", {"job_id": job_id}, to=job_id)
            break
        if kind == "progress":
            socketio.emit("job_progress", {"job_id": job_id, "done": done, "total": total},
                          to=job_id)
        else:
            socketio.emit("job_done", {"job_id": job_id, "total": total}, to=job_id)
            break
    proc.join(timeout=5)


@app.post("/start")
def start_job() -> Any:
    items = (request.get_json(silent=True) or {}).get("items", [])
    if not isinstance(items, list) or not all(isinstance(i, int) and 0 <= i < 10**4
                                               for i in items):
        return jsonify({"error": "items must be a list of small non-negative ints"}), 400
    job_id = uuid.uuid4().hex
    q = ctx.Queue()
    proc = ctx.Process(target=background_task, args=(items, q))
    proc.start()
    socketio.start_background_task(emit_progress, job_id, proc, q)
    return jsonify({"job_id": job_id}), 202


USAGE = """flask_socketio_progress example: start a job, then follow it over Socket.IO.

  curl -X POST -H 'Content-Type: application/json' -d '{{"items": [5, 10, 20]}}' {base}start
      -> 202 {{"job_id": "..."}}

  A Socket.IO client (same origin) emits "join" with {{"job_id": ...}} and receives
  "job_progress" {{job_id, done, total}} after each item, then "job_done" or "job_failed".
"""


@app.get("/")
def usage() -> Any:
    """What this server does and how to use it, instead of a bare 404."""
    return USAGE.format(base=request.host_url), 200, {"Content-Type": "text/plain; charset=utf-8"}


@socketio.on("join")
def on_join(data: Any) -> None:
    join_room(str(data["job_id"]))


def demo(n: int = 5) -> int:
    """Start a job and print what a Socket.IO client in its room receives."""
    http = app.test_client()
    client = socketio.test_client(app, flask_test_client=http)
    # Join before starting the worker so no event is missed (the service sends a snapshot
    # on join instead, so that clients may also join late).
    job_id = uuid.uuid4().hex
    client.emit("join", {"job_id": job_id})
    q = ctx.Queue()
    proc = ctx.Process(target=background_task, args=(list(range(1, n + 1)), q))
    proc.start()
    task = socketio.start_background_task(emit_progress, job_id, proc, q)
    deadline = time.monotonic() + 30
    finished = False
    while not finished and time.monotonic() < deadline:
        for event in client.get_received():
            print(event["name"], event["args"][0])
            finished = event["name"] in ("job_done", "job_failed")
        time.sleep(0.05)
    task.join(5)
    client.disconnect()
    return 0 if finished else 1


def serve(port: int = 5000) -> None:
    """Serve on 127.0.0.1:``port`` with the development server (loopback only, demo only)."""
    print(f"serving http://127.0.0.1:{port}/ (Ctrl-C stops)", flush=True)
    socketio.run(app, host="127.0.0.1", port=port, allow_unsafe_werkzeug=True)


if __name__ == "__main__":
    if "--serve" in sys.argv:
        rest = sys.argv[sys.argv.index("--serve") + 1:]
        serve(int(rest[0]) if rest else 5000)
    else:
        sys.exit(demo(int(sys.argv[1]) if len(sys.argv) > 1 else 5))
