"""Fair scheduling between jobs on the local runner: interleaving, the per-job cap, queue
positions (runners/fair.py, runners/local.py). Order is asserted, not wall time."""

from __future__ import annotations

import time
from pathlib import Path

import imaging_samples as samples
from service_fixtures import (
    SLOW_ITEM_S,
    items_by_name,
    make_config,
    slow_process,
    upload,
    wait_job,
)


def test_a_one_image_job_overtakes_a_running_big_job(tmp_path: Path) -> None:
    from corelane.service.app import create_app

    app = create_app(make_config(tmp_path, workers=2), process_fn=slow_process)
    try:
        client = app.test_client()
        photo = samples.photo_jpeg(160, 120, seed=1)
        big = upload(client, {f"b{i:02d}.jpg": photo for i in range(24)}, sizes="64",
                     features="false").get_json()["id"]
        deadline = time.monotonic() + 30
        while client.get(f"/api/jobs/{big}").get_json()["done"] < 2:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        small = upload(client, {"s.jpg": photo}, sizes="64", features="false").get_json()["id"]
        assert wait_job(client, small)["state"] == "done"
        assert wait_job(client, big)["state"] == "done"
        finished = items_by_name(client, small)["s.jpg"]["finished_at"]
        after = [i for i in items_by_name(client, big).values() if i["finished_at"] > finished]
        # Oldest-first would finish all 24 first; fair turns leave most of the big job after it
        # (at most 3 of its images were out when the small job came: 2 running, 1 waiting).
        assert len(after) >= 24 - 2 - 6, f"only {len(after)} of the big job's images came after"
    finally:
        app.extensions["corelane"].close()


def test_job_concurrency_caps_one_jobs_images_running_at_once(tmp_path: Path) -> None:
    from corelane.service.app import create_app

    app = create_app(make_config(tmp_path, workers=2, job_concurrency=1),
                     process_fn=slow_process)
    try:
        client = app.test_client()
        photo = samples.photo_jpeg(160, 120, seed=2)
        job = upload(client, {f"p{i}.jpg": photo for i in range(5)}, sizes="64",
                     features="false").get_json()["id"]
        assert wait_job(client, job)["state"] == "done"
        ends = sorted(i["finished_at"] for i in items_by_name(client, job).values())
        gaps = [b - a for a, b in zip(ends, ends[1:], strict=False)]
        # One at a time: each image starts after the previous ended (2 workers would pair them).
        assert min(gaps) > SLOW_ITEM_S * 0.8, gaps
    finally:
        app.extensions["corelane"].close()


def test_queued_jobs_show_their_queue_position(tmp_path: Path) -> None:
    from corelane.service.app import create_app

    app = create_app(make_config(tmp_path, workers=1, max_running_jobs=1),
                     process_fn=slow_process)
    try:
        client = app.test_client()
        photo = samples.photo_jpeg(160, 120, seed=3)
        ids = [upload(client, {f"p{i}.jpg": photo for i in range(n)}, sizes="64",
                      features="false").get_json()["id"] for n in (6, 1, 1)]
        wait_job(client, ids[0], states=("running",))
        jobs = {j["id"]: j for j in client.get("/api/jobs").get_json()["jobs"]}
        assert [jobs[i]["queue_position"] for i in ids] == [None, 1, 2]
        assert client.get(f"/api/jobs/{ids[2]}").get_json()["queue_position"] == 2
        wait_job(client, ids[1], states=("running", "done"))
        assert client.get(f"/api/jobs/{ids[2]}").get_json()["queue_position"] in (1, None)
        for job_id in ids:
            assert wait_job(client, job_id)["queue_position"] is None
    finally:
        app.extensions["corelane"].close()


def test_a_job_retried_right_after_its_cancel_runs_to_the_end(tmp_path: Path) -> None:
    """The cancelled run's images are still on the workers when the retry claims the job again:
    the new run must not inherit the cancel."""
    from corelane.service.app import create_app

    app = create_app(make_config(tmp_path, workers=2), process_fn=slow_process)
    try:
        client = app.test_client()
        photo = samples.photo_jpeg(160, 120, seed=4)
        job = upload(client, {f"p{i}.jpg": photo for i in range(8)}, sizes="64",
                     features="false").get_json()["id"]
        deadline = time.monotonic() + 30
        while client.get(f"/api/jobs/{job}").get_json()["done"] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert client.post(f"/api/jobs/{job}/cancel").status_code == 202
        assert client.post(f"/api/jobs/{job}/retry").status_code == 202
        done = wait_job(client, job)
        assert (done["state"], done["done"]) == ("done", 8)
    finally:
        app.extensions["corelane"].close()
