"""The job store, config and object store: state transitions, SQLite locking, safe keys."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from corelane.errors import JobNotFound, ServiceError
from corelane.service.config import ServiceConfig
from corelane.service.jobs import ItemState, JobState, can_move
from corelane.service.objects import ObjectStore, new_id
from corelane.service.store import Store

OPTIONS = {"sizes": [128], "format": "webp", "quality": 80, "features": True}


def _store(tmp_path: Path) -> Store:
    return Store(f"sqlite:///{tmp_path / 'jobs.db'}")


def _job(store: Store, n: int = 3, failed: int = 0) -> str:
    job_id = new_id()
    rows = [{"id": new_id(), "idx": i, "name": f"img{i}.jpg", "source_key": f"src/00/{new_id()}"}
            for i in range(n)]
    rows += [{"id": new_id(), "idx": n + i, "name": f"bad{i}", "state": "failed",
              "error": "empty file (0 bytes)"} for i in range(failed)]
    store.create_job(job_id, OPTIONS, rows)
    return job_id


def test_config_reads_env_and_flags_override(tmp_path: Path) -> None:
    env = {"CORELANE_PORT": "9001", "CORELANE_WORKERS": "3", "CORELANE_API_TOKEN": "s3cret",
           "CORELANE_ALLOWED_ORIGINS": "https://a.example, https://b.example",
           "CORELANE_DATA_DIR": str(tmp_path)}
    cfg = ServiceConfig.from_env(env, port=9002, host=None)
    assert cfg.port == 9002 and cfg.workers == 3 and cfg.host == "127.0.0.1"
    assert cfg.allowed_origins == ("https://a.example", "https://b.example")
    assert cfg.database_url == f"sqlite:///{(tmp_path / 'corelane.db').resolve()}"
    with pytest.raises(ValueError, match="CORELANE_PORT"):
        ServiceConfig.from_env({"CORELANE_PORT": "eighty"})


def test_binding_beyond_loopback_needs_a_token() -> None:
    ServiceConfig(host="127.0.0.1").check_exposure()
    ServiceConfig(host="::1").check_exposure()
    with pytest.raises(ValueError, match="CORELANE_API_TOKEN"):
        ServiceConfig(host="0.0.0.0").check_exposure()
    ServiceConfig(host="0.0.0.0", api_token="t").check_exposure()
    with pytest.raises(ValueError, match="fork"):
        ServiceConfig(start_method="fork")


def test_job_lifecycle_settles_each_item_once(tmp_path: Path) -> None:
    store = _store(tmp_path)
    job_id = _job(store, n=3, failed=1)
    job = store.get_job(job_id)
    assert (job["state"], job["total"], job["queued"], job["failed"]) == ("queued", 4, 3, 1)
    claimed = store.claim_next_job()
    assert claimed is not None and claimed["id"] == job_id and claimed["state"] == "running"
    assert store.claim_next_job() is None
    queued = store.list_items(job_id, ItemState.QUEUED)
    assert store.item_done(queued[0]["id"], {"width": 10, "height": 5, "outputs": {}})
    assert not store.item_done(queued[0]["id"], {"width": 10})  # a duplicate changes nothing
    assert store.item_failed(queued[1]["id"], "boom")
    assert not store.item_failed(queued[0]["id"], "late failure of a done item")
    assert store.item_done(queued[2]["id"], {"width": 1, "height": 1})
    assert store.finish_job(job_id, JobState.FAILED)
    job = store.get_job(job_id)
    assert (job["state"], job["done"], job["failed"], job["queued"]) == ("failed", 2, 2, 0)
    # Retry requeues only the failed item that has a stored source.
    job = store.retry_job(job_id)
    assert (job["state"], job["queued"], job["failed"], job["done"]) == ("queued", 1, 1, 2)
    with pytest.raises(ServiceError) as err:
        store.retry_job(job_id)
    assert err.value.status == 409


def test_recover_requeues_running_jobs_and_cancel(tmp_path: Path) -> None:
    store = _store(tmp_path)
    first, second = _job(store), _job(store)
    assert store.claim_next_job()["id"] == first  # type: ignore[index]  # oldest first
    assert store.recover() == [first]
    assert store.get_job(first)["state"] == "queued"
    job = store.cancel_job(second)
    assert (job["state"], job["cancelled"], job["queued"]) == ("cancelled", 3, 0)
    with pytest.raises(ServiceError):
        store.cancel_job(second)
    with pytest.raises(JobNotFound):
        store.get_job("0" * 32)
    assert can_move(JobState.RUNNING, JobState.QUEUED)
    assert not can_move(JobState.DONE, JobState.RUNNING)


def test_sqlite_is_wal_and_concurrent_writers_wait_instead_of_failing(tmp_path: Path) -> None:
    """BEGIN IMMEDIATE + busy timeout: many threads settling items never see 'database is locked'."""
    store = _store(tmp_path)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    job_id = _job(store, n=80)
    store.claim_next_job()
    ids = [i["id"] for i in store.list_items(job_id)]
    errors: list[BaseException] = []

    def settle(part: list[str]) -> None:
        try:
            for item_id in part:
                store.get_job(job_id)  # read, then write: the deferred-transaction trap
                store.item_done(item_id, {"width": 1, "height": 1})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=settle, args=(ids[k::8],)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert store.get_job(job_id)["done"] == 80


def test_object_keys_cannot_escape_the_root(tmp_path: Path) -> None:
    objects = ObjectStore(tmp_path / "objects")
    key = objects.put_source(b"hello")
    assert objects.read(key) == b"hello"
    assert objects.path(key).is_relative_to(objects.root)
    for bad in ("../../etc/passwd", "src/../../x", "/etc/passwd", "src/ab/" + "z" * 32, ""):
        with pytest.raises(ValueError):
            objects.path(bad)
    out = ObjectStore.output_key(new_id(), 512, "webp")
    assert objects.path(out).name == "512.webp"
