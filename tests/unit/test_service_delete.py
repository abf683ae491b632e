"""Issue 12, point 9: a job and its files can be deleted (DELETE /api/jobs/<id>), a running job
only after a cancel, and ``keep_days`` sweeps finished jobs that ended long enough ago."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import imaging_samples as samples
import pytest
from service_fixtures import make_config, upload, wait_job

from corelane.service.retention import RetentionSweeper, sweep


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_delete_removes_the_job_its_rows_and_its_files(tmp_path: Path) -> None:
    from corelane.service.app import create_app

    app = create_app(make_config(tmp_path))
    service = app.extensions["corelane"]
    socketio = app.extensions["socketio"]
    try:
        client = app.test_client()
        watcher = socketio.test_client(app, flask_test_client=client)
        watcher.emit("subscribe_jobs")
        keep = upload(client, {"keep.jpg": samples.photo_jpeg(200, 150)}, sizes="128").get_json()
        gone = upload(client, {"a.jpg": samples.photo_jpeg(320, 240, seed=1),
                               "b.png": samples.png_rgba(100, 80),
                               "bad.jpg": samples.text_file()}, sizes="256,64").get_json()
        wait_job(client, keep["id"])
        assert wait_job(client, gone["id"])["done"] == 2
        objects = service.objects.root
        before = _files(objects)
        items = client.get(f"/api/jobs/{gone['id']}/items").get_json()["items"]
        out_url = items[0]["outputs"]["256"]["url"]
        assert client.get(out_url).status_code == 200

        resp = client.delete(f"/api/jobs/{gone['id']}")
        assert resp.status_code == 200, resp.get_data(as_text=True)
        assert resp.get_json() == {"deleted": gone["id"], "files_removed": 2 + 2 * 2}
        after = _files(objects)
        assert len(before) - len(after) == 6
        assert all(gone_item["id"] not in str(p) for gone_item in items for p in after)
        # The rows are gone: job, items and outputs answer 404; the other job is untouched.
        assert client.get(f"/api/jobs/{gone['id']}").status_code == 404
        assert client.get(f"/api/jobs/{gone['id']}/items").status_code == 404
        assert client.get(out_url).status_code == 404
        assert [j["id"] for j in client.get("/api/jobs").get_json()["jobs"]] == [keep["id"]]
        assert client.delete(f"/api/jobs/{gone['id']}").status_code == 404
        # Pages that watch the job list hear about it (the bus relays on its own thread).
        events: list[dict[str, Any]] = []
        deadline = time.monotonic() + 5
        while not events and time.monotonic() < deadline:
            events += [e for e in watcher.get_received() if e["name"] == "job_deleted"]
            time.sleep(0.02)
        assert [e["args"][0]["job_id"] for e in events] == [gone["id"]]
        watcher.disconnect()
    finally:
        service.close()


def test_a_running_job_is_deleted_only_after_a_cancel(tmp_path: Path) -> None:
    from corelane.service.app import create_app

    app = create_app(make_config(tmp_path, workers=1))
    try:
        client = app.test_client()
        files = {f"{i}.jpg": samples.photo_jpeg(1600, 1200, seed=i) for i in range(10)}
        job = upload(client, files, sizes="1024,512,256").get_json()
        wait_job(client, job["id"], states=("running",))
        refused = client.delete(f"/api/jobs/{job['id']}")
        assert refused.status_code == 409
        assert "cancel it" in refused.get_json()["error"]["message"]
        assert client.post(f"/api/jobs/{job['id']}/cancel").status_code == 202
        assert client.delete(f"/api/jobs/{job['id']}").status_code == 200
        assert client.get("/api/jobs").get_json()["jobs"] == []
    finally:
        app.extensions["corelane"].close()


def test_retention_sweeps_only_jobs_that_ended_long_enough_ago(tmp_path: Path) -> None:
    from corelane.service.app import create_app

    app = create_app(make_config(tmp_path, run_jobs=False))
    service = app.extensions["corelane"]
    try:
        client = app.test_client()
        old = upload(client, {"a.jpg": samples.photo_jpeg(64, 48)}).get_json()
        recent = upload(client, {"b.jpg": samples.photo_jpeg(64, 48)}).get_json()
        waiting = upload(client, {"c.jpg": samples.photo_jpeg(64, 48)}).get_json()
        for job in (old, recent):
            client.post(f"/api/jobs/{job['id']}/cancel")
        now = time.time()
        assert sweep(service, keep_days=1, now=now) == []  # nothing ended a day ago yet
        # Ten days later: the ended jobs go, the queued one stays, with its source file.
        assert sorted(sweep(service, keep_days=1, now=now + 10 * 86400)) == sorted(
            [old["id"], recent["id"]])
        assert [j["id"] for j in client.get("/api/jobs").get_json()["jobs"]] == [waiting["id"]]
        assert len(_files(service.objects.root)) == 1
    finally:
        service.close()


def test_the_sweeper_thread_runs_at_start_and_stops(tmp_path: Path) -> None:
    from corelane.service.app import create_app

    app = create_app(make_config(tmp_path, run_jobs=False))
    service = app.extensions["corelane"]
    try:
        job: Any = upload(app.test_client(), {"a.jpg": samples.photo_jpeg(64, 48)}).get_json()
        app.test_client().post(f"/api/jobs/{job['id']}/cancel")
        time.sleep(0.05)
        sweeper = RetentionSweeper(service, keep_days=0.01 / 86400)  # 10 ms
        sweeper.start()
        deadline = time.monotonic() + 10
        while service.store.list_jobs():
            assert time.monotonic() < deadline, "the sweeper never deleted the expired job"
            time.sleep(0.02)
        sweeper.stop()
        assert not sweeper._thread.is_alive()
    finally:
        service.close()


def test_keep_days_must_be_positive() -> None:
    from corelane.service.config import ServiceConfig

    with pytest.raises(ValueError, match="keep_days"):
        ServiceConfig(keep_days=0)


def test_the_sweep_leaves_a_job_that_was_retried_after_it_was_listed(tmp_path: Path) -> None:
    from corelane.service.store import Store

    store = Store(f"sqlite:///{tmp_path / 'jobs.db'}")
    try:
        rows = [{"id": "a" * 32, "idx": 0, "name": "a.jpg", "source_key": "src/aa/" + "a" * 32}]
        store.create_job("b" * 32, {"sizes": [64]}, rows)
        store.cancel_job("b" * 32)
        cutoff = time.time() + 1
        assert store.ended_before(cutoff) == ["b" * 32]
        store.retry_job("b" * 32)  # a person retries it just before the sweep reaches it
        assert store.delete_job("b" * 32, ended_before=cutoff) is None
        assert store.get_job("b" * 32)["state"] == "queued"
        with pytest.raises(Exception, match="no job"):
            store.delete_job("c" * 32, ended_before=cutoff)
        assert store.delete_job("b" * 32) is not None  # by hand: a queued job may go
    finally:
        store.close()
