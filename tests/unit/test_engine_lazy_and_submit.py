"""imap reads its input lazily (flat memory on endless input); submit returns Futures."""

from __future__ import annotations

import itertools
import time
from concurrent.futures import wait

import pytest

import corelane
from corelane import WorkerDied
from corelane.errors import RemoteTraceback
from tests.engine_tasks import fail_on_five, sigkill_on, sleep_for, square


def test_imap_over_endless_generator_reads_a_bounded_window(start_method: str) -> None:
    read = 0

    def endless() -> itertools.count[int]:
        nonlocal read
        for i in itertools.count():
            read = i + 1
            yield i

    with corelane.Pool(2, start_method=start_method) as pool:
        it = pool.imap(square, endless())
        got = [next(it) for _ in range(20_000)]
        assert got == [x * x for x in range(20_000)]
        ahead = read - 20_000
        it.close()  # cancels the rest of the run
    assert ahead <= 100_000, f"read {ahead} items ahead of the consumer"


def test_closing_imap_early_cancels_and_pool_goes_on() -> None:
    with corelane.Pool(2) as pool:
        it = pool.imap(sleep_for, [0.05] * 1000)
        next(it)
        it.close()
        assert list(pool.map(square, range(10))) == [x * x for x in range(10)]


def test_submit_returns_futures(start_method: str) -> None:
    with corelane.Pool(2, start_method=start_method) as pool:
        futures = [pool.submit(square, i) for i in range(20)]
        assert [f.result(timeout=30) for f in futures] == [i * i for i in range(20)]
        kw = pool.submit(sorted, [3, 1, 2], reverse=True)
        assert kw.result(timeout=30) == [3, 2, 1]
        bad = pool.submit(fail_on_five, 5)
        with pytest.raises(ValueError, match="bad input 5") as info:  # its own, as the Executor
            bad.result(timeout=30)
        assert isinstance(info.value.__cause__, RemoteTraceback)
        assert "fail_on_five" in str(info.value.__cause__)
        dead = pool.submit(sigkill_on, (1, 1))
        assert isinstance(dead.exception(timeout=30), WorkerDied)
        assert pool.submit(square, 9).result(timeout=30) == 81


def test_cancelled_future_does_not_run() -> None:
    with corelane.Pool(1) as pool:
        blocker = pool.submit(sleep_for, 0.5)
        queued = pool.submit(sleep_for, 0.0)
        assert queued.cancel()
        done, _ = wait([blocker], timeout=30)
        assert blocker in done and queued.cancelled()


def test_terminate_fails_pending_futures() -> None:
    pool = corelane.Pool(1)
    slow = pool.submit(sleep_for, 30)
    time.sleep(0.2)
    pool.terminate()
    assert isinstance(slow.exception(timeout=10), corelane.Cancelled)


def test_busy_caller_does_not_stall_the_pool(start_method: str) -> None:
    # A frame loop that never blocks holds the GIL; the pool's manager thread must still start
    # its workers (imports and the forkserver are done in the caller) and deliver results.
    pool = corelane.Pool(1, start_method=start_method)
    try:
        futures = [pool.submit(square, i) for i in range(20)]
        deadline = time.monotonic() + 20
        while not all(f.done() for f in futures) and time.monotonic() < deadline:
            sum(range(500))  # busy, never sleeps
        assert [f.result(timeout=0) for f in futures] == [i * i for i in range(20)]
    finally:
        pool.close()
