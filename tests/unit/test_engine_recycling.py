"""Worker recycling (max_tasks_per_child, max_worker_memory) and cancelling a running call."""

from __future__ import annotations

import collections
import sys
import threading
import time
from pathlib import Path

import pytest

import corelane
from corelane.engine.pool import parse_bytes
from tests.engine_tasks import leak_50mb, pid_of, sleep_for, square, touch_then_sleep


def test_max_tasks_per_child_replaces_workers_and_loses_nothing(start_method: str) -> None:
    with corelane.Pool(2, max_tasks_per_child=5, start_method=start_method) as pool:
        pids = list(pool.map(pid_of, range(40)))
        assert len(pids) == 40
        per_pid = collections.Counter(pids)
        assert max(per_pid.values()) <= 5 and len(per_pid) >= 8
        assert list(pool.map(square, range(100))) == [x * x for x in range(100)]  # big chunks
        stats = pool.statistics()
        assert stats.workers_retired >= 7 + 20 - 2 and stats.worker_deaths == 0


def test_close_replaces_a_retiring_worker_while_submits_are_queued() -> None:
    # A worker that retires after its one task while close() waits: the queued submits need a
    # successor (close() once waited for ever here).
    pool = corelane.Pool(1, max_tasks_per_child=1)
    futures = [pool.submit(square, i) for i in range(4)]
    closer = threading.Thread(target=pool.close)
    closer.start()
    closer.join(30)
    try:
        assert not closer.is_alive(), "close() hung with a retired worker and queued submits"
        assert [f.result(timeout=1) for f in futures] == [0, 1, 4, 9]
    finally:
        if closer.is_alive():
            pool.terminate()


def test_memory_ceiling_retires_a_leaking_worker_after_its_item() -> None:
    ceiling = 200 << 20
    with corelane.Pool(2, max_worker_memory="200MiB", start_method="forkserver") as pool:
        rss = list(pool.map(leak_50mb, range(100), chunksize=1))
        assert len(rss) == 100
        assert max(rss) < ceiling + (50 << 20) + (16 << 20), f"peak {max(rss) >> 20} MiB"
        assert pool.statistics().workers_retired >= 10


def test_parse_bytes() -> None:
    assert parse_bytes("2GiB") == 2 << 30 and parse_bytes("500MB") == 500_000_000
    assert parse_bytes(4096) == 4096
    for bad in ("lots", "-1MB", "0", "5 parsecs"):
        with pytest.raises(ValueError):
            parse_bytes(bad)
    with pytest.raises(ValueError, match="max_tasks_per_child"):
        corelane.Pool(1, max_tasks_per_child=0)


def test_force_cancel_stops_a_running_call_and_the_pool_goes_on(tmp_path: Path) -> None:
    with corelane.Pool(1) as pool:
        running = pool.submit(touch_then_sleep, (str(tmp_path), 0, 30))
        queued = pool.submit(square, 7)
        deadline = time.monotonic() + 20
        while not (tmp_path / "0").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        pid = pool.pids[0]
        assert not pool.cancel(running)  # running: a plain cancel cannot
        t0 = time.monotonic()
        assert pool.cancel(running, force=True)
        assert isinstance(running.exception(timeout=10), corelane.Cancelled)
        assert queued.result(timeout=30) == 49  # what the worker held went to its successor
        assert time.monotonic() - t0 < 5
        assert pool.pids and pool.pids[0] != pid
        assert pool.submit(sleep_for, 0.01).result(timeout=30) == 0.01
        assert pool.statistics().worker_deaths == 0


def test_cancel_of_a_waiting_call_needs_no_force() -> None:
    with corelane.Pool(1) as pool:
        blocker = pool.submit(sleep_for, 0.3)
        waiting = pool.submit(square, 2)
        assert pool.cancel(waiting) and waiting.cancelled()
        assert blocker.result(timeout=30) == 0.3
        done = pool.submit(square, 3)
        assert done.result(timeout=30) == 9
        assert not pool.cancel(done, force=True)  # finished: nothing to cancel


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork is Linux's default only")
def test_a_recycling_pool_takes_the_forkserver_unless_told_otherwise() -> None:
    # Replacements are forked by the manager thread while the caller runs on; under fork they
    # inherit what the caller held at that instant (subprocess.Popen's exec-status pipe: the
    # caller's subprocess.run() then waited for that worker to exit).
    with corelane.Pool(1, max_tasks_per_child=1) as pool:
        assert pool.start_method == "forkserver"
        assert [pool.submit(abs, -i).result(timeout=30) for i in range(3)] == [0, 1, 2]
        assert pool.statistics().workers_retired >= 2
    with corelane.Pool(1, max_worker_memory="1 GiB") as pool:
        assert pool.start_method == "forkserver"
    with corelane.Pool(1, max_tasks_per_child=1, start_method="fork") as pool:
        assert pool.start_method == "fork"  # asked for: kept
        assert pool.submit(abs, -1).result(timeout=30) == 1
