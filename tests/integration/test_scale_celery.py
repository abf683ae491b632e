"""The image service scaled out: Celery workers over a real Redis, separate processes throughout.

Each test starts its own redis-server on a free port, `corelane serve --broker` process(es) and
`corelane worker` processes over one temp data dir (SQLite in WAL mode is shared safely by the
processes of one machine; PostgreSQL is covered by the last test).
"""

from __future__ import annotations

import base64
import contextlib
import json
from pathlib import Path
from typing import Any

import imaging_samples as samples
import redis
from scale_fixtures import (  # noqa: F401 - the fixtures broker and cleanup
    Listener,
    WorkerProcess,
    assert_complete_once,
    broker_fixture,
    cleanup_fixture,
    photos,
    serve,
    wait_for,
    wait_job,
    worker_counts,
)
from servers import RedisServer, postgres_server


def test_job_runs_across_two_worker_commands(tmp_path: Path, broker: RedisServer,
                                             cleanup: list[Any]) -> None:
    data = tmp_path / "data"
    server = serve(data, broker, cleanup)
    for name in ("alpha", "beta"):
        cleanup.append(WorkerProcess(broker.url, data, name))
    job = server.post_files(photos(10))
    done = wait_job(server, job["id"])
    assert done["state"] == "done" and done["done"] == 10
    assert_complete_once(server, job["id"], 10)
    counts = worker_counts(broker.url)
    per_worker = {name: int(fields.get("done", 0)) for name, fields in counts.items()}
    assert per_worker.keys() == {"alpha", "beta"} and sum(per_worker.values()) == 10
    assert all(n > 0 for n in per_worker.values()), per_worker
    # the service's own view of its workers
    view = server.get("/api/workers")
    assert {w["name"] for w in view["workers"]} == {"alpha", "beta"}
    assert all(w["concurrency"] == 1 for w in view["workers"])


def test_messages_on_the_network_are_json_not_pickle(tmp_path: Path, broker: RedisServer,
                                                     cleanup: list[Any]) -> None:
    data = tmp_path / "data"
    server = serve(data, broker, cleanup)  # no worker: the task message stays in the queue
    job = server.post_files(photos(1))
    client = redis.Redis.from_url(broker.url)
    raw = wait_for(lambda: client.lindex("corelane", 0), 10, "the task message")
    envelope = json.loads(raw)
    assert envelope["content-type"] == "application/json"
    assert envelope["headers"]["task"] == "corelane.process_item"
    args, kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
    assert args[0] == job["id"] and kwargs == {}
    client.close()


def test_worker_sigkilled_mid_task_loses_and_duplicates_nothing(
        tmp_path: Path, broker: RedisServer, cleanup: list[Any]) -> None:
    data = tmp_path / "data"
    server = serve(data, broker, cleanup, CORELANE_VISIBILITY_TIMEOUT="3")
    # Slow enough that a heartbeat (every 2 s) sees it busy: the images alone can all finish
    # between two beats on a fast machine, and the kill below would then never come.
    victim = WorkerProcess(broker.url, data, "victim", visibility_timeout=3, item_delay=0.3)
    cleanup.append(victim)
    job = server.post_files(photos(8, (1600, 1200)))
    # Kill the whole worker host while it holds an image (busy in the registry).
    wait_for(lambda: int(worker_counts(broker.url).get("victim", {}).get("busy", 0)) > 0,
             30, "the victim to start an image", 0.02)
    victim.kill()
    survivor = WorkerProcess(broker.url, data, "survivor", visibility_timeout=3)
    cleanup.append(survivor)
    done = wait_job(server, job["id"], timeout=90)
    assert done["state"] == "done" and done["done"] == 8 and done["failed"] == 0
    assert_complete_once(server, job["id"], 8)


def test_two_web_processes_both_relay_progress(tmp_path: Path, broker: RedisServer,
                                               cleanup: list[Any]) -> None:
    data = tmp_path / "data"
    web_a = serve(data, broker, cleanup)
    web_b = serve(data, broker, cleanup)
    job = web_a.post_files(photos(4))
    listeners = [Listener(web_a.url), Listener(web_b.url)]
    cleanup.extend(listeners)
    for listener in listeners:
        listener.join(job["id"])
    cleanup.append(WorkerProcess(broker.url, data, "w1"))
    wait_job(web_b, job["id"])
    for listener in listeners:
        names = wait_for(lambda lis=listener: "job_finished" in lis.names() and lis.names(),
                         20, "job_finished on both web processes")
        assert names.count("item_done") == 4  # every event once, none duplicated by the queue
        assert names.count("job_finished") == 1


