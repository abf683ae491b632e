"""Object storage in S3: a job across two worker hosts that share no directory.

Everything real and started by the test: moto's S3 server (``moto_server``) and a redis-server on
free loopback ports, a throw-away PostgreSQL cluster (the job store every process reaches over
TCP), `corelane serve --broker --objects s3://...` and two `corelane worker --objects s3://...`,
each with a data dir of its own.
"""

from __future__ import annotations

import io
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

import pytest
from scale_fixtures import (  # noqa: F401 - the fixtures broker and cleanup
    WorkerProcess,
    broker_fixture,
    cleanup_fixture,
    photos,
    serve,
    wait_job,
    worker_counts,
)
from servers import RedisServer, moto_server, postgres_server

BUCKET = "corelane-test"
PREFIX = "tenant-a/images"

# PostgreSQL, moto, a web node and two workers start inside the test: on a loaded machine
# that needs more than the default 60 s.
pytestmark = pytest.mark.timeout(180)


def test_job_across_two_workers_without_shared_dir_lands_in_s3(
        tmp_path: Path, broker: RedisServer, cleanup: list[Any]) -> None:
    with moto_server() as s3, postgres_server() as pg:
        s3.client().create_bucket(Bucket=BUCKET)
        db = pg.create_database("corelane_s3")
        url = f"s3://{BUCKET}/{PREFIX}"
        env = {**s3.env(), "CORELANE_OBJECTS_URL": url, "CORELANE_DB_URL": db}
        server = serve(tmp_path / "web", broker, cleanup, **env)
        for name in ("left", "right"):
            cleanup.append(WorkerProcess(broker.url, tmp_path / f"host-{name}" / "data", name,
                                         db_url=db, item_delay=0.3,
                                         env={**s3.env(), "CORELANE_OBJECTS_URL": url}))
        job = server.post_files(photos(6))
        done = wait_job(server, job["id"], timeout=90)
        assert done["state"] == "done" and done["done"] == 6
        per_worker = {n: int(f.get("done", 0)) for n, f in worker_counts(broker.url).items()}
        assert per_worker.keys() == {"left", "right"} and all(per_worker.values()), per_worker

        # Every output is in the bucket under the prefix, exactly those the items name.
        items = server.get(f"/api/jobs/{job['id']}/items")["items"]
        listing = s3.client().list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/out/")
        stored = {o["Key"] for o in listing.get("Contents", [])}
        assert len(stored) == sum(len(i["outputs"]) for i in items) > 0
        # Downloads through the API (the web node reads them back from S3) match the objects.
        item = items[0]
        size, info = next(iter(item["outputs"].items()))
        body = server.get(info["url"])
        (key,) = [k for k in stored if f"/{item['id']}/{size}." in k]
        assert body == s3.client().get_object(Bucket=BUCKET, Key=key)["Body"].read()
        # The ZIP holds every output of every item (plus its manifest).
        archive = zipfile.ZipFile(io.BytesIO(server.get(f"/api/jobs/{job['id']}/zip")))
        images = [n for n in archive.namelist() if n.endswith(".webp")]
        assert len(images) == len(stored)
        assert body in {archive.read(n) for n in images}
        # Nothing was written to a shared directory: each worker host's data dir has no outputs
        # outside its own cache.
        for name in ("left", "right"):
            assert not (tmp_path / f"host-{name}" / "data" / "objects" / "out").exists()
        # Deleting the job removes its objects from the bucket, not only the web node's cache.
        request = urllib.request.Request(f"{server.url}/api/jobs/{job['id']}", method="DELETE")
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert answer.status == 200
        left = s3.client().list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/")
        assert not [o["Key"] for o in left.get("Contents", [])
                    if any(i["id"] in o["Key"] for i in items)]
        for thing in reversed(cleanup):
            thing.stop()
        cleanup.clear()

