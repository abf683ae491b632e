"""SharedCounter / SharedValue: exact under contention, sendable into an already-running pool under
every start method, and never wedged by a worker that dies."""

from __future__ import annotations

import multiprocessing as mp
import pickle
import threading
import time

import pytest

import corelane
from corelane import Failure, SharedCounter, SharedValue, WorkerDied
from corelane.errors import Closed
from tests.ipc_tasks import add_many, hold_lock_and_die, meet_then_add_many, value_add_many


def test_exact_with_four_processes_times_100k_adds(start_method: str) -> None:
    # The pool is running before the counter exists: it travels by pickling, not at spawn.
    # The tasks meet before adding, so at least two processes add at the same time.
    with (
        corelane.Pool(4, start_method=start_method) as pool,
        SharedCounter() as counter,
        SharedCounter() as met,
    ):
        pids = list(pool.map(meet_then_add_many, [(counter, met, 100_000)] * 4, chunksize=1))
        assert counter.value == 400_000
        assert len(set(pids)) >= 2  # really several processes


def test_batched_adds_and_initial_value(start_method: str) -> None:
    with SharedCounter(initial=-7) as counter:
        corelane.map(add_many, [(counter, 50_000, 1000)] * 3, workers=3, start_method=start_method)
        assert counter.value == 150_000 - 7


def test_more_processes_than_slots_still_exact(start_method: str) -> None:
    # One slot: the first process to add owns it, the others add under the segment lock.
    with corelane.Pool(3, start_method=start_method) as pool, SharedCounter(slots=1) as counter:
        list(pool.map(add_many, [(counter, 2_000, 1)] * 6, chunksize=1))
        assert counter.value == 12_000


def test_inherited_by_a_forked_process() -> None:
    # Under fork, Process args are inherited, not pickled: the child must claim its own slot.
    ctx = mp.get_context("fork")
    with SharedCounter() as counter:
        counter.add(5)  # the parent claims a slot first
        procs = [ctx.Process(target=add_many, args=((counter, 10_000, 1),)) for _ in range(2)]
        for p in procs:
            p.start()
        counter.add(5)
        for p in procs:
            p.join(30)
        assert [p.exitcode for p in procs] == [0, 0]
        assert counter.value == 20_010


def test_threads_of_one_process() -> None:
    with SharedCounter() as counter:
        threads = [threading.Thread(target=add_many, args=((counter, 20_000, 1),)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert counter.value == 80_000


def test_shared_value_locked_adds_are_exact(start_method: str) -> None:
    with SharedValue(0) as value:
        corelane.map(value_add_many, [(value, 2_000)] * 3, workers=3, start_method=start_method)
        assert value.value == 6_000
        assert value.update(lambda v: v * 2) == 12_000
        with value.lock:
            value.value = value.value + 1
        assert value.value == 12_001


def test_shared_value_float_and_pickling() -> None:
    with SharedValue(1.5) as value:
        other = pickle.loads(pickle.dumps(value))
        other += 2.25
        assert value.value == 3.75 and value.typecode == "d"


def test_a_lock_holder_that_dies_releases_the_lock(start_method: str) -> None:
    with SharedValue(0) as value:
        out = corelane.map(hold_lock_and_die, [value], errors="return", start_method=start_method)
        assert isinstance(out[0], Failure) and isinstance(out[0].exception, WorkerDied)
        t0 = time.monotonic()
        assert value.add(1) == 1  # the kernel dropped the dead worker's flock
        assert time.monotonic() - t0 < 5


def test_dead_process_slot_is_reused(start_method: str) -> None:
    with SharedCounter(slots=2) as counter:
        for _ in range(4):  # four short-lived pools: four processes, two slots, no overflow
            corelane.map(add_many, [(counter, 100, 1)], workers=1, start_method=start_method)
        assert counter.value == 400
        assert counter._words[2] == 0  # nothing went to the locked overflow word


def test_closed_counter_cannot_be_sent() -> None:
    counter = SharedCounter()
    counter.close()
    with pytest.raises(Closed):
        pickle.dumps(counter)
    with pytest.raises(ValueError):
        SharedCounter(slots=0)
    with pytest.raises(ValueError):
        SharedValue(1, typecode="i")
