"""Per-worker setup, initializer failures, and what cannot cross the process boundary."""

from __future__ import annotations

import multiprocessing
import threading
import time
from typing import Any

import pytest

import corelane
from corelane import Failure, InitializerError, NotPicklable
from tests.engine_tasks import (
    init_later_ones_sleep,
    init_raises,
    init_state,
    keep_queue,
    pid_of,
    put_on_kept_queue,
    read_state,
    return_generator,
    square,
)


def test_initializer_fills_worker_state_once_per_worker(start_method: str) -> None:
    with corelane.Pool(2, initializer=init_state, initargs=("resnet",), start_method=start_method) as pool:
        out = list(pool.map(read_state, range(40), chunksize=1))
    assert {model for model, _ in out} == {"resnet"}
    assert {loads for _, loads in out} == {1}  # loaded once per worker, not per task


def test_a_worker_slow_to_start_does_not_hold_up_the_others(start_method: str, tmp_path: Any) -> None:
    # Work waits for a worker that is ready: nothing may be sent into the socket of one still
    # starting (nobody reads it yet), or a send bigger than the socket holds would keep the
    # manager thread waiting for that worker's initializer (30 s here) while the ready one starved.
    items = [bytes(512 << 10) for _ in range(64)]  # the first chunks: 32 items, 16 MiB each
    started = time.monotonic()
    out = corelane.map(len, items, workers=2, start_method=start_method,
                       initializer=init_later_ones_sleep, initargs=(str(tmp_path / "first"), 30.0))
    assert out == [512 << 10] * 64
    assert time.monotonic() - started < 15, "the run waited for the slow worker's initializer"


def test_a_run_abandoned_while_its_worker_starts_does_not_restart_the_worker(
    start_method: str, tmp_path: Any
) -> None:
    # Abandoning a run (here at its deadline) while its only worker is still starting must not
    # kill that worker as one that ignores a cancel: it has run nothing, and a replacement would
    # start again, initializer and all.
    marker = tmp_path / "first"
    marker.touch()  # so every worker's initializer sleeps
    with corelane.Pool(1, start_method=start_method, initializer=init_later_ones_sleep,
                       initargs=(str(marker), 1.5)) as pool:
        deadline = time.monotonic() + 10
        while not pool.pids and time.monotonic() < deadline:
            time.sleep(0.01)
        (first,) = pool.pids
        runs = pool.map(square, range(100), timeout=0.2)  # abandoned at its deadline
        with pytest.raises(TimeoutError):
            next(runs)
        time.sleep(0.8)  # past the grace a cancelled chunk gets before its worker is killed
        assert list(pool.map(pid_of, [0])) == [first], "the starting worker was replaced"


def test_initializer_that_raises_fails_fast_without_respawn_loop(start_method: str) -> None:
    t0 = time.monotonic()
    with pytest.raises(InitializerError, match="initializer raised") as info:
        corelane.map(square, range(10), workers=2, initializer=init_raises, start_method=start_method)
    assert "model file missing" in str(info.value)
    assert "init_raises" in info.value.remote_traceback
    assert time.monotonic() - t0 < 10


def test_unpicklable_argument_is_named(start_method: str) -> None:
    items: list[object] = [1, 2, threading.Lock(), 4]
    with pytest.raises(NotPicklable, match=r"item 2 \(lock"):
        corelane.map(square, items, workers=2, start_method=start_method)
    out = corelane.map(square, items, workers=2, errors="return", start_method=start_method)
    assert out[0] == 1 and out[1] == 4 and out[3] == 16
    assert isinstance(out[2], Failure) and isinstance(out[2].exception, NotPicklable)


def test_unpicklable_result_fails_only_that_item() -> None:
    out = corelane.map(return_generator, range(3), workers=2, errors="return")
    assert all(isinstance(x, Failure) and isinstance(x.exception, NotPicklable) for x in out)
    assert "result" in str(out[0].exception)


def test_unpicklable_function_fails_at_call_time() -> None:
    lock = threading.Lock()

    def uses_lock(x: int) -> int:
        with lock:
            return x

    with pytest.raises(NotPicklable, match="uses_lock"):
        corelane.map(uses_lock, range(3), workers=1)


def test_worker_state_in_parent_is_a_plain_dict() -> None:
    assert isinstance(corelane.worker_state(), dict)


def test_result_the_parent_cannot_unpickle_fails_its_items_not_the_pool() -> None:
    from tests.engine_tasks import unrebuildable_on_three

    with corelane.Pool(2) as pool:
        out = list(pool.map(unrebuildable_on_three, range(6), chunksize=1, errors="return"))
        assert [x for i, x in enumerate(out) if i != 3] == [0, 1, 2, 4, 5]
        assert isinstance(out[3], Failure) and isinstance(out[3].exception, NotPicklable)
        assert "could not unpickle" in str(out[3].exception)
        assert list(pool.map(square, range(5))) == [0, 1, 4, 9, 16]


def test_a_multiprocessing_queue_in_initargs_reaches_every_worker(start_method: str) -> None:
    # Queues, Locks and Values travel only as a process starts (multiprocessing refuses to
    # pickle them otherwise); ProcessPoolExecutor and multiprocessing.Pool take them in
    # initargs, and so does corelane, under every start method, replacements included.
    ctx = multiprocessing.get_context(start_method)
    queue = ctx.Queue()
    with corelane.Pool(2, start_method=start_method, initializer=keep_queue,
                       initargs=(queue,), max_tasks_per_child=2) as pool:
        assert sorted(pool.map(put_on_kept_queue, range(6), chunksize=1)) == list(range(6))
    got = [queue.get(timeout=30) for _ in range(6)]
    assert sorted(x for _, x in got) == list(range(6))
    assert len({pid for pid, _ in got}) >= 3  # retired workers' successors had it too
    queue.close()
    queue.join_thread()


def test_initargs_that_cannot_be_pickled_still_fail_at_once() -> None:
    with pytest.raises(NotPicklable, match="initargs"):
        corelane.Pool(1, initializer=keep_queue, initargs=(threading.Lock(),))
