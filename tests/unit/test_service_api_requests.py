"""Request-level checks of the REST API (no runner): 4xx JSON errors, per-item upload errors,
security headers, token and same-origin rules, and the OpenAPI document."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import imaging_samples as samples
import pytest
import service_fixtures
from openapi_spec_validator import validate
from service_fixtures import make_config, upload

api_app = service_fixtures.api_app


_error = service_fixtures.api_error


def test_every_bad_file_gets_its_own_error_and_good_ones_are_queued(api_app: Any) -> None:
    client = api_app.test_client()
    files = {
        "good.jpg": samples.photo_jpeg(320, 240),
        "zero.jpg": samples.zero_bytes(),
        "notes.jpg": samples.text_file(),
        "bomb.png": samples.png_bomb(),
        "huge.png": samples.png_bomb(30000, 30000, rows=1),
        "../../etc/passwd": samples.photo_jpeg(200, 100, seed=2),
        "icon.ico": samples.ico(),
    }
    resp = upload(client, files)
    assert resp.status_code == 202
    job = resp.get_json()
    assert job["total"] == 7 and job["state"] == "queued"
    items = {i["name"]: i for i in client.get(f"/api/jobs/{job['id']}/items").get_json()["items"]}
    assert items["good.jpg"]["state"] == "queued"
    assert items["../../etc/passwd"]["state"] == "queued"  # the name is metadata only
    assert "empty" in items["zero.jpg"]["error"]
    assert "text" in items["notes.jpg"]["error"]
    assert "pixel cap" in items["bomb.png"]["error"]
    assert "pixel cap" in items["huge.png"]["error"]
    assert "ICO" in items["icon.ico"]["error"] or "allowed" in items["icon.ico"]["error"]
    # Nothing was written outside the objects folder under the client's name.
    service = api_app.extensions["corelane"]
    stored = [p for p in service.objects.root.rglob("*") if p.is_file()]
    assert len(stored) == 2 and all(p.name != "passwd" for p in stored)
    assert not (service.config.data_dir / "etc").exists()


@pytest.mark.parametrize("options, needle", [
    ({"sizes": "big"}, "size"),
    ({"sizes": "0"}, "out of range"),
    ({"format": "gif"}, "format"),
    ({"quality": "150"}, "quality"),
    ({"quality": "high"}, "quality"),
    ({"features": "maybe"}, "features"),
])
def test_malformed_options_are_400(api_app: Any, options: dict[str, str], needle: str) -> None:
    resp = upload(api_app.test_client(), {"a.jpg": samples.photo_jpeg(64, 48)}, **options)
    assert needle in _error(resp, 400)


def test_request_level_errors_are_json(api_app: Any) -> None:
    client = api_app.test_client()
    assert "multipart" in _error(client.post("/api/jobs", json={"files": []}), 415)
    assert "multipart" in _error(client.post("/api/jobs", data=b"x",
                                             content_type="image/jpeg"), 415)
    assert "no images" in _error(client.post("/api/jobs", data={"sizes": "128"},
                                             content_type="multipart/form-data"), 400)
    assert "no job" in _error(client.get("/api/jobs/" + "0" * 32), 404)
    _error(client.get("/api/nowhere"), 404)
    _error(client.delete("/api/jobs"), 405)
    _error(client.get("/api/jobs?limit=zillion"), 400)
    # Still serving after all that.
    assert client.get("/api/health").get_json()["status"] == "ok"


def test_upload_over_the_request_cap_is_413(tmp_path: Path) -> None:
    from corelane.service.app import create_app

    app = create_app(make_config(tmp_path, run_jobs=False, max_request_bytes=64 * 1024,
                                 max_file_bytes=16 * 1024))
    try:
        client = app.test_client()
        big = samples.photo_jpeg(1200, 900)
        assert len(big) > 64 * 1024
        assert "limit" in _error(upload(client, {"big.jpg": big}), 413)
        # Under the request cap but over the per-image cap: a per-item error, others run.
        mid = samples.photo_jpeg(300, 200)
        assert 16 * 1024 < len(mid) < 64 * 1024
        resp = upload(client, {"mid.jpg": mid, "small.jpg": samples.photo_jpeg(40, 30)})
        job = resp.get_json()
        items = client.get(f"/api/jobs/{job['id']}/items").get_json()["items"]
        assert [i["state"] for i in items] == ["failed", "queued"]
        assert "limit" in items[0]["error"]
    finally:
        app.extensions["corelane"].close()


def test_token_and_same_origin_rules(tmp_path: Path) -> None:
    from corelane.service.app import create_app

    app = create_app(make_config(tmp_path, run_jobs=False, api_token="s3cret",
                                 allowed_origins=("https://trusted.example",)))
    try:
        client = app.test_client()
        assert client.get("/api/openapi.json").status_code == 200  # the document is public
        _error(client.get("/api/jobs"), 401)
        _error(client.get("/api/jobs", headers={"Authorization": "Bearer wrong"}), 401)
        ok = {"Authorization": "Bearer s3cret"}
        assert client.get("/api/jobs", headers=ok).status_code == 200
        data = {"files": [(io.BytesIO(samples.photo_jpeg(40, 30)), "a.jpg")]}
        evil = client.post("/api/jobs", data=data, content_type="multipart/form-data",
                           headers={**ok, "Origin": "https://evil.example"})
        assert "cross-origin" in _error(evil, 403)
        data = {"files": [(io.BytesIO(samples.photo_jpeg(40, 30)), "a.jpg")]}
        fine = client.post("/api/jobs", data=data, content_type="multipart/form-data",
                           headers={**ok, "Origin": "https://trusted.example"})
        assert fine.status_code == 202
        # The page trades ?token= for an HttpOnly cookie that the API then accepts.
        resp = client.get("/?token=s3cret")
        assert resp.status_code == 302 and "HttpOnly" in resp.headers["Set-Cookie"]
        assert client.get("/api/jobs").status_code == 200
        # Socket.IO refuses a connection without the token.
        socketio = app.extensions["socketio"]
        anonymous = socketio.test_client(app, flask_test_client=app.test_client())
        assert not anonymous.is_connected()
        with_token = socketio.test_client(app, auth={"token": "s3cret"})
        assert with_token.is_connected()
        with_token.disconnect()
    finally:
        app.extensions["corelane"].close()


def test_page_is_served_with_security_headers(api_app: Any) -> None:
    resp = api_app.test_client().get("/")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert "vendor/socket.io.min.js" in html and "cdn" not in html.lower()
    assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert api_app.test_client().get("/static/app.js").status_code == 200


def test_openapi_document_is_valid(api_app: Any) -> None:
    doc = api_app.test_client().get("/api/openapi.json").get_json()
    validate(doc)
    assert {"/api/jobs", "/api/jobs/{job_id}/zip", "/api/jobs/{job_id}/retry"} <= set(doc["paths"])
