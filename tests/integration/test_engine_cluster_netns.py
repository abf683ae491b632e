"""Multi-host: a Dask worker in its own network namespace reaches the scheduler across a veth link.

The namespace and the link are test_scale_netns.py's ``netns`` fixture (``ip netns`` + veth,
private addresses that exist only inside the test, removed afterwards). The scheduler and one
worker listen on the host's end of the link, the other worker runs inside the namespace, where
only the link's far end exists: the chunks it runs crossed the link, and so did its results.
Where the machine does not allow namespaces the test skips locally, and fails under CI=true.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import free_port
from test_scale_netns import HOST_IP, WORKER_IP, netns  # noqa: F401 - its fixture, used by name

import corelane

if importlib.util.find_spec("distributed") is None:  # the dask extra is part of corelane[test]
    if os.environ.get("CI") == "true":
        pytest.fail("dask[distributed] is not installed; CI must install corelane[test]",
                    pytrace=False)
    pytest.skip("dask[distributed] is not installed", allow_module_level=True)

from corelane.engine.cluster import ClusterPool  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.allow_leaks  # the processes are stopped and checked here


@pytest.fixture
def dask_netns(request: pytest.FixtureRequest) -> str:
    """test_scale_netns.py's namespace; under CI=true a namespace that cannot be made fails."""
    try:
        return str(request.getfixturevalue("netns"))
    except pytest.skip.Exception as skipped:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must allow network namespaces (run as root): {skipped}")
        raise


@pytest.fixture
def two_hosts(tmp_path: Path, dask_netns: str) -> Iterator[str]:
    """A scheduler and a worker on the host's end of the link, a worker in the namespace."""
    port = free_port()
    address = f"tcp://{HOST_IP}:{port}"
    dask = str(Path(sys.executable).parent / "dask")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "tests"), str(ROOT)]))
    worker = [dask, "worker", address, "--nthreads", "1", "--no-dashboard"]
    procs: list[subprocess.Popen[bytes]] = []

    def start(cmd: list[str], name: str) -> None:
        with open(tmp_path / f"{name}.log", "wb") as log:
            procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log,
                                          stderr=subprocess.STDOUT, start_new_session=True))

    try:
        start([dask, "scheduler", "--host", HOST_IP, "--port", str(port), "--no-dashboard"],
              "scheduler")
        _wait_listening(HOST_IP, port)
        start([*worker, "--host", HOST_IP, "--name", "local"], "local")
        start(["ip", "netns", "exec", dask_netns, *worker, "--host", WORKER_IP,
               "--name", "remote"], "remote")
        yield address
    finally:
        for proc in reversed(procs):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


def _wait_listening(host: str, port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout} s")


def test_a_worker_in_another_namespace_runs_chunks(two_hosts: str) -> None:
    def network_namespace(_: object) -> str:  # a closure: it travels by value
        return os.readlink("/proc/self/ns/net")

    here = network_namespace(None)
    with ClusterPool(two_hosts, connect_timeout=30) as pool:
        pool.client.wait_for_workers(2, timeout=60)
        hosts = {w["name"]: addr for addr, w in pool.client.scheduler_info()["workers"].items()}
        assert hosts["remote"].startswith(f"tcp://{WORKER_IP}:"), hosts
        # Both namespaces ran items (one item per task, so both workers take some).
        seen = set(pool.imap(network_namespace, range(40), chunksize=1))
        assert here in seen and len(seen) == 2, seen
        assert list(pool.imap(lambda x: x * x, range(500))) == [x * x for x in range(500)]
        out = (corelane.Pipeline(range(100), cluster=pool.client)
               .stage(lambda x: x + 1).stage(lambda x: x * 2).run())
        assert out == [(x + 1) * 2 for x in range(100)]
