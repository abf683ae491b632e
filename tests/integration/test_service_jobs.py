"""Jobs end to end inside one app: real engine workers, the Flask and Socket.IO test clients.

Covers: good and bad images in one job (bad ones fail with their reason, the rest are processed),
outputs and ZIP, live events and the late-joiner snapshot, a poison image (kills its worker every
time) retried a bounded number of times, cancel, retry, and jobs running in order.
"""

from __future__ import annotations

import io
import json
import os
import time
import zipfile
from pathlib import Path
from typing import Any

import imaging_samples as samples
import psutil
import service_fixtures
from PIL import Image
from service_fixtures import (
    items_by_name,
    make_config,
    poison_image,
    poison_or_process,
    upload,
    wait_job,
)

service_app = service_fixtures.service_app


def _names(received: list[dict[str, Any]]) -> list[str]:
    return [r["name"] for r in received]


def test_mixed_job_processes_good_images_and_explains_bad_ones(service_app: Any) -> None:
    client = service_app.test_client()
    socketio = service_app.extensions["socketio"]
    watcher = socketio.test_client(service_app)
    watcher.emit("subscribe_jobs")
    files = {
        "photo.jpg": samples.photo_jpeg(640, 480, make="Canon", model="EOS 5D",
                                        taken=__import__("datetime").datetime(2024, 5, 1, 12)),
        "alpha.png": samples.png_rgba(),
        "cmyk.jpg": samples.jpeg_cmyk(),
        "anim.gif": samples.gif_animated(),
        "truncated.jpg": samples.truncated_jpeg(),
        "renamed.jpg": samples.text_file(),
        "empty.jpg": samples.zero_bytes(),
        "bomb.png": samples.png_bomb(),
        "../../etc/passwd": samples.photo_jpeg(300, 200, seed=5),
    }
    resp = upload(client, files, sizes="256,64", format="jpeg", quality="80")
    assert resp.status_code == 202
    job_id = resp.get_json()["id"]
    watcher.emit("join", {"job_id": job_id})
    job = wait_job(client, job_id)
    assert job["state"] == "failed"  # some items failed; the others are done
    assert (job["done"], job["failed"]) == (5, 4)
    items = items_by_name(client, job_id)
    assert "truncated" in items["truncated.jpg"]["error"]
    assert "text" in items["renamed.jpg"]["error"]
    assert "empty" in items["empty.jpg"]["error"]
    assert "pixel cap" in items["bomb.png"]["error"]
    photo = items["photo.jpg"]
    assert photo["state"] == "done" and (photo["width"], photo["height"]) == (640, 480)
    feats = photo["features"]
    for key in ("mean_color", "dominant_colors", "histogram", "phash", "sharpness"):
        assert key in feats
    assert feats["exif"]["make"] == "Canon"
    out = client.get(photo["outputs"]["256"]["url"])
    assert out.status_code == 200 and out.mimetype == "image/jpeg"
    assert max(Image.open(io.BytesIO(out.data)).size) == 256
    # The ZIP holds every output of the done items, under safe names, plus a manifest.
    z = zipfile.ZipFile(io.BytesIO(client.get(f"/api/jobs/{job_id}/zip").data))
    names = z.namelist()
    assert len([n for n in names if n.endswith(".jpg")]) == 5 * 2
    assert all(".." not in n and not n.startswith("/") for n in names)
    manifest = json.loads(z.read("manifest.json"))
    assert {m["name"] for m in manifest} == {"photo.jpg", "alpha.png", "cmyk.jpg", "anim.gif",
                                             "../../etc/passwd"}
    # Live events reached the Socket.IO client: snapshot, per-item events, progress, the end.
    deadline = time.monotonic() + 5
    got: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        got += watcher.get_received()
        if "job_failed" in _names(got):
            break
        time.sleep(0.05)
    names = _names(got)
    assert "jobs_state" in names and "job_state" in names and "job_created" in names
    assert names.count("item_done") == 5
    assert names.count("item_failed") == 1  # truncated.jpg; the others failed at upload
    assert "job_progress" in names and "job_failed" in names
    last = [r for r in got if r["name"] == "job_progress"][-1]["args"][0]
    assert (last["done"], last["failed"], last["total"]) == (5, 4, 9)
    watcher.disconnect()
    # A client that joins late gets the whole state at once.
    late = socketio.test_client(service_app)
    ack = late.emit("join", {"job_id": job_id}, callback=True)
    assert ack == {"ok": True}
    snap = [r for r in late.get_received() if r["name"] == "job_state"][0]["args"][0]
    assert snap["job"]["done"] == 5 and len(snap["items"]) == 9
    assert "source_key" not in snap["items"][0]
    assert late.emit("join", {"job_id": "../x"}, callback=True)["ok"] is False
    late.disconnect()
    # The workers run below the web process's CPU priority.
    pids = service_app.extensions["corelane"].runner.worker_pids()
    assert pids
    for pid in pids:
        assert psutil.Process(pid).nice() >= os.nice(0) + 10


