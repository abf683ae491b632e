"""A worker that dies (SIGKILL, segfault, os._exit) fails exactly its item; the others complete,
a new worker takes its place and the pool stays usable."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

import corelane
from corelane import Failure, WorkerDied
from tests.engine_tasks import (
    exit_on,
    init_dies_once,
    pid_of,
    segfault_on,
    sigkill_on,
    sleep_then_sigkill,
    square,
)

# where x how -> expected exit code in the WorkerDied
CRASHES: list[tuple[str, Callable[[Any], Any], int]] = [
    ("sigkill", sigkill_on, -signal.SIGKILL),
    ("segfault", segfault_on, -signal.SIGSEGV),
    ("os._exit", exit_on, 3),
]


@pytest.mark.parametrize(("name", "task", "exitcode"), CRASHES, ids=[c[0] for c in CRASHES])
def test_death_fails_only_its_item(start_method: str, name: str, task: Any, exitcode: int) -> None:
    items = [(i, 7) for i in range(20)]
    with corelane.Pool(2, start_method=start_method) as pool:
        t0 = time.monotonic()
        out = list(pool.map(task, items, errors="return"))
        elapsed = time.monotonic() - t0
        assert [x for i, x in enumerate(out) if i != 7] == [i for i in range(20) if i != 7]
        failure = out[7]
        assert isinstance(failure, Failure) and isinstance(failure.exception, WorkerDied)
        assert failure.exception.exitcode == exitcode and failure.index == 7
        assert elapsed < 5, "death detection should take about a second at most"
        # the pool is still whole and usable
        assert list(pool.map(square, range(50))) == [x * x for x in range(50)]
        assert len(pool.pids) == 2


def test_death_in_raise_mode_raises_workerdied_naming_signal() -> None:
    with pytest.raises(WorkerDied, match="SIGKILL") as info:
        corelane.map(sigkill_on, [(i, 3) for i in range(8)], workers=2)
    assert info.value.index == 3 and info.value.signal == signal.SIGKILL


def test_repeated_deaths_never_hang() -> None:
    with corelane.Pool(2) as pool:
        for round_ in range(10):
            out = list(pool.map(sigkill_on, [(i, round_ % 5) for i in range(5)], errors="return"))
            assert sum(isinstance(x, Failure) for x in out) == 1
        pids = set(list(pool.map(pid_of, range(20), chunksize=1)))
        assert 1 <= len(pids) <= 2


def test_death_inside_a_large_chunk_names_the_culprit(start_method: str) -> None:
    # One chunk of 40: the worker dies inside a span of items run back to back; corelane re-runs
    # that span item by item so the second death names exactly the culprit.
    items = [(i, 23) for i in range(40)]
    with corelane.Pool(2, start_method=start_method) as pool:
        out = list(pool.map(sigkill_on, items, chunksize=40, errors="return"))
    failures = [x for x in out if isinstance(x, Failure)]
    assert len(failures) == 1 and failures[0].index == 23
    assert isinstance(failures[0].exception, WorkerDied)
    assert [x for x in out if not isinstance(x, Failure)] == [i for i in range(40) if i != 23]


def test_a_death_while_the_pool_closes_still_runs_the_queued_work(start_method: str) -> None:
    # close() promises to finish submitted work. The only worker dies after close() began, with
    # a submit still queued: a new worker must take it, or close() would wait for ever.
    pool = corelane.Pool(1, start_method=start_method)
    doomed = pool.submit(sleep_then_sigkill, 0.3)
    queued = pool.submit(square, 7)
    closer = threading.Thread(target=pool.close)
    closer.start()
    closer.join(30)
    try:
        assert not closer.is_alive(), "close() hung after a worker died while closing"
        assert isinstance(doomed.exception(timeout=1), WorkerDied)
        assert queued.result(timeout=1) == 49
    finally:
        if closer.is_alive():
            pool.terminate()


def test_work_sent_to_a_worker_that_dies_starting_runs_on_its_successor(
    start_method: str, tmp_path: Any
) -> None:
    # A worker that dies while it starts has run nothing: the whole input runs on the worker
    # that replaces it, no item blamed (with one worker, nothing else could run it).
    marker = tmp_path / "died"
    out = corelane.map(square, range(300), workers=1, start_method=start_method, errors="return",
                       initializer=init_dies_once, initargs=(str(marker),))
    assert marker.exists(), "the first worker did not run its initializer"
    assert out == [x * x for x in range(300)]


def test_a_submit_sent_to_a_worker_that_dies_starting_still_runs(
    start_method: str, tmp_path: Any
) -> None:
    marker = tmp_path / "died"
    with corelane.Pool(1, start_method=start_method, initializer=init_dies_once,
                       initargs=(str(marker),)) as pool:
        futures = [pool.submit(square, x) for x in range(5)]
        assert [f.result(timeout=30) for f in futures] == [0, 1, 4, 9, 16]
        assert list(pool.map(square, range(50))) == [x * x for x in range(50)]
    assert marker.exists()
