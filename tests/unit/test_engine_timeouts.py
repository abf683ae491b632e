"""timeout= stops an item that overruns: TaskTimeout, the stuck worker replaced, others complete."""

from __future__ import annotations

import time

import pytest

import corelane
from corelane import Failure, TaskTimeout
from tests.engine_tasks import sleep_for


def test_stuck_item_times_out_and_worker_is_replaced(start_method: str) -> None:
    with corelane.Pool(2, start_method=start_method) as pool:
        before = set(pool.pids)
        t0 = time.monotonic()
        out = list(pool.imap(sleep_for, [0.01, 30.0, 0.01, 0.02], timeout=0.5, errors="return"))
        assert time.monotonic() - t0 < 10
        assert out[0] == 0.01 and out[2] == 0.01 and out[3] == 0.02
        assert isinstance(out[1], Failure) and isinstance(out[1].exception, TaskTimeout)
        assert isinstance(out[1].exception, TimeoutError)
        assert out[1].exception.index == 1
        deadline = time.monotonic() + 5
        while len(pool.pids) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)  # the replacement worker is starting
        after = set(pool.pids)
        assert len(after) == 2 and after != before


def test_timeout_raise_mode() -> None:
    with pytest.raises(TaskTimeout, match="0.3 s timeout"):
        corelane.map(sleep_for, [30.0], workers=1, timeout=0.3)


def test_bad_timeout_is_refused() -> None:
    with pytest.raises(ValueError, match="timeout"):
        corelane.map(sleep_for, [0.0], workers=1, timeout=0)