def test_poison_image_is_retried_a_bounded_number_of_times(tmp_path: Path) -> None:
    from corelane.service.app import create_app

    app = create_app(make_config(tmp_path, max_attempts=2), process_fn=poison_or_process)
    try:
        client = app.test_client()
        files = {"ok1.jpg": samples.photo_jpeg(200, 150, seed=1), "poison.jpg": poison_image(),
                 "ok2.jpg": samples.photo_jpeg(150, 200, seed=2)}
        job_id = upload(client, files, sizes="64").get_json()["id"]
        job = wait_job(client, job_id, timeout=40)
        items = items_by_name(client, job_id)
        assert items["ok1.jpg"]["state"] == items["ok2.jpg"]["state"] == "done"
        poison = items["poison.jpg"]
        assert poison["state"] == "failed" and poison["attempts"] == 2
        assert "SIGKILL" in poison["error"] and "2 attempt" in poison["error"]
        assert job["state"] == "failed"
        # The queue is not blocked: the next job runs.
        nxt = upload(client, {"after.jpg": samples.photo_jpeg(100, 80)}, sizes="64").get_json()
        assert wait_job(client, nxt["id"])["state"] == "done"
    finally:
        app.extensions["corelane"].close()


def test_cancel_then_retry_and_jobs_run_in_order(tmp_path: Path) -> None:
    from corelane.service.app import create_app

    # One running job at a time, so the second waits queued (fair turns: test_service_fairness).
    app = create_app(make_config(tmp_path, workers=1, max_running_jobs=1))
    try:
        client = app.test_client()
        big = {f"p{i}.jpg": samples.photo_jpeg(1600, 1200, seed=i) for i in range(12)}
        first = upload(client, big, sizes="1024,512").get_json()["id"]
        second = upload(client, {"s.jpg": samples.photo_jpeg(120, 90)}, sizes="64").get_json()["id"]
        wait_job(client, first, states=("running",))
        waiting = client.get(f"/api/jobs/{second}").get_json()
        assert (waiting["state"], waiting["queue_position"]) == ("queued", 1)  # in order
        deadline = time.monotonic() + 20
        while client.get(f"/api/jobs/{first}").get_json()["done"] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        resp = client.post(f"/api/jobs/{first}/cancel")
        assert resp.status_code == 202 and resp.get_json()["state"] == "cancelled"
        assert client.post(f"/api/jobs/{first}/cancel").status_code == 409
        assert wait_job(client, second)["state"] == "done"
        job = client.get(f"/api/jobs/{first}").get_json()
        assert job["cancelled"] >= 1 and job["done"] + job["cancelled"] == 12
        done_before = {n: i["finished_at"] for n, i in items_by_name(client, first).items()
                       if i["state"] == "done"}
        resp = client.post(f"/api/jobs/{first}/retry")
        assert resp.status_code == 202 and resp.get_json()["state"] == "queued"
        job = wait_job(client, first, timeout=60)
        assert (job["state"], job["done"]) == ("done", 12)
        after = items_by_name(client, first)
        for name, finished in done_before.items():  # finished items were not redone
            assert after[name]["finished_at"] == finished
    finally:
        app.extensions["corelane"].close()