def test_redis_connections_dropped_mid_job_then_progress_resumes(
        tmp_path: Path, broker: RedisServer, cleanup: list[Any]) -> None:
    data = tmp_path / "data"
    server = serve(data, broker, cleanup)
    listener = Listener(server.url)
    cleanup.append(listener)
    job = server.post_files(photos(12, (1400, 1000)))
    listener.join(job["id"])
    cleanup.append(WorkerProcess(broker.url, data, "w1"))
    wait_for(lambda: "item_done" in listener.names(), 30, "the first item")
    admin = redis.Redis.from_url(broker.url)
    killed = admin.client_kill_filter(_type="normal") + admin.client_kill_filter(_type="pubsub")
    assert killed >= 2  # the worker's and the web process's connections really dropped
    admin.close()
    done = wait_job(server, job["id"], timeout=90)
    assert done["state"] == "done" and done["done"] == 12
    names = wait_for(lambda: "job_finished" in listener.names() and listener.names(), 20,
                     "job_finished after the drop")
    assert names.count("job_finished") == 1
    assert_complete_once(server, job["id"], 12)


def test_postgres_job_store_with_celery_workers(tmp_path: Path, broker: RedisServer,
                                                cleanup: list[Any]) -> None:
    with postgres_server() as pg:
        db = pg.create_database("corelane_scale")
        data = tmp_path / "data"
        server = serve(data, broker, cleanup, CORELANE_DB_URL=db)
        cleanup.append(WorkerProcess(broker.url, data, "pgw", concurrency=2, db_url=db))
        job = server.post_files(photos(6))
        done = wait_job(server, job["id"])
        assert done["state"] == "done" and done["done"] == 6
        for thing in reversed(cleanup):
            thing.stop()
        cleanup.clear()


POISON_WORKER = """
import sys
import corelane.service.runners.celery as runner
from service_fixtures import poison_or_process
runner.process_item = poison_or_process  # every pool child inherits the patch (prefork)
from corelane.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_poison_item_redelivery_is_bounded(tmp_path: Path, broker: RedisServer,
                                           cleanup: list[Any]) -> None:
    """An image that kills its pool child on every delivery fails after max_attempts; the
    other images are processed and the queue moves on."""
    import subprocess
    import sys

    from service_fixtures import poison_image

    data = tmp_path / "data"
    server = serve(data, broker, cleanup, CORELANE_MAX_ATTEMPTS="2")
    tests_dir = str(Path(__file__).resolve().parents[1])
    log = open(tmp_path / "poison-worker.log", "wb")  # noqa: SIM115 - closed by the cleanup
    proc = subprocess.Popen(
        [sys.executable, "-c", POISON_WORKER, "worker", "--broker", broker.url, "--data-dir",
         str(data), "--concurrency", "1", "--name", "poisoned", "--loglevel", "WARNING"],
        env={**__import__("os").environ, "PYTHONPATH": tests_dir, "CORELANE_MAX_ATTEMPTS": "2"},
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    class _Stop:
        def stop(self) -> None:
            import os
            import signal

            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
            log.close()

    cleanup.append(_Stop())
    files = {"ok-1.jpg": samples.photo_jpeg(400, 300, seed=1), "poison.jpg": poison_image(),
             "ok-2.jpg": samples.photo_jpeg(400, 300, seed=2)}
    job = server.post_files(files)
    done = wait_job(server, job["id"], timeout=90)
    assert done["state"] == "failed" and done["done"] == 2 and done["failed"] == 1
    items = {i["name"]: i for i in server.get(f"/api/jobs/{job['id']}/items")["items"]}
    assert "poison input" in items["poison.jpg"]["error"]
    assert items["poison.jpg"]["attempts"] == 2


def test_dispatcher_interleaves_a_small_job_with_a_running_big_one(
        tmp_path: Path, broker: RedisServer, cleanup: list[Any]) -> None:
    """Fair scheduling with a broker: the dispatcher keeps a small window of messages out, so a
    1-image job's message is not queued behind the big job's remaining ones (runners/fair.py)."""
    data = tmp_path / "data"
    server = serve(data, broker, cleanup)
    for name in ("w1", "w2"):
        cleanup.append(WorkerProcess(broker.url, data, name, item_delay=0.2))
    big = server.post_files(photos(16, (300, 200)))
    wait_for(lambda: server.get(f"/api/jobs/{big['id']}")["done"] >= 2, 60, "two images done")
    client = redis.Redis.from_url(broker.url)
    assert client.llen("corelane") <= 4  # a window, not the big job's 14 remaining images
    client.close()
    small = server.post_files(photos(1, (300, 200), seed=50))
    for job in (small, big):
        assert wait_job(server, job["id"])["state"] == "done"
    mark = server.get(f"/api/jobs/{small['id']}/items")["items"][0]["finished_at"]
    after = [i for i in server.get(f"/api/jobs/{big['id']}/items")["items"]
             if i["finished_at"] > mark]
    # Oldest-first sends all 16 before it; the window leaves most of the big job after it.
    assert len(after) >= 16 - 2 - 6, f"only {len(after)} of the big job's images came after"
    assert_complete_once(server, big["id"], 16)
