"""Crash recovery: SIGKILL a real ``corelane serve`` mid-job, start it again, the job completes.

Finished items are not redone (their finish time is unchanged), nothing is duplicated (one row
per upload, one file per output size), and no half-written file is left behind.
"""

from __future__ import annotations

import time
from pathlib import Path

import imaging_samples as samples
import pytest
from service_fixtures import ServerProcess

N_ITEMS = 20
SIZES = "1024,512,128"


@pytest.mark.timeout(120)
def test_sigkill_mid_job_then_restart_completes_without_redoing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    photo = samples.photo_jpeg(2400, 1800, seed=1)  # ~0.1 s of work per item
    server = ServerProcess(data_dir, workers=1).start()
    try:
        job = server.post_files({f"p{i:02d}.jpg": photo for i in range(N_ITEMS)}, sizes=SIZES)
        job_id = job["id"]
        deadline = time.monotonic() + 60
        while True:
            state = server.get(f"/api/jobs/{job_id}")
            if state["done"] >= 3:
                break
            assert time.monotonic() < deadline, state
            time.sleep(0.01)
        server.kill()
    finally:
        server.kill()
    assert state["done"] < N_ITEMS, "the job finished before the kill; the test proves nothing"

    # Read what the killed server had settled, straight from its database.
    from corelane.service.store import Store

    store = Store(f"sqlite:///{(data_dir / 'corelane.db').resolve()}")
    before = {i["id"]: i for i in store.list_items(job_id)}
    assert store.get_job(job_id)["state"] == "running"
    store.close()
    done_before = {k: v["finished_at"] for k, v in before.items() if v["state"] == "done"}
    assert 3 <= len(done_before) < N_ITEMS

    server2 = ServerProcess(data_dir, workers=2).start()
    try:
        deadline = time.monotonic() + 60
        while (job := server2.get(f"/api/jobs/{job_id}"))["state"] != "done":
            assert job["state"] in ("queued", "running"), job
            assert time.monotonic() < deadline, job
            time.sleep(0.05)
        items = server2.get(f"/api/jobs/{job_id}/items")["items"]
    finally:
        server2.stop()

    assert (job["done"], job["failed"], job["total"]) == (N_ITEMS, 0, N_ITEMS)
    assert len(items) == N_ITEMS and len({i["idx"] for i in items}) == N_ITEMS
    for item in items:
        assert item["state"] == "done"
        if item["id"] in done_before:  # settled before the kill: not redone
            assert item["finished_at"] == done_before[item["id"]]
        assert sorted(item["outputs"], key=int) == ["128", "512", "1024"]
    files = [p for p in (data_dir / "objects" / "out").rglob("*") if p.is_file()]
    assert len(files) == N_ITEMS * 3
    assert not [p for p in files if p.name.startswith(".tmp-")]
