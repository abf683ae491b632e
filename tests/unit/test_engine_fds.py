"""Pools that come and go leave no fd behind, and one stopping never trips another starting.

corelane.map returns before its pool's workers have exited (they stop in the background). Two
regressions this guards: the pool's wake pipe was never closed (2 fds leaked per call), and a
worker pipe closed by a stopping pool while another pool was forking could hand its fd number
to the new child's own sentinel pipe, which the child then closed: its parent saw it "die"
while it lived, and waited for it forever.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import corelane
from tests.engine_tasks import sleep_for, square


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_back_to_back_maps_and_pools_leak_nothing_and_never_hang() -> None:
    corelane.map(square, range(100), workers=2, start_method="fork")  # warm imports
    before = _open_fds()
    for i in range(25):
        assert corelane.map(square, range(2000), workers=2, start_method="fork")[-1] == 1999**2
        with corelane.Pool(2, start_method="fork") as pool:  # starts while the last one stops
            assert list(pool.imap(square, range(500)))[i] == i * i
    with corelane.Pool(1) as pool:  # let the background shutdowns finish
        pool.submit(square, 1).result(timeout=30)
    assert _open_fds() <= before + 6


def test_a_subprocess_started_right_after_a_fork_pool_does_not_wait_for_its_workers() -> None:
    # Workers forked from the manager thread while this thread was inside subprocess.Popen
    # inherited Popen's exec-status pipe (close-on-exec, but a worker never execs), and
    # subprocess.run() waited until the pool's workers exited: 8 of 12 runs hung. A watchdog
    # terminates the pool so that a regression fails instead of hanging.
    for _ in range(6):
        pool = corelane.Pool(8, start_method="fork")
        watchdog = threading.Timer(10.0, pool.terminate)
        watchdog.start()
        try:
            t0 = time.monotonic()
            subprocess.run(["true"], check=True)
            took = time.monotonic() - t0
        finally:
            watchdog.cancel()
            pool.terminate()
        assert took < 5, f"subprocess.run() waited {took:.1f} s for the pool's workers"


def test_a_module_imported_while_a_fork_pool_starts_imports_in_its_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A worker forked while this thread held a module's import lock inherited the lock held,
    # and hung on its first task that imported the module.
    (tmp_path / "corelane_slow_import.py").write_text(
        "import time\ntime.sleep(1.0)\n\ndef double(x):\n    return 2 * x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    pool = corelane.Pool(2, start_method="fork")
    try:
        import corelane_slow_import  # type: ignore[import-not-found]

        assert pool.submit(corelane_slow_import.double, 21).result(timeout=20) == 42
        assert pool.submit(corelane_slow_import.double, 1).result(timeout=20) == 2
    finally:
        pool.terminate()
        sys.modules.pop("corelane_slow_import", None)


def test_a_fork_pool_outlives_the_thread_that_made_it() -> None:
    # A worker's parent-death signal fires when the *thread* that forked it ends: forked in the
    # caller's thread, a pool made by a short-lived thread (a request handler) had its first
    # workers SIGKILLed, and their running calls failed with WorkerDied.
    box: dict[str, Any] = {}

    def make() -> None:
        pool = corelane.Pool(2, start_method="fork")
        box["pool"], box["future"] = pool, pool.submit(sleep_for, 1.0)
        time.sleep(0.3)  # the call is running as this thread ends

    thread = threading.Thread(target=make)
    thread.start()
    thread.join()
    pool = box["pool"]
    try:
        assert box["future"].result(timeout=30) == 1.0
        assert pool.statistics().worker_deaths == 0
        assert list(pool.map(square, range(100))) == [x * x for x in range(100)]
    finally:
        pool.terminate()
