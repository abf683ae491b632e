"""examples/flask_socketio_progress.py runs: progress from a worker process reaches a client."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_flask_socketio_progress_example_reports_every_step() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "flask_socketio_progress.py"),
                          "4"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    progress = [line for line in lines if line.startswith("job_progress")]
    assert [eval(line.split(" ", 1)[1])["done"] for line in progress] == [1, 2, 3, 4]
    assert lines[-1].startswith("job_done") and "'total': 4" in lines[-1]


def test_example_http_endpoint_validates_and_starts_a_job() -> None:
    sys.path.insert(0, str(ROOT / "examples"))  # spawn children import the module by name
    try:
        import flask_socketio_progress as ex

        http = ex.app.test_client()
        assert http.post("/start", json={"items": ["x"]}).status_code == 400
        client = ex.socketio.test_client(ex.app, flask_test_client=http)
        resp = http.post("/start", json={"items": [1, 2]})
        assert resp.status_code == 202
        client.emit("join", {"job_id": resp.get_json()["job_id"]})
        deadline = time.monotonic() + 30
        names: list[str] = []
        while not {"job_done", "job_failed"} & set(names) and time.monotonic() < deadline:
            names += [e["name"] for e in client.get_received()]
            time.sleep(0.05)
        assert "job_done" in names
        client.disconnect()
    finally:
        sys.path.remove(str(ROOT / "examples"))


def test_serve_mode_runs_without_a_terminal_and_explains_itself() -> None:
    """Issue 12, point 16: ``--serve`` with no TTY (Flask-SocketIO's guard) and a usage page."""
    import contextlib
    import os
    import signal
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, str(ROOT / "examples" / "flask_socketio_progress.py"),
                             "--serve", str(port)], cwd=ROOT, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                    page = r.read().decode()
                break
            except OSError:
                assert time.monotonic() < deadline, "the example server never answered"
                time.sleep(0.1)
        assert "curl -X POST" in page and f"http://127.0.0.1:{port}/start" in page
        assert '"join"' in page and "job_progress" in page
        req = urllib.request.Request(f"http://127.0.0.1:{port}/start", data=b'{"items": []}',
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 202
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)
        if proc.stdout:
            proc.stdout.close()
