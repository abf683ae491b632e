"""Honest health in broker mode: each dependency reported, 503 with the reason, no password shown.

Real redis-servers with ``requirepass`` started by the tests; `corelane serve --broker` and
`corelane worker` as separate processes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from scale_fixtures import (  # noqa: F401 - the fixtures broker and cleanup
    Listener,
    ProbedServer,
    WorkerProcess,
    assert_complete_once,
    cleanup_fixture,
    photos,
    serve,
    wait_for,
    wait_job,
)
from servers import postgres_server, start_redis

PASSWORD = "s3cret-Pa55word"


def _status(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=15) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_wrong_redis_password_is_degraded_refuses_uploads_and_prints_no_password(
        tmp_path: Path, cleanup: list[Any]) -> None:
    redis_server = start_redis(password=PASSWORD)
    cleanup.append(redis_server)
    wrong = f"redis://:{PASSWORD[::-1]}@127.0.0.1:{redis_server.port}/0"
    server = serve(tmp_path / "data", wrong, cleanup)
    health = wait_for(lambda: (h := server.get("/api/health"))["checks"]["bus"]["status"]
                      == "degraded" and h, 20, "the bus to report its failure")
    assert health["status"] == "degraded"
    assert health["checks"]["store"] == {"status": "ok"}
    broker = health["checks"]["broker"]
    assert broker["status"] == "degraded"
    assert "AuthenticationError" in broker["reason"] or "password" in broker["reason"].lower()
    status, body = _status(server.url + "/api/health")
    assert status == 503
    with pytest.raises(urllib.error.HTTPError) as refused:
        server.post_files(photos(1))
    assert refused.value.code == 503
    message = refused.value.read().decode()
    assert "uploads are refused" in message and "broker" in message
    status, workers = _status(server.url + "/api/workers")
    assert status == 503 and "worker registry" in workers
    assert server.get("/api/jobs")["jobs"] == []  # nothing was accepted
    server.stop()
    log = server.log.read_text()
    for text in (body, message, workers, log):
        assert PASSWORD[::-1] not in text and PASSWORD not in text


def test_right_password_is_ok_and_runs_a_job(tmp_path: Path, cleanup: list[Any]) -> None:
    redis_server = start_redis(password=PASSWORD)
    cleanup.append(redis_server)
    data = tmp_path / "data"
    server = serve(data, redis_server.url, cleanup)
    health = wait_for(lambda: (h := server.get("/api/health"))["status"] == "ok" and h, 20,
                      "health ok")
    assert set(health["checks"]) == {"store", "broker", "bus"}
    assert _status(server.url + "/api/health")[0] == 200
    cleanup.append(WorkerProcess(redis_server.url, data, "authed"))
    job = server.post_files(photos(2))
    assert wait_job(server, job["id"])["done"] == 2
    assert [w["name"] for w in server.get("/api/workers")["workers"]] == ["authed"]


def test_broker_stopped_then_back_health_follows(tmp_path: Path, cleanup: list[Any]) -> None:
    redis_server = start_redis()
    cleanup.append(redis_server)
    server = serve(tmp_path / "data", redis_server, cleanup)
    wait_for(lambda: server.get("/api/health")["status"] == "ok", 20, "health ok")
    port = redis_server.port
    redis_server.stop()
    down = wait_for(lambda: (h := server.get("/api/health"))["status"] == "degraded" and h, 20,
                    "health degraded")
    assert down["checks"]["broker"]["status"] == "degraded"
    assert "broker does not answer" in down["checks"]["broker"]["reason"]
    cleanup.append(start_redis(port))
    wait_for(lambda: server.get("/api/health")["status"] == "ok", 30, "health ok again")


@pytest.mark.parametrize("mode", ["embedded", "broker"])
def test_web_node_with_open_websockets_stops_within_two_seconds(
        tmp_path: Path, cleanup: list[Any], mode: str) -> None:
    env = {}
    if mode == "broker":
        redis_server = start_redis()
        cleanup.append(redis_server)
        env["CORELANE_BROKER_URL"] = redis_server.url
    server = ProbedServer(tmp_path / "data", env=env)
    cleanup.append(server)
    server.start()
    listeners = [Listener(server.url) for _ in range(3)]
    cleanup.extend(listeners)
    assert server.proc is not None
    started = time.monotonic()
    os.killpg(server.proc.pid, signal.SIGTERM)
    server.proc.wait(15)
    elapsed = time.monotonic() - started
    print(f"{mode}: the web node stopped in {elapsed:.2f} s")
    assert elapsed < 2.0, f"the web node took {elapsed:.2f} s to stop"
    assert "Shutting down: Master" in server.log.read_text()


def test_a_frozen_websocket_client_does_not_hold_the_stop(
        tmp_path: Path, cleanup: list[Any]) -> None:
    # A client that never answers the close frame (here: SIGSTOPped) held the worker's graceful
    # stop for its whole 5 s (gunicorn waits for every request, and a WebSocket is one); its
    # connection is now cut 0.5 s after the close.
    server = ProbedServer(tmp_path / "data", env={})
    cleanup.append(server)
    server.start()
    tests = Path(__file__).resolve().parents[1]
    client = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(tests)!r})
        from scale_fixtures import Listener
        listeners = [Listener({server.url!r}) for _ in range(3)]
        print("connected", flush=True)
        time.sleep(120)
    """)], stdout=subprocess.PIPE)
    try:
        assert client.stdout is not None and client.stdout.readline().strip() == b"connected"
        os.kill(client.pid, signal.SIGSTOP)
        assert server.proc is not None
        started = time.monotonic()
        os.killpg(server.proc.pid, signal.SIGTERM)
        server.proc.wait(15)
        elapsed = time.monotonic() - started
    finally:
        client.kill()
        client.wait(10)
    assert elapsed < 3.0, f"the web node took {elapsed:.2f} s to stop (graceful timeout: 5 s)"


def test_postgres_down_mid_job_is_reported_and_the_job_completes_once_it_is_back(
        tmp_path: Path, cleanup: list[Any]) -> None:
    redis_server = start_redis()
    cleanup.append(redis_server)
    with postgres_server() as pg:
        db = pg.create_database("corelane_outage")
        data = tmp_path / "data"
        server = serve(data, redis_server, cleanup, CORELANE_DB_URL=db)
        worker = WorkerProcess(redis_server.url, data, "pgw", db_url=db, item_delay=0.5)
        cleanup.append(worker)
        job = server.post_files(photos(10))
        wait_for(lambda: server.get(f"/api/jobs/{job['id']}")["done"] >= 2, 60, "two done")
        pg.stop()
        down = wait_for(lambda: (h := server.get("/api/health"))["checks"]["store"]["status"]
                        == "degraded" and h, 20, "the store check to fail")
        assert "job database does not answer" in down["checks"]["store"]["reason"]
        time.sleep(3)  # the worker's deliveries meanwhile fail without settling their images
        pg.start()
        done = wait_job(server, job["id"], timeout=120)
        assert done["state"] == "done" and done["done"] == 10 and done["failed"] == 0
        assert_complete_once(server, job["id"], 10, db_url=db)
        for thing in reversed(cleanup):
            thing.stop()
        cleanup.clear()
