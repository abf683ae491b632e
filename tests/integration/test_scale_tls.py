"""Redis over TLS: both spellings of the options, and a bare rediss:// that verifies certificates.

The test makes a throw-away CA and server certificate with openssl and starts a TLS-only
redis-server on a free loopback port; `corelane serve` and `corelane worker` are real processes.
"""

from __future__ import annotations

import urllib.error
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from scale_fixtures import (  # noqa: F401 - the fixture cleanup
    WorkerProcess,
    assert_complete_once,
    cleanup_fixture,
    photos,
    serve,
    wait_for,
    wait_job,
)
from servers import RedisServer, ServerCerts, make_certs, start_redis


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[tuple[RedisServer, ServerCerts]]:
    folder = tmp_path / "certs"
    folder.mkdir()
    certs = make_certs(str(folder))
    server = start_redis(tls=certs)
    try:
        yield server, certs
    finally:
        server.stop()


def test_both_spellings_of_the_tls_options_work(
        tmp_path: Path, tls_redis: tuple[RedisServer, ServerCerts], cleanup: list[Any]) -> None:
    server_redis, certs = tls_redis
    ca = quote(certs.ca, safe="")
    redis_py = f"{server_redis.url}?ssl_cert_reqs=required&ssl_ca_certs={ca}"
    celery_style = f"{server_redis.url}?ssl_cert_reqs=CERT_REQUIRED&ssl_ca_certs={ca}"
    data = tmp_path / "data"
    server = serve(data, redis_py, cleanup)
    health = wait_for(lambda: (h := server.get("/api/health"))["status"] == "ok" and h, 20,
                      "health ok over TLS")
    assert health["checks"]["broker"] == {"status": "ok"}
    cleanup.append(WorkerProcess(celery_style, data, "tls-worker"))
    job = server.post_files(photos(3))
    done = wait_job(server, job["id"], timeout=60)
    assert done["state"] == "done" and done["done"] == 3
    assert_complete_once(server, job["id"], 3)


def test_bare_rediss_verifies_the_certificate(
        tmp_path: Path, tls_redis: tuple[RedisServer, ServerCerts], cleanup: list[Any]) -> None:
    """No CA given: the test CA is not trusted, so every client refuses the server."""
    from corelane.service.config import ServiceConfig
    from corelane.service.runners.celery import make_celery

    server_redis, _certs = tls_redis
    server = serve(tmp_path / "data", server_redis.url, cleanup)
    health = wait_for(lambda: (h := server.get("/api/health"))["checks"]["broker"]["status"]
                      == "degraded" and h, 20, "the broker check to fail")
    assert "certificate verify failed" in health["checks"]["broker"]["reason"]
    with pytest.raises(urllib.error.HTTPError) as refused:
        server.post_files(photos(1))
    assert refused.value.code == 503
    # Celery's own connection (what a worker consumes with) refuses the unverified server too.
    app = make_celery(ServiceConfig(data_dir=tmp_path / "w", broker_url=server_redis.url))
    with app.connection_for_write() as conn, pytest.raises(Exception, match="certificate"):
        conn.ensure_connection(max_retries=1)
