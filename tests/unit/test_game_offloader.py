"""Offloader: poll never blocks, latest-wins, bounded pending work, Failures, clean close."""

from __future__ import annotations

import os
import queue
import threading
import time
from pathlib import Path

import psutil
import pytest

import corelane
from corelane import Failure, Offloader, WorkerDied
from corelane.errors import Cancelled, Closed, Full, NotPicklable
from corelane.integrations.pygame import Done
from tests.game_tasks import boom, echo, sigkill_self, slow_marked, square, wait_for_file

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

POLL_BUDGET_S = 0.05  # the brief's bound for one poll while work runs (a frame is 16.7 ms)


def collect(off: Offloader, want: int, timeout: float = 10.0) -> list[Done | Failure]:
    """Poll like a frame loop until ``want`` outcomes arrived (bounded)."""
    out: list[Done | Failure] = []
    deadline = time.monotonic() + timeout
    while len(out) < want:
        assert time.monotonic() < deadline, f"only {out} after {timeout} s"
        out.extend(off.poll())
        time.sleep(0.005)
    return out


def test_offloader_is_exported() -> None:
    assert corelane.Offloader is Offloader
    assert "Offloader" in corelane.__all__


def test_results_come_back_by_key(start_method: str) -> None:
    with Offloader(2, start_method=start_method) as off:
        for k in range(6):
            off.submit(k, square, k)
        got = collect(off, 6)
        assert sorted(got) == [(k, k * k) for k in range(6)]
        assert all(isinstance(d, Done) for d in got)
        assert off.pending == 0
        stats = off.statistics()
        assert (stats.submitted, stats.completed, stats.failed) == (6, 6, 0)


def test_poll_never_blocks_while_a_slow_task_runs(tmp_path: Path) -> None:
    marker = tmp_path / "started"
    with Offloader(1) as off:
        off.submit("slow", slow_marked, str(marker), 2.0, "late")
        wait_for_file(marker)  # the 2 s task is running now
        worst = 0.0
        for _ in range(50):
            t0 = time.perf_counter()
            assert off.poll() == []
            worst = max(worst, time.perf_counter() - t0)
        assert worst < POLL_BUDGET_S, f"a poll took {worst * 1000:.1f} ms"
        assert off.pending == 1
        t0 = time.perf_counter()
        off.submit("other", square, 3)  # submit must not wait for the busy worker either
        assert time.perf_counter() - t0 < POLL_BUDGET_S
        assert off.pending == 2
    # leaving the block closed it mid-task; the no_leaks fixture proves no process is left


def test_latest_wins_drops_stale_requests(tmp_path: Path) -> None:
    marker = tmp_path / "started"
    with Offloader(1, latest_wins=True) as off:
        off.submit("a", slow_marked, str(marker), 0.5, "a-old")
        wait_for_file(marker)  # "a" is running: it cannot be cancelled, only ignored
        off.submit("b", echo, "b1")  # queued behind "a": cancelled when superseded
        off.submit("b", echo, "b2")
        off.submit("a", echo, "a-new")
        off.submit("b", echo, "b3")
        got = collect(off, 2)
        assert off.wait_idle(5.0)
        got += off.poll()
        assert sorted(got) == [("a", "a-new"), ("b", "b3")]
        stats = off.statistics()
        assert stats.superseded == 3  # b1, b2 cancelled before running; a-old ignored
        assert stats.completed == 2
        assert off.pending == 0


def test_without_latest_wins_every_request_is_answered() -> None:
    with Offloader(2, latest_wins=False) as off:
        for v in range(5):
            off.submit("same", echo, v)
        got = collect(off, 5)
        assert sorted(d.value for d in got if isinstance(d, Done)) == [0, 1, 2, 3, 4]


def test_cancel_forgets_a_key(tmp_path: Path) -> None:
    marker = tmp_path / "started"
    with Offloader(1) as off:
        off.submit("busy", slow_marked, str(marker), 0.3, "done")
        wait_for_file(marker)
        off.submit("x", echo, "never")
        assert off.cancel("x") is True
        assert off.cancel("x") is False
        assert collect(off, 1) == [("busy", "done")]
        assert off.wait_idle(5.0) and off.poll() == []


def test_full_raises_at_the_bound(tmp_path: Path) -> None:
    marker = tmp_path / "started"
    with Offloader(1, max_pending=2) as off:
        off.submit(1, slow_marked, str(marker), 0.3, 1)
        off.submit(2, echo, 2)
        with pytest.raises(Full, match="max_pending=2") as info:
            off.submit(3, echo, 3)
        assert isinstance(info.value, queue.Full)
        got = collect(off, 2)
        assert sorted(got) == [(1, 1), (2, 2)]
        off.submit(3, echo, 3)  # room again once results were polled
        assert collect(off, 1) == [(3, 3)]


