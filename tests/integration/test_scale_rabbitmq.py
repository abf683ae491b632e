"""Celery over RabbitMQ: tasks over AMQP, progress and the worker registry over Redis pub/sub.

The test starts its own rabbitmq-server node (own name, ports, config and data in a temp dir;
the system's RabbitMQ on 5672, if any, is never used) and its own redis-server, then
`corelane serve --broker amqp://... --redis redis://...` and `corelane worker` processes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from scale_fixtures import (  # noqa: F401 - the fixtures broker and cleanup
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
from servers import RabbitServer, RedisServer, start_rabbitmq

# A RabbitMQ node starts in the first test's setup, then several processes: on a loaded
# machine that needs more than the default 60 s.
pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def rabbit() -> Iterator[RabbitServer]:
    server = start_rabbitmq()
    try:
        yield server
    finally:
        server.stop()


def test_job_completes_over_rabbitmq(tmp_path: Path, rabbit: RabbitServer, broker: RedisServer,
                                     cleanup: list[Any]) -> None:
    data = tmp_path / "data"
    server = serve(data, rabbit.url, cleanup, CORELANE_REDIS_URL=broker.url)
    assert server.get("/api/health")["checks"]["broker"] == {"status": "ok"}
    for name in ("r1", "r2"):
        cleanup.append(WorkerProcess(rabbit.url, data, name,
                                     env={"CORELANE_REDIS_URL": broker.url}))
    job = server.post_files(photos(8))
    done = wait_job(server, job["id"], timeout=90)
    assert done["state"] == "done" and done["done"] == 8
    assert_complete_once(server, job["id"], 8)
    assert {w["name"] for w in server.get("/api/workers")["workers"]} == {"r1", "r2"}
    server.stop()
    assert "corelane-rabbit-pw" not in server.log.read_text()


def test_worker_sigkilled_mid_item_over_rabbitmq_loses_and_duplicates_nothing(
        tmp_path: Path, rabbit: RabbitServer, broker: RedisServer, cleanup: list[Any]) -> None:
    data = tmp_path / "data"
    server = serve(data, rabbit.url, cleanup, CORELANE_REDIS_URL=broker.url)
    env = {"CORELANE_REDIS_URL": broker.url}
    victim = WorkerProcess(rabbit.url, data, "victim", item_delay=1.0, env=env)
    cleanup.append(victim)
    job = server.post_files(photos(8))
    wait_for(lambda: int(worker_counts(broker.url).get("victim", {}).get("busy", 0)) > 0,
             30, "the victim to hold an image", 0.05)
    victim.kill()  # the whole host: RabbitMQ requeues its unacknowledged message at once
    cleanup.append(WorkerProcess(rabbit.url, data, "survivor", item_delay=0.2, env=env))
    done = wait_job(server, job["id"], timeout=90)
    assert done["state"] == "done" and done["done"] == 8 and done["failed"] == 0
    assert_complete_once(server, job["id"], 8)
