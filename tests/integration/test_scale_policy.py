"""One item policy (corelane/service/runners/policy.py): both runners, same inputs, same outcome.

The embedded runner runs in this process on its engine pool; the Celery runner is a real
`corelane serve --broker` + `corelane worker` over a real redis-server. Both get the item function
``quirky_process`` (the real one, except that one marked image size raises ValueError("boom") and
another hangs past the item timeout), and the same uploads.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import imaging_samples as samples
import redis
from scale_fixtures import (  # noqa: F401 - the fixtures broker and cleanup
    BOOM_SIZE,
    SLOW_SIZE,
    WorkerProcess,
    broker_fixture,
    cleanup_fixture,
    serve,
    wait_for,
    wait_job,
)
from servers import RedisServer
from service_fixtures import make_config, upload
from service_fixtures import wait_job as wait_local_job

from corelane.service.runners.policy import gave_up_text, timeout_text

ITEM_TIMEOUT = 3.0
POLICY_ENV = {"CORELANE_ITEM_TIMEOUT": str(ITEM_TIMEOUT), "CORELANE_MAX_ATTEMPTS": "1"}


def inputs() -> dict[str, bytes]:
    return {"good.jpg": samples.photo_jpeg(640, 480, seed=1),
            "truncated.jpg": samples.truncated_jpeg(),
            "boom.jpg": samples.photo_jpeg(*BOOM_SIZE, seed=2),
            "slow.jpg": samples.photo_jpeg(*SLOW_SIZE, seed=3)}


def outcomes(items: list[dict[str, Any]]) -> dict[str, tuple[str, str | None]]:
    return {i["name"]: (i["state"], i["error"]) for i in items}


def run_local(tmp_path: Path) -> dict[str, tuple[str, str | None]]:
    from scale_fixtures import quirky_process

    from corelane.service.app import create_app

    config = make_config(tmp_path / "local", item_timeout=ITEM_TIMEOUT, max_attempts=1)
    app = create_app(config, process_fn=quirky_process)
    try:
        client = app.test_client()
        job = upload(client, inputs()).get_json()
        wait_local_job(client, job["id"], timeout=60)
        return outcomes(client.get(f"/api/jobs/{job['id']}/items").get_json()["items"])
    finally:
        app.extensions["corelane"].close()


def run_celery(tmp_path: Path, broker: RedisServer,
               cleanup: list[Any]) -> dict[str, tuple[str, str | None]]:
    data = tmp_path / "celery"
    server = serve(data, broker, cleanup, **POLICY_ENV)
    # The worker host keeps its own defaults (item timeout 120 s, 3 attempts): the web node's
    # limits travel with each item.
    cleanup.append(WorkerProcess(broker.url, data, "quirky",
                                 process="scale_fixtures:quirky_process"))
    job = server.post_files(inputs())
    wait_job(server, job["id"], timeout=60)
    return outcomes(server.get(f"/api/jobs/{job['id']}/items")["items"])


def test_same_inputs_same_outcomes_and_error_texts_in_both_runners(
        tmp_path: Path, broker: RedisServer, cleanup: list[Any]) -> None:
    local = run_local(tmp_path)
    celery = run_celery(tmp_path, broker, cleanup)
    assert local == celery
    assert local["good.jpg"] == ("done", None)
    assert local["boom.jpg"] == ("failed", "ValueError: boom")
    assert local["slow.jpg"] == ("failed", gave_up_text(1, timeout_text(ITEM_TIMEOUT)))
    state, error = local["truncated.jpg"]
    assert state == "failed" and error and "truncated" in error


def test_limits_travel_with_each_item(tmp_path: Path, broker: RedisServer,
                                      cleanup: list[Any]) -> None:
    server = serve(tmp_path / "data", broker, cleanup, CORELANE_MAX_PIXELS="4000000",
                   CORELANE_MAX_FILE_BYTES="3000000", **POLICY_ENV)
    server.post_files({"a.jpg": samples.photo_jpeg(300, 200, seed=1)})
    client = redis.Redis.from_url(broker.url)
    raw = wait_for(lambda: client.lindex("corelane", 0), 10, "the task message")
    client.close()
    envelope = json.loads(raw)
    args, _kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
    assert args[2] == {"max_pixels": 4_000_000, "max_bytes": 3_000_000,
                       "item_timeout": ITEM_TIMEOUT, "max_attempts": 1}
    assert envelope["headers"]["timelimit"][1] == ITEM_TIMEOUT  # [hard, soft]
