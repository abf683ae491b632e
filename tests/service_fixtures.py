"""Fixtures and helpers for the image-service tests (tests/*/test_service_*.py).

Each test builds its own app with ``create_app(config)`` over a temp data dir (Flask tutorial
style), with a real engine pool behind it; ``poison_or_process`` is a module-level task (so
forkserver/spawn workers can import it) that kills its own worker on one marked image size.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import imaging_samples as samples
import pytest

from corelane.service.config import ServiceConfig

POISON_SIZE = (333, 222)  # an image of exactly this size kills its worker (see poison_or_process)
ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"  # screenshots (not committed)
CHROMIUM = "/usr/bin/chromium"  # Debian's, driven by Playwright in tests/e2e
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


def need_browser() -> None:
    """Skip when Debian's chromium is missing; fail instead under CI=true (CI installs it)."""
    if os.path.exists(CHROMIUM):
        return
    message = f"{CHROMIUM} is missing (apt-get install -y chromium)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def make_config(tmp_path: Path, **changes: Any) -> ServiceConfig:
    """A config for tests: temp data dir, 2 workers, short timeouts."""
    base: dict[str, Any] = {"data_dir": tmp_path / "data", "workers": 2, "item_timeout": 30.0}
    base.update(changes)
    return ServiceConfig(**base)


@pytest.fixture
def service_app(tmp_path: Path) -> Iterator[Any]:
    """A running app (runner and engine workers included), closed after the test."""
    from corelane.service.app import create_app

    app = create_app(make_config(tmp_path))
    try:
        yield app
    finally:
        app.extensions["corelane"].close()


@pytest.fixture
def api_app(tmp_path: Path) -> Iterator[Any]:
    """An app without a runner: the request checks alone, no worker processes."""
    from corelane.service.app import create_app

    app = create_app(make_config(tmp_path, run_jobs=False))
    try:
        yield app
    finally:
        app.extensions["corelane"].close()


def upload(client: Any, files: dict[str, bytes], **options: str) -> Any:
    """POST /api/jobs with ``files`` (name -> bytes) and form options; returns the response."""
    data: dict[str, Any] = {"files": [(io.BytesIO(b), name) for name, b in files.items()]}
    data.update(options)
    return client.post("/api/jobs", data=data, content_type="multipart/form-data")


def api_error(resp: Any, status: int) -> str:
    """The message of a JSON error response, after checking its status (in both places)."""
    assert resp.status_code == status, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["error"]["status"] == status
    return str(body["error"]["message"])


def wait_job(client: Any, job_id: str, timeout: float = 30.0,
             states: tuple[str, ...] = ("done", "failed", "cancelled")) -> dict[str, Any]:
    """Poll the job until it is in one of ``states`` (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/api/jobs/{job_id}").get_json()
        if job["state"] in states:
            return dict(job)
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {job['state']} after {timeout} s: {job}")
        time.sleep(0.05)


def items_by_name(client: Any, job_id: str) -> dict[str, dict[str, Any]]:
    items = client.get(f"/api/jobs/{job_id}/items").get_json()["items"]
    return {item["name"]: item for item in items}


def poison_or_process(task: Any) -> dict[str, Any]:
    """The real item task, except that an image of POISON_SIZE SIGKILLs its worker every time."""
    from PIL import Image

    from corelane.service.runners._work import process_item

    with Image.open(task.source) as im:
        if im.size == POISON_SIZE:
            os.kill(os.getpid(), signal.SIGKILL)
    return process_item(task)


SLOW_ITEM_S = 0.12  # what slow_process adds to each image: the scheduling tests' time unit


def slow_process(task: Any) -> dict[str, Any]:
    """The real item task after a pause, so an order between jobs' images is measurable."""
    from corelane.service.runners._work import process_item

    time.sleep(SLOW_ITEM_S)
    return process_item(task)


def poison_image() -> bytes:
    return samples.photo_jpeg(*POISON_SIZE, seed=9)


# ---------------------------------------------------------------------- a real server process


def no_sideways_scroll(page: Any, width: int, where: str) -> None:
    """The page in a ``width`` px viewport is exactly that wide (issue 12: phones)."""
    scroll = page.evaluate("document.documentElement.scrollWidth")
    assert scroll == width, f"{where}: the page is {scroll} px wide in a {width} px viewport"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """``corelane serve`` in a subprocess (own session, so a SIGKILL takes its whole group)."""

    def __init__(self, data_dir: Path, port: int | None = None, workers: int = 1,
                 env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.workers = workers
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data_dir.parent / f"serve-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> ServerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "corelane", "serve", "--port", str(self.port),
               "--data-dir", str(self.data_dir), "--workers", str(self.workers), "--threads", "16"]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                         env=self.env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log.read_text()}")
            try:
                self.get("/api/health", timeout=1.0)
                return self
            except (OSError, urllib.error.URLError):
                time.sleep(0.1)
        self.kill()
        raise TimeoutError(f"server did not answer in {timeout} s:\n{self.log.read_text()}")

    def get(self, path: str, timeout: float = 10.0) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=timeout) as r:
            body = r.read()
            return json.loads(body) if r.headers.get_content_type() == "application/json" else body

    def wait(self, job_id: str, states: tuple[str, ...] = ("done", "failed", "cancelled"),
             timeout: float = 60.0) -> dict[str, Any]:
        """Poll a job until it is in one of ``states`` (bounded); returns it."""
        deadline = time.monotonic() + timeout
        while True:
            job: dict[str, Any] = self.get(f"/api/jobs/{job_id}")
            if job["state"] in states:
                return job
            assert time.monotonic() < deadline, f"job {job_id} stuck in {job['state']}"
            time.sleep(0.05)

    def post_files(self, files: dict[str, bytes], timeout: float = 30.0, **options: str) -> Any:
        boundary = "corelane-test-boundary"
        body = b""
        for name, data in files.items():
            body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; "
                     f"filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                     ).encode() + data + b"\r\n"
        for key, value in options.items():
            body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{key}\"\r\n\r\n"
                     f"{value}\r\n").encode()
        body += f"--{boundary}--\r\n".encode()
        req = urllib.request.Request(self.url + "/api/jobs", data=body, headers={
            "Content-Type": f"multipart/form-data; boundary={boundary}"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read())

    def kill(self) -> None:
        """SIGKILL the server and everything in its session (workers, forkserver)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        _wait_group_gone(self.proc.pid)

    def stop(self) -> None:
        """SIGTERM (graceful), then SIGKILL if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            _wait_group_gone(self.proc.pid if self.proc else 0)
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(15)
        self.kill()


def _wait_group_gone(pgid: int, timeout: float = 10.0) -> None:
    if pgid <= 0:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
