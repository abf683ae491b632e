"""Multi-host: a worker in its own network namespace reaches Redis only across a veth link.

The test creates the namespace and the link itself (``ip netns`` + veth, private addresses that
exist only inside this test) and removes them afterwards. It needs CAP_NET_ADMIN: where the
machine does not allow it, the test skips (it is the optional "where the machine allows it" case).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import imaging_samples as samples
import pytest
from scale_fixtures import ROOT, wait_job
from servers import free_port, wait_port
from service_fixtures import ServerProcess

HOST_IP, WORKER_IP = "10.231.77.1", "10.231.77.2"


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)


@pytest.fixture
def netns() -> Iterator[str]:
    if shutil.which("ip") is None:
        pytest.skip("iproute2 is not installed")
    name = f"cl-{uuid.uuid4().hex[:8]}"
    if _ip("netns", "add", name).returncode != 0:
        pytest.skip("network namespaces are not permitted here")
    host_if, ns_if = f"{name}-h", f"{name}-n"[:15]
    try:
        for cmd in (["link", "add", host_if[:15], "type", "veth", "peer", "name", ns_if],
                    ["link", "set", ns_if, "netns", name],
                    ["addr", "add", f"{HOST_IP}/30", "dev", host_if[:15]],
                    ["link", "set", host_if[:15], "up"],
                    ["-n", name, "addr", "add", f"{WORKER_IP}/30", "dev", ns_if],
                    ["-n", name, "link", "set", ns_if, "up"],
                    ["-n", name, "link", "set", "lo", "up"]):
            result = _ip(*cmd)
            if result.returncode != 0:
                pytest.skip(f"cannot build the test network: ip {' '.join(cmd)}: {result.stderr}")
        yield name
    finally:
        _ip("link", "del", host_if[:15])
        _ip("netns", "del", name)


def test_worker_in_another_namespace_processes_a_job(tmp_path: Path, netns: str) -> None:
    redis_exe = shutil.which("redis-server")
    if redis_exe is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    redis_proc = subprocess.Popen(
        [redis_exe, "--port", str(port), "--bind", f"127.0.0.1 {HOST_IP}", "--save", "",
         "--protected-mode", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    data = tmp_path / "data"
    server = worker = None
    try:
        wait_port(port)
        # The web process talks to Redis on loopback; the worker only sees the veth address.
        server = ServerProcess(data, env={"CORELANE_BROKER_URL": f"redis://127.0.0.1:{port}/0"})
        server.start()
        log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115 - closed below
        worker = subprocess.Popen(
            ["ip", "netns", "exec", netns, sys.executable, "-m", "corelane", "worker",
             "--broker", f"redis://{HOST_IP}:{port}/0", "--data-dir", str(data),
             "--concurrency", "1", "--name", "remote", "--loglevel", "WARNING"],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        job = server.post_files({f"p{i}.jpg": samples.photo_jpeg(600, 400, seed=i)
                                 for i in range(3)})
        done = wait_job(server, job["id"], timeout=60)
        assert done["state"] == "done" and done["done"] == 3
        workers = server.get("/api/workers")["workers"]
        assert [w["name"] for w in workers] == ["remote"]
    finally:
        if worker is not None:
            os.killpg(worker.pid, 9)
            worker.wait(10)
            log.close()
        if server is not None:
            server.stop()
        redis_proc.terminate()
        redis_proc.wait(10)
