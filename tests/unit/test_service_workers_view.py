"""The workers view: GET /api/workers and the /workers page, embedded mode (the Celery mode is
covered by tests/integration/test_scale_celery.py against real `corelane worker` processes)."""

from __future__ import annotations

from typing import Any

from service_fixtures import service_app  # noqa: F401 - the fixture


def test_local_mode_lists_the_engine_pool(service_app: Any) -> None:  # noqa: F811
    client = service_app.test_client()
    body = client.get("/api/workers").get_json()
    assert body["mode"] == "local"
    [worker] = body["workers"]
    assert worker["kind"] == "local" and worker["concurrency"] == 2 and worker["busy"] == 0
    page = client.get("/workers")
    assert page.status_code == 200 and b"workers.js" in page.data


def test_workers_api_requires_the_token_when_one_is_set(tmp_path: Any) -> None:
    from service_fixtures import make_config

    from corelane.service.app import create_app

    app = create_app(make_config(tmp_path, run_jobs=False, api_token="s3cret"))
    try:
        client = app.test_client()
        assert client.get("/api/workers").status_code == 401
        ok = client.get("/api/workers", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
    finally:
        app.extensions["corelane"].close()