def test_full_keeps_the_running_request_of_the_same_key(tmp_path: Path) -> None:
    marker = tmp_path / "started"
    with Offloader(1, max_pending=1) as off:
        off.submit("a", slow_marked, str(marker), 0.3, "first")
        wait_for_file(marker)
        with pytest.raises(Full):
            off.submit("a", echo, "second")  # refused, so "first" must still be answered
        assert collect(off, 1) == [("a", "first")]
        off.submit("a", echo, "third")  # room again once "first" was polled
        assert collect(off, 1) == [("a", "third")]


def test_drop_oldest_reports_the_dropped_request(tmp_path: Path) -> None:
    marker = tmp_path / "started"
    with Offloader(1, max_pending=2, on_full="drop_oldest") as off:
        off.submit("run", slow_marked, str(marker), 0.3, "ran")
        wait_for_file(marker)  # running: not droppable
        off.submit("old", echo, "old")
        off.submit("new", echo, "new")  # at the bound: "old" (not started) is dropped
        got = collect(off, 3)
        dropped = [f for f in got if isinstance(f, Failure)]
        assert len(dropped) == 1 and dropped[0].item == "old"
        assert isinstance(dropped[0].exception, Cancelled)
        assert sorted(d for d in got if isinstance(d, Done)) == [("new", "new"), ("run", "ran")]
        assert off.statistics().dropped == 1


def test_task_error_is_a_failure_and_work_goes_on(start_method: str) -> None:
    with Offloader(1, start_method=start_method) as off:
        off.submit("bad", boom, "no path here")
        (failure,) = collect(off, 1)
        assert isinstance(failure, Failure)
        assert failure.item == "bad"
        assert isinstance(failure.exception, ValueError)
        assert str(failure.exception) == "no path here"
        assert "game_tasks.py" in failure.traceback and "boom" in failure.traceback
        off.submit("good", square, 7)
        assert collect(off, 1) == [("good", 49)]


def test_killed_worker_is_a_failure_and_work_goes_on(start_method: str) -> None:
    with Offloader(1, start_method=start_method) as off:
        off.submit("victim", sigkill_self)
        off.submit("next", square, 5)
        got = collect(off, 2)
        failures = [f for f in got if isinstance(f, Failure)]
        assert len(failures) == 1 and failures[0].item == "victim"
        assert isinstance(failures[0].exception, WorkerDied)
        assert "SIGKILL" in str(failures[0].exception)
        assert ("next", 25) in got
        off.submit("after", square, 6)  # the replacement worker serves new requests
        assert collect(off, 1) == [("after", 36)]


def test_unpicklable_argument_is_a_failure() -> None:
    with Offloader(1) as off:
        off.submit("lock", echo, threading.Lock())
        (failure,) = off.poll()  # known at submit time: no worker involved
        assert isinstance(failure, Failure)
        assert isinstance(failure.exception, NotPicklable)
        off.submit("fine", echo, 1)
        assert collect(off, 1) == [("fine", 1)]


def test_close_mid_task_leaves_no_process(tmp_path: Path) -> None:
    marker = tmp_path / "started"
    off = Offloader(2)
    off.submit("long", slow_marked, str(marker), 30.0)
    pid = wait_for_file(marker)
    worker = psutil.Process(pid)
    t0 = time.monotonic()
    off.close()
    assert time.monotonic() - t0 < 10.0  # bounded: it did not wait for the 30 s task
    assert not worker.is_running() or worker.status() == psutil.STATUS_ZOMBIE
    assert not [c for c in psutil.Process().children(recursive=True) if c.pid == pid]
    off.close()  # twice is fine
    assert off.poll() == []
    with pytest.raises(Closed):
        off.submit("late", square, 1)


def test_shared_pool_is_left_running() -> None:
    with corelane.Pool(1) as pool:
        off = Offloader(pool=pool)
        off.submit("k", square, 4)
        assert collect(off, 1) == [("k", 16)]
        off.close()
        assert pool.submit(square, 3).result(timeout=10) == 9
        with pytest.raises(ValueError, match="either pool"):
            Offloader(2, pool=pool)


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="max_pending"):
        Offloader(1, max_pending=0)
    with pytest.raises(ValueError, match="on_full"):
        Offloader(1, on_full="block")  # type: ignore[arg-type]
