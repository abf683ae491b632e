"""asubmit / aimap: results, errors, bounded input, cancellation, and an event loop kept on time.

The engine owner wires ``Pool.asubmit`` / ``Pool.aimap`` as thin methods over these functions;
the tests call the functions with the pool first, as those methods will.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import statistics
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from async_tasks import hold_until
from engine_tasks import fail_on_five, sigkill_on, square, touch_then_sleep

import corelane
from corelane.engine._async import aimap, asubmit


@pytest.fixture
def pool() -> Iterator[corelane.Pool]:
    with corelane.Pool(2) as p:
        yield p


def _collect(agen: AsyncIterator[int]) -> list[int]:
    async def run() -> list[int]:
        return [x async for x in agen]

    return asyncio.run(run())


def test_asubmit_returns_the_result_and_raises_the_tasks_exception(pool: corelane.Pool) -> None:
    async def run() -> int:
        assert await asubmit(pool, pow, 2, 10) == 1024
        with pytest.raises(ValueError, match="bad input 5") as info:  # as Pool.submit raises
            await asubmit(pool, fail_on_five, 5)
        assert isinstance(info.value.__cause__, corelane.errors.RemoteTraceback)
        return await asubmit(pool, int, "ff", base=16)

    assert asyncio.run(run()) == 255


def test_aimap_ordered_unordered_and_async_input(pool: corelane.Pool) -> None:
    assert _collect(aimap(pool, square, range(200))) == [i * i for i in range(200)]
    assert sorted(_collect(aimap(pool, square, range(200), ordered=False))) == [
        i * i for i in range(200)]

    async def numbers() -> AsyncIterator[int]:
        for i in range(50):
            await asyncio.sleep(0)
            yield i

    assert _collect(aimap(pool, square, numbers(), window=3)) == [i * i for i in range(50)]
    assert _collect(aimap(pool, square, [])) == []


def test_aimap_reads_its_input_no_further_than_the_window(pool: corelane.Pool) -> None:
    read = 0

    def items() -> Iterator[int]:
        nonlocal read
        for i in range(100):
            read += 1
            yield i

    async def run() -> None:
        consumed = 0
        async for _ in aimap(pool, square, items(), window=5):
            consumed += 1
            assert read <= consumed + 5

    asyncio.run(run())
    assert read == 100


def test_aimap_errors_name_the_items_index(pool: corelane.Pool) -> None:
    with pytest.raises(corelane.TaskError) as info:
        _collect(aimap(pool, fail_on_five, range(10)))
    assert info.value.index == 5 and info.value.item == 5
    assert isinstance(info.value.__cause__, ValueError)
    with pytest.raises(corelane.WorkerDied) as died:
        _collect(aimap(pool, sigkill_on, [(i, 3) for i in range(6)]))
    assert died.value.index == 3 and died.value.signal == signal.SIGKILL


def test_cancelling_the_awaiting_task_cancels_a_queued_call(
    pool: corelane.Pool, tmp_path: Path
) -> None:
    release = str(tmp_path / "release")

    async def run() -> None:
        # Both workers held until we say so, however slowly this machine runs today.
        busy = [asyncio.ensure_future(asubmit(pool, hold_until, release)) for _ in range(2)]
        await asyncio.sleep(0.1)
        queued = asyncio.ensure_future(asubmit(pool, touch_then_sleep, (str(tmp_path), 1, 0)))
        await asyncio.sleep(0.05)
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        Path(release).touch()
        assert await asyncio.gather(*busy) == [release, release]
        assert await asubmit(pool, square, 3) == 9  # the pool is free again

    asyncio.run(run())
    assert not (tmp_path / "1").exists()  # the cancelled call never ran


def test_closing_aimap_early_cancels_what_has_not_started(
    pool: corelane.Pool, tmp_path: Path
) -> None:
    async def run() -> None:
        items = [(str(tmp_path), i, 0.2) for i in range(12)]
        async with contextlib.aclosing(aimap(pool, touch_then_sleep, items, window=12)) as it:
            async for _ in it:
                break
        await asyncio.sleep(0.6)  # what was running has finished by now

    asyncio.run(run())
    ran = len(list(tmp_path.iterdir()))
    assert 1 <= ran <= 5  # the first result, what ran beside it, not the 12 items


TICK = 0.001


async def _ticker(stop: asyncio.Event, lateness: list[float]) -> None:
    """Wake every 1 ms on a fixed schedule; record how late each wake-up is."""
    loop = asyncio.get_running_loop()
    due = loop.time()
    while not stop.is_set():
        due += TICK
        await asyncio.sleep(max(0.0, due - loop.time()))
        lateness.append(loop.time() - due)
        if loop.time() - due > 0.05:
            due = loop.time()  # a long stall: measure the next ticks from now, not a backlog


def _p99_ms(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] * 1000


async def _idle_lateness(seconds: float) -> list[float]:
    stop, lateness = asyncio.Event(), list[float]()
    ticks = asyncio.ensure_future(_ticker(stop, lateness))
    await asyncio.sleep(seconds)
    stop.set()
    await ticks
    return lateness


def test_a_1ms_ticker_stays_on_time_while_10000_tasks_run(pool: corelane.Pool) -> None:
    async def run() -> tuple[list[float], list[float], float]:
        idle = await _idle_lateness(1.0)
        stop, busy = asyncio.Event(), list[float]()
        ticks = asyncio.ensure_future(_ticker(stop, busy))
        start = time.perf_counter()
        total = 0
        async for value in aimap(pool, square, range(10_000), ordered=False):
            total += value
        elapsed = time.perf_counter() - start
        stop.set()
        await ticks
        idle += await _idle_lateness(1.0)
        assert total == sum(i * i for i in range(10_000))
        return idle, busy, elapsed

    # The target is 5 ms. A machine whose idle loop already misses it (other processes on few
    # cores) cannot tell whether corelane would: say so with both figures instead of passing
    # or failing on noise. Up to three tries: a loop that corelane blocks misses every time, a
    # noisy minute on a shared 2-core machine does not.
    tries = []
    for _ in range(3):
        idle, busy, elapsed = asyncio.run(run())
        busy_p99, idle_p99 = _p99_ms(busy), _p99_ms(idle)
        figures = (f"1 ms ticker p99 lateness: {busy_p99:.2f} ms while 10,000 tasks ran "
                   f"({elapsed:.2f} s), {idle_p99:.2f} ms with the loop otherwise idle")
        print(figures)
        tries.append(figures)
        if busy_p99 < 5.0:
            return
        if idle_p99 >= 5.0:
            pytest.skip(f"this machine is too busy to measure the 5 ms target: {figures}")
    raise AssertionError("; ".join(tries))


def test_pool_methods_are_the_async_front_ends() -> None:
    async def run(pool: corelane.Pool) -> tuple[int, list[int]]:
        one = await pool.asubmit(pow, 2, 5)
        many = [r async for r in pool.aimap(abs, [-1, -2, -3])]
        return one, many

    with corelane.Pool(2) as pool:
        assert asyncio.run(run(pool)) == (32, [1, 2, 3])
