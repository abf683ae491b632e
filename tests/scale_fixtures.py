"""Helpers for the scale-out tests: ``corelane worker`` processes, Socket.IO listeners, waits.

Every test starts its own redis-server on a free port (tests/servers.py), its own web
process(es) and workers, and stops them all; nothing is shared between tests.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import redis
from service_fixtures import _wait_group_gone

ROOT = Path(__file__).resolve().parents[1]


class WorkerProcess:
    """``corelane worker`` in its own session, so a SIGKILL takes its whole process group."""

    def __init__(self, broker: str, data_dir: Path, name: str, concurrency: int = 1,
                 db_url: str | None = None, visibility_timeout: float | None = None) -> None:
        self.name = name
        cmd = [sys.executable, "-m", "corelane", "worker", "--broker", broker,
               "--data-dir", str(data_dir), "--concurrency", str(concurrency), "--name", name,
               "--loglevel", "WARNING"]
        if db_url:
            cmd += ["--db", db_url]
        if visibility_timeout:
            cmd += ["--visibility-timeout", str(visibility_timeout)]
        self.log = data_dir.parent / f"worker-{name}.log"
        data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def kill(self) -> None:
        """SIGKILL the worker and its pool children at once (a host that vanished)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        _wait_group_gone(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(20)
        self.kill()


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll ``predicate()`` until it returns something truthy (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def wait_job(server: Any, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        job = server.get(f"/api/jobs/{job_id}")
        return job if job["state"] in ("done", "failed", "cancelled") else None

    return dict(wait_for(finished, timeout, f"job {job_id} to finish", 0.2))


def worker_counts(broker: str) -> dict[str, dict[str, str]]:
    """The worker registry, straight from Redis: name -> fields."""
    client = redis.Redis.from_url(broker)
    out = {}
    for key in client.scan_iter(match="corelane:worker:*"):
        fields = {k.decode(): v.decode() for k, v in client.hgetall(key).items()}
        out[key.decode().split(":", 2)[2]] = fields
    client.close()
    return out


class Listener:
    """A Socket.IO client (WebSocket transport) recording the events of one job's room."""

    def __init__(self, url: str) -> None:
        import socketio

        self.events: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self.client = socketio.Client(reconnection=True)
        self.client.on("*", self._record)
        self.client.connect(url, transports=["websocket"], wait_timeout=10)

    def _record(self, event: str, data: Any = None) -> None:
        with self._lock:
            self.events.append((event, data if isinstance(data, dict) else {}))

    def join(self, job_id: str) -> None:
        reply = self.client.call("join", {"job_id": job_id}, timeout=10)
        assert reply and reply.get("ok"), reply

    def names(self) -> list[str]:
        with self._lock:
            return [name for name, _ in self.events]

    def close(self) -> None:
        self.client.disconnect()
