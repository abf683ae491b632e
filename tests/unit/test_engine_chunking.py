"""The chunk policy (engine/chunking.py): short inputs in one trip, chunks with a floor in time
at the end of an input, and a function's measured cost carried to its next run."""

from __future__ import annotations

import pytest

import corelane
from corelane.engine import pool as pool_module
from corelane.engine.chunking import (
    BUDGET_FACTOR,
    FLOOR_SECONDS,
    INITIAL_CHUNK,
    TARGET_SECONDS,
    Chunker,
)
from tests.engine_tasks import Scale, light_or_sleep, square


def cuts(chunker: Chunker, total: int) -> list[int]:
    """The sizes a run of ``total`` items is cut into (as Job.take cuts an eager run)."""
    sizes, done = [], 0
    while done < total:
        size = min(chunker.size(done), total - done)
        sizes.append(size)
        done += size
    return sizes


def test_a_short_input_goes_out_whole_two_chunks_a_worker() -> None:
    chunker = Chunker(2, total=100)
    assert cuts(chunker, 100) == [25, 25, 25, 25]


def test_unmeasured_runs_start_small() -> None:
    chunker = Chunker(2, total=1_000_000)
    assert chunker.size(0) == INITIAL_CHUNK


@pytest.mark.parametrize("workers", [2, 3, 4])
def test_little_work_left_is_split_once_over_the_workers(workers: int) -> None:
    # 20,000 items of 200 ns (4 ms in all): one equal share per worker, not a halving series
    # (10k, 5k, 2.5k ...) and not one chunk for one worker while the others idle.
    chunker = Chunker(workers, total=20_000)
    chunker.per_item = 200e-9
    sizes = cuts(chunker, 20_000)
    assert len(sizes) == workers
    assert max(sizes) - min(sizes) <= 1


def test_too_little_to_split_goes_in_one_chunk() -> None:
    chunker = Chunker(4, total=1000)
    chunker.per_item = 100e-9  # 0.1 ms in all: a round trip per share would cost more
    assert cuts(chunker, 1000) == [1000]


def test_the_end_of_an_input_comes_in_equal_chunks_of_the_floor_a_multiple_of_workers() -> None:
    total = 2_000_000
    chunker = Chunker(2, total=total)
    chunker.per_item = 100e-9  # 200 ms of work: the tail rule would cut 1/8 of what is left
    start = total - 300_000  # 30 ms left: tail chunks would be under the floor
    sizes, done = [], start
    while done < total:
        sizes.append(min(chunker.size(done), total - done))
        done += sizes[-1]
    assert len(sizes) % 2 == 0  # the last round ends on both workers together
    assert max(sizes) - min(sizes) <= 1, sizes  # equal: no halving, no sliver for one more trip
    assert all(FLOOR_SECONDS <= s * chunker.per_item < 2 * FLOOR_SECONDS for s in sizes), sizes


def test_end_chunks_shrink_when_items_prove_heavier() -> None:
    chunker = Chunker(2, total=10_000)
    chunker.per_item = 1e-6  # 10 ms left: two chunks of 5 ms planned
    first = chunker.size(0)
    chunker.observe(0.5, 1000)  # ... but these items take 500 us each
    assert chunker.size(first) < first / 10


def test_a_chunks_budget_follows_the_work_it_was_cut_for() -> None:
    chunker = Chunker(2, total=1_000_000)
    assert chunker.budget(32) == TARGET_SECONDS * BUDGET_FACTOR  # unmeasured: a whole chunk's
    chunker.per_item = 1e-6
    assert chunker.budget(50_000) == pytest.approx(TARGET_SECONDS * BUDGET_FACTOR)  # 50 ms
    assert chunker.budget(10_000) == pytest.approx(0.01 * BUDGET_FACTOR)
    assert chunker.budget(100) == pytest.approx(FLOOR_SECONDS * BUDGET_FACTOR)  # the floor
    assert Chunker(2, fixed=10).budget(10) == 0.0  # chunksize= given: never handed back


def test_handed_back_items_are_cut_again_from_the_new_estimate() -> None:
    chunker = Chunker(2, total=10_000)
    chunker.per_item = 1e-6
    chunker.size(9_000)  # the end: 1 ms of work left, planned as two shares of 0.5 ms
    assert chunker.recut(1000) == [500, 500]  # at the old estimate
    chunker.observe(0.02, 10)  # ... but items take 2 ms each
    sizes = chunker.recut(1000)
    assert sum(sizes) == 1000 and len(sizes) > 100
    assert max(sizes) <= 1.25 * min(sizes[:-1]) + 1  # even pieces, no sliver
    assert Chunker(2, fixed=7).recut(30) == [30]


def test_a_heavy_tail_after_light_items_runs_on_every_worker_at_once() -> None:
    # 3,000 instant items, then 40 that sleep 20 ms. The end is cut for instant items, so one
    # chunk holds the whole heavy tail; over its budget it hands the rest back, cut again for
    # what items now cost, and both workers share the tail instead of taking it in turns.
    items = list(range(3000)) + [-20] * 40
    with corelane.Pool(2) as pool:
        out = list(pool.map(light_or_sleep, items))
    assert out[:3000] == list(range(3000))
    spans = sorted(out[3000:], key=lambda s: s[1])
    assert len({pid for pid, _, _ in spans}) == 2
    events = sorted([(start, 1) for _, start, _ in spans] + [(end, -1) for _, _, end in spans])
    running, last, busy, both = 0, 0.0, 0.0, 0.0
    for t, step in events:
        if running:
            busy += t - last
        if running >= 2:
            both += t - last
        running += step
        last = t
    assert both >= 0.5 * busy, f"both workers ran heavy items {both / busy:.0%} of the time"


def test_the_next_run_starts_from_the_whole_runs_cost_not_its_last_chunks() -> None:
    # A cold worker's first small chunk reads 30 us an item (fixed costs spread over 32 items);
    # the run's bulk then costs 0.2 us. The moving average still says ~15 us; the hint carried
    # to the next run is the item-weighted mean, within 30% of the bulk's cost.
    chunker = Chunker(2, total=20_032)
    assert chunker.mean() is None
    chunker.observe(0.001, 32)
    chunker.observe(0.004, 20_000)
    assert chunker.per_item is not None and chunker.per_item > 10e-6
    mean = chunker.mean()
    assert mean is not None and 0.2e-6 <= mean <= 0.26e-6


def test_a_functions_cost_carries_to_its_next_run_in_a_new_pool() -> None:
    with corelane.Pool(2) as pool:
        assert list(pool.map(square, range(5000))) == [x * x for x in range(5000)]
    record = pool_module._fn(square)
    assert record.per_item is not None and record.per_item > 0
    with corelane.Pool(2) as pool:
        before = pool.statistics().chunks_sent
        assert list(pool.map(square, range(20_000))) == [x * x for x in range(20_000)]
        # Known cost from the start: no ramp of small first chunks.
        assert pool.statistics().chunks_sent - before <= 8


def test_a_callable_changed_between_calls_runs_as_it_is_now(start_method: str) -> None:
    scale = Scale(2)
    with corelane.Pool(2, start_method=start_method) as pool:
        assert list(pool.map(scale, [1, 2, 3])) == [2, 4, 6]
        assert pool.submit(scale, 5).result(timeout=30) == 10
        scale.k = 3  # the same object: its pickle must be taken again, not reused
        assert list(pool.map(scale, [1, 2, 3])) == [3, 6, 9]
        assert pool.submit(scale, 5).result(timeout=30) == 15
        assert corelane.map(scale, [1, 2], workers=1, start_method=start_method) == [3, 6]
