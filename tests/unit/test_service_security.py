"""Issue 12, points 1-3, through the WSGI app: the Host allow-list (DNS rebinding) in front of
pages, the API and Socket.IO handshakes; extra origins add to the page's own; ``?token=`` is
checked before it becomes a cookie; the health check keeps job ids to token holders; the OpenAPI
document states its security. The same cases against a real ``corelane serve`` over HTTP are in
tests/integration/test_service_hosts.py."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import imaging_samples as samples
import pytest
from openapi_spec_validator import validate
from service_fixtures import make_config

from corelane.service.config import ServiceConfig, split_host
from corelane.service.guard import host_ok

HANDSHAKE = "/socket.io/?EIO=4&transport=polling"
PORT = 8000  # make_config keeps the default port


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Any]:
    from corelane.service.app import create_app

    app = create_app(make_config(tmp_path, run_jobs=False,
                                 allowed_origins=("https://tools.example",),
                                 allowed_hosts=("photos.example",)))
    try:
        yield app
    finally:
        app.extensions["corelane"].close()


def _post_job(client: Any, **headers: str) -> Any:
    data = {"files": [(io.BytesIO(samples.photo_jpeg(40, 30)), "a.jpg")]}
    return client.post("/api/jobs", data=data, content_type="multipart/form-data",
                       headers=headers)


@pytest.mark.parametrize("host", ["evil.example:8000", "evil.example", "127.0.0.1.evil.example",
                                  "localhost:9999", "[::1]:1", "bad host", ""])
def test_a_foreign_host_is_refused_before_any_handler(app: Any, host: str) -> None:
    client = app.test_client()
    before = len(app.extensions["corelane"].store.list_jobs())
    origin = f"http://{host}"
    for resp in (client.get("/", headers={"Host": host}),
                 client.get("/api/jobs", headers={"Host": host}),
                 client.get("/api/health", headers={"Host": host}),
                 _post_job(client, Host=host, Origin=origin),
                 client.get(HANDSHAKE, headers={"Host": host, "Origin": origin})):
        assert resp.status_code == 421, (host, resp.status_code, resp.get_data(as_text=True))
        assert "--allowed-host" in resp.get_json()["error"]["message"]
    assert len(app.extensions["corelane"].store.list_jobs()) == before  # nothing was stored


@pytest.mark.parametrize("host", ["127.0.0.1:8000", "localhost:8000", "[::1]:8000", "localhost",
                                  "LOCALHOST:8000", "192.168.1.20:8000", "photos.example",
                                  "photos.example:443"])
def test_our_own_names_and_listed_names_are_served(app: Any, host: str) -> None:
    client = app.test_client()
    assert client.get("/", headers={"Host": host}).status_code == 200
    resp = _post_job(client, Host=host, Origin=f"http://{host}")
    assert resp.status_code == 202, resp.get_data(as_text=True)
    handshake = client.get(HANDSHAKE, headers={"Host": host, "Origin": f"http://{host}"})
    assert handshake.status_code == 200 and handshake.get_data(as_text=True).startswith("0{")


def test_extra_origins_add_to_the_page_own_origin(app: Any) -> None:
    client = app.test_client()
    own = {"Host": "127.0.0.1:8000", "Origin": "http://127.0.0.1:8000"}
    listed = {"Host": "127.0.0.1:8000", "Origin": "https://tools.example"}
    foreign = {"Host": "127.0.0.1:8000", "Origin": "http://evil.example:8000"}
    # Socket.IO: the page's own origin still connects with an extra origin configured.
    assert client.get(HANDSHAKE, headers=own).status_code == 200
    assert client.get(HANDSHAKE, headers=listed).status_code == 200
    refused = client.get(HANDSHAKE, headers=foreign)
    assert refused.status_code == 400 and "origin" in refused.get_data(as_text=True).lower()
    # REST writes: the same rule.
    assert _post_job(client, **own).status_code == 202
    assert _post_job(client, **listed).status_code == 202
    resp = _post_job(client, **foreign)
    assert resp.status_code == 403 and "cross-origin" in resp.get_json()["error"]["message"]
    # No Origin at all (curl, scripts) is not a browser attack.
    assert _post_job(client, Host="127.0.0.1:8000").status_code == 202


def test_token_link_is_checked_before_it_becomes_a_cookie(tmp_path: Path) -> None:
    from corelane.service.app import create_app

    app = create_app(make_config(tmp_path, run_jobs=False, api_token="s3cret"))
    try:
        client = app.test_client()
        wrong = client.get("/?token=guess")
        assert wrong.status_code == 401 and "Set-Cookie" not in wrong.headers
        assert "not this server" in wrong.get_data(as_text=True)
        assert client.get("/api/jobs").status_code == 401
        right = client.get("/?token=s3cret")
        cookie = right.headers["Set-Cookie"]
        assert right.status_code == 302 and "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert "Secure" not in cookie  # plain HTTP: a Secure cookie would never come back
        assert client.get("/api/jobs").status_code == 200
        # Over TLS (here: a TLS-terminating proxy, as gunicorn reports it) the cookie is Secure.
        tls = app.test_client().get("/?token=s3cret", base_url="https://localhost")
        assert "; Secure" in tls.headers["Set-Cookie"]
    finally:
        app.extensions["corelane"].close()


def test_health_shows_the_running_job_only_to_token_holders(tmp_path: Path) -> None:
    from corelane.service.app import create_app

    app = create_app(make_config(tmp_path, workers=1, api_token="s3cret"))
    ok = {"Authorization": "Bearer s3cret"}
    try:
        client = app.test_client()
        data = {"files": [(io.BytesIO(samples.photo_jpeg(1600, 1200, seed=i)), f"{i}.jpg")
                          for i in range(12)], "sizes": "1024,512,256,128"}
        job = client.post("/api/jobs", data=data, content_type="multipart/form-data",
                          headers=ok).get_json()
        deadline = time.monotonic() + 30
        while client.get("/api/health", headers=ok).get_json()["running_job"] != job["id"]:
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.02)
        anonymous = client.get("/api/health")
        still = client.get("/api/health", headers=ok).get_json()["running_job"]
        assert still == job["id"], "the job ended too soon for this test to mean anything"
        assert anonymous.get_json()["status"] == "ok"
        assert anonymous.get_json()["running_job"] is None
        assert job["id"] not in anonymous.get_data(as_text=True)
        client.post(f"/api/jobs/{job['id']}/cancel", headers=ok)
    finally:
        app.extensions["corelane"].close()


@pytest.mark.parametrize("token", [None, "s3cret"])
def test_openapi_states_its_security_and_lists_every_path(tmp_path: Path,
                                                          token: str | None) -> None:
    from corelane.service.app import create_app

    app = create_app(make_config(tmp_path, run_jobs=False, api_token=token))
    try:
        doc = app.test_client().get("/api/openapi.json").get_json()
        validate(doc)
        assert {"/api/workers", "/api/health", "/api/jobs/{job_id}"} <= set(doc["paths"])
        assert "delete" in doc["paths"]["/api/jobs/{job_id}"]
        assert {"bearer": []} in doc["security"]
        assert ({} in doc["security"]) is (token is None)  # optional only without a token
        assert doc["paths"]["/api/health"]["get"]["security"] == []
        # Every route the app serves under /api is documented.
        rules = {str(r.rule).replace("<", "{").replace(">", "}") for r in app.url_map.iter_rules()
                 if str(r.rule).startswith("/api/")}
        assert rules <= set(doc["paths"]), rules - set(doc["paths"])
    finally:
        app.extensions["corelane"].close()


def test_host_rules_and_config_errors() -> None:
    config = ServiceConfig(port=8000, allowed_hosts=("photos.example", "lan.example:9000"))
    assert host_ok(config, "lan.example:9000") and not host_ok(config, "lan.example:8000")
    assert host_ok(config, "photos.example:1234")
    assert not host_ok(config, None) and not host_ok(config, "localhost:8000@evil")
    assert host_ok(ServiceConfig(allowed_hosts=("*",)), "anything.example")
    assert split_host("[::1]:8000") == ("::1", 8000) and split_host("::1") == ("::1", None)
    with pytest.raises(ValueError, match="allowed host 'http://x/'"):
        ServiceConfig(allowed_hosts=("http://x/",))
    with pytest.raises(ValueError, match="https://name"):
        ServiceConfig(allowed_origins=("tools.example",))
    env = ServiceConfig.from_env({"CORELANE_ALLOWED_HOSTS": "a.example, b.example:81",
                                  "CORELANE_KEEP_DAYS": "7"})
    assert env.allowed_hosts == ("a.example", "b.example:81") and env.keep_days == 7.0
