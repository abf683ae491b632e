"""Helpers for the scale-out tests: ``corelane worker`` processes, Socket.IO listeners, waits.

Every test starts its own redis-server on a free port (tests/servers.py), its own web
process(es) and workers, and stops them all; nothing is shared between tests.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import imaging_samples as samples
import pytest
import redis
from servers import RedisServer, start_redis
from service_fixtures import ServerProcess, _wait_group_gone

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent

# A real `corelane worker` whose item function is swapped for a test's (CORELANE_TEST_PROCESS,
# "module:function") and/or first sleeps CORELANE_TEST_ITEM_DELAY seconds, so a test can act while
# images are in flight. Every pool child inherits the patch (prefork).
PATCHED_WORKER = """
import importlib, os, sys, time
import corelane.service.runners.celery as runner
spec = os.environ.get("CORELANE_TEST_PROCESS")
if spec:
    module, name = spec.split(":")
    runner.process_item = getattr(importlib.import_module(module), name)
delay = float(os.environ.get("CORELANE_TEST_ITEM_DELAY") or 0)
if delay:
    _real = runner.process_item
    def _slow(task):
        time.sleep(delay)
        return _real(task)
    runner.process_item = _slow
from corelane.cli import main
sys.exit(main(sys.argv[1:]))
"""

BOOM_SIZE = (321, 123)  # an image of this size raises ValueError("boom") in quirky_process
SLOW_SIZE = (322, 124)  # an image of this size sleeps for a minute in quirky_process


def quirky_process(task: Any) -> dict[str, Any]:
    """The real item function, except for two marked image sizes (a bug, a hang)."""
    from PIL import Image

    from corelane.service.runners._work import process_item

    with Image.open(task.source) as im:
        size = im.size
    if size == BOOM_SIZE:
        raise ValueError("boom")
    if size == SLOW_SIZE:
        time.sleep(60)
    return process_item(task)


class WorkerProcess:
    """``corelane worker`` in its own session, so a SIGKILL takes its whole process group."""

    def __init__(self, broker: str, data_dir: Path, name: str, concurrency: int = 1,
                 db_url: str | None = None, visibility_timeout: float | None = None,
                 item_delay: float = 0.0, process: str | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.name = name
        args = ["worker", "--broker", broker, "--data-dir", str(data_dir), "--concurrency",
                str(concurrency), "--name", name, "--loglevel", "WARNING"]
        if db_url:
            args += ["--db", db_url]
        if visibility_timeout:
            args += ["--visibility-timeout", str(visibility_timeout)]
        environ = {**os.environ, **(env or {})}
        if item_delay or process:
            cmd = [sys.executable, "-c", PATCHED_WORKER, *args]
            environ["CORELANE_TEST_ITEM_DELAY"] = str(item_delay)
            environ["CORELANE_TEST_PROCESS"] = process or ""
            environ["PYTHONPATH"] = str(TESTS)
        else:
            cmd = [sys.executable, "-m", "corelane", *args]
        self.log = data_dir.parent / f"worker-{name}.log"
        data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True, env=environ)

    def kill_main(self) -> None:
        """SIGKILL only the worker's main process (its pool children are left to notice)."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

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


@pytest.fixture(name="broker")
def broker_fixture() -> Iterator[RedisServer]:
    """Fixture ``broker``: a redis-server of the test's own, then stopped. Import it into a test
    module as ``broker_fixture`` (the name the test uses stays ``broker``)."""
    server = start_redis()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(name="cleanup")
def cleanup_fixture() -> Iterator[list[Any]]:
    """Fixture ``cleanup``: things with a stop(), stopped in reverse order, whatever happened."""
    things: list[Any] = []
    yield things
    for thing in reversed(things):
        with contextlib.suppress(Exception):  # stop the others anyway
            thing.stop()


def photos(n: int, size: tuple[int, int] = (900, 700), seed: int = 0) -> dict[str, bytes]:
    return {f"photo-{seed + i}.jpg": samples.photo_jpeg(*size, seed=seed + i) for i in range(n)}


class ProbedServer(ServerProcess):
    """A server whose 503 answers are read, not raised: ``/api/health`` says "degraded" with
    503, and a degraded node is still a running one (``start()`` returns once it answers)."""

    def get(self, path: str, timeout: float = 10.0) -> Any:
        try:
            return super().get(path, timeout)
        except urllib.error.HTTPError as exc:
            if exc.code != 503:
                raise
            return json.loads(exc.read())


def serve(data_dir: Path, broker: RedisServer | str, cleanup: list[Any], **env: str
          ) -> ServerProcess:
    url = broker if isinstance(broker, str) else broker.url
    server = ProbedServer(data_dir, env={"CORELANE_BROKER_URL": url, **env})
    cleanup.append(server)
    return server.start()


def assert_complete_once(server: ServerProcess, job_id: str, total: int,
                         db_url: str | None = None) -> None:
    """Every item done exactly once: one row each, all done, exactly the outputs it names."""
    from corelane.service.store import Store

    store = Store(db_url or f"sqlite:///{server.data_dir / 'corelane.db'}")
    items = store.list_items(job_id)
    store.close()
    assert len(items) == total
    assert {i["state"] for i in items} == {"done"}, [(i["name"], i["state"], i["error"]) for i in items]
    objects = server.data_dir / "objects"
    expected = {info["key"] for i in items for info in i["outputs"].values()}
    prefixes = {f"out/{i['id'][:2]}/{i['id']}/" for i in items}
    outputs = {str(p.relative_to(objects)) for p in (objects / "out").rglob("*")
               if p.is_file() and any(str(p.relative_to(objects)).startswith(x) for x in prefixes)}
    assert outputs == expected  # and nothing else was written: no duplicate, no leftover


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
