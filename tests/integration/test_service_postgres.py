"""The same store code on a real PostgreSQL: a throw-away cluster started by the test
(tests/servers.py; skipped locally when PostgreSQL is not installed, failed under CI=true)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import imaging_samples as samples
import pytest
from servers import postgres_server
from service_fixtures import items_by_name, make_config, upload, wait_job

from corelane.service.objects import new_id
from corelane.service.store import Store


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with postgres_server() as server:
        yield server.create_database(f"corelane_{uuid.uuid4().hex[:8]}")


def test_store_transitions_and_concurrent_writers_on_postgres(pg_url: str) -> None:
    store = Store(pg_url)
    try:
        job_id = new_id()
        rows = [{"id": new_id(), "idx": i, "name": f"{i}.jpg", "source_key": f"src/00/{new_id()}"}
                for i in range(40)]
        store.create_job(job_id, {"sizes": [64], "format": "png", "quality": 90,
                                  "features": False}, rows)
        assert store.claim_next_job()["id"] == job_id  # type: ignore[index]
        assert store.recover() == [job_id]
        assert store.claim_next_job()["id"] == job_id  # type: ignore[index]
        errors: list[BaseException] = []

        def settle(part: list[dict]) -> None:
            try:
                for row in part:
                    store.item_done(row["id"], {"width": 1, "height": 1, "outputs": {"64": {}}})
                    store.item_done(row["id"], {"width": 2})  # duplicates change nothing
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=settle, args=(rows[k::4],)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not errors
        job = store.get_job(job_id)
        assert (job["done"], job["queued"]) == (40, 0)
        assert store.list_items(job_id)[0]["outputs"] == {"64": {}}
    finally:
        store.close()


def test_a_whole_job_runs_on_postgres(pg_url: str, tmp_path: Path) -> None:
    from corelane.service.app import create_app

    app = create_app(make_config(tmp_path, db_url=pg_url))
    try:
        client = app.test_client()
        resp = upload(client, {"a.jpg": samples.photo_jpeg(320, 240), "t.jpg": samples.text_file(),
                               "b.png": samples.png_rgba()}, sizes="128,32")
        job = wait_job(client, resp.get_json()["id"])
        assert (job["state"], job["done"], job["failed"]) == ("failed", 2, 1)
        items = items_by_name(client, job["id"])
        assert items["a.jpg"]["features"]["phash"]
        assert client.get(items["b.png"]["outputs"]["32"]["url"]).status_code == 200
    finally:
        app.extensions["corelane"].close()
