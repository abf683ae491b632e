"""Pipeline: stages of worker processes joined by bounded queues, on top of the engine."""

from __future__ import annotations

import functools
import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from corelane import Failure, MessageType, Pipeline, SharedCounter
from corelane.errors import StageError, TaskError, WorkerDied
from corelane.events import ProgressEvent, RunFinished
from tests.ipc_tasks import (
    count_and_pass,
    die_on_7,
    fail_on_13,
    inc,
    meet_pid_of,
    sleepy,
    square,
)


@pytest.mark.parametrize("workers", [1, 3])
def test_ordered_results_with_one_and_many_consumers(start_method: str, workers: int) -> None:
    pipe = (
        Pipeline(range(300), start_method=start_method)
        .stage(inc, workers=workers)
        .stage(square, workers=workers, name="square")
    )
    assert pipe.stages == ["inc", "square"]
    assert pipe.run() == [(x + 1) ** 2 for x in range(300)]


def test_unordered_and_really_parallel(start_method: str, tmp_path: Path) -> None:
    # Items wait until two processes have one, so a pool that brings one worker up long before the
    # others (spawn, under load) cannot make this pass or fail by timing.
    meet = functools.partial(meet_pid_of, str(tmp_path))
    out = Pipeline(range(60), ordered=False, start_method=start_method).stage(meet, workers=3).run()
    assert sorted(x for x, _ in out) == list(range(60))
    assert len({pid for _, pid in out}) >= 2  # several consumers of the same queue took items


def test_exception_in_the_middle_stage_stops_everything(start_method: str) -> None:
    # An endless source: the pipeline can only end by stopping on the error.
    pipe = (
        Pipeline(itertools.count(), start_method=start_method)
        .stage(inc, workers=2)
        .stage(fail_on_13, workers=2, name="check")
        .stage(square)
    )
    with pytest.raises(StageError) as info:
        pipe.run()
    err = info.value
    assert err.stage == "check"
    assert isinstance(err.cause, TaskError)
    assert err.cause.item == 13 and err.cause.index == 12  # the stage's item, its source index
    assert isinstance(err.cause.__cause__, ValueError)
    assert "ipc_tasks.py" in err.cause.remote_traceback and "unlucky 13" in str(err)


def test_errors_return_yields_failures_in_place() -> None:
    out = Pipeline(range(30), errors="return").stage(inc).stage(fail_on_13, name="check").stage(square).run()
    failures = [o for o in out if isinstance(o, Failure)]
    assert len(out) == 30 and len(failures) == 1
    (f,) = failures
    assert out[12] is f and f.index == 12 and f.item == 13
    assert isinstance(f.exception, StageError) and f.exception.stage == "check"
    assert [o for i, o in enumerate(out) if i != 12] == [(x + 1) ** 2 for x in range(30) if x != 12]


def test_sigkilled_stage_worker_does_not_hang(start_method: str) -> None:
    pipe = Pipeline(range(20), start_method=start_method).stage(inc).stage(die_on_7, workers=2).stage(inc)
    with pytest.raises(StageError) as info:
        pipe.run()
    assert isinstance(info.value.cause, WorkerDied) and info.value.cause.index == 6
    out = (
        Pipeline(range(20), errors="return", start_method=start_method)
        .stage(inc).stage(die_on_7, workers=2).stage(inc).run()
    )
    assert isinstance(out[6], Failure) and isinstance(out[6].exception.cause, WorkerDied)
    assert [o for i, o in enumerate(out) if i != 6] == [x + 2 for x in range(20) if x != 6]


class CountingSource:
    """An endless source that counts how far it has been read."""

    def __init__(self) -> None:
        self.read = 0

    def __iter__(self) -> Iterator[int]:
        for i in itertools.count():
            self.read = i + 1
            yield i


def test_endless_source_is_read_only_as_fast_as_results_are_consumed() -> None:
    source = CountingSource()
    it = iter(Pipeline(source, buffer=4).stage(inc, workers=2, chunksize=4).stage(inc, chunksize=4))
    try:
        assert [next(it) for _ in range(50)] == [x + 2 for x in range(50)]
        time.sleep(0.5)  # the consumer stalls: everything upstream must stop reading
        stalled = source.read
        time.sleep(0.5)
        assert source.read == stalled  # flat: no reading while nobody consumes
        assert stalled < 50 + 200  # bounded by the windows and queues, not by the source
        assert next(it) == 52
    finally:
        it.close()  # type: ignore[attr-defined]


def test_breaking_out_early_stops_the_workers() -> None:
    for x in Pipeline(itertools.count()).stage(sleepy, workers=2).stage(inc):
        if x >= 3:
            break
    # the no_leaks fixture checks that no worker is left running


def test_progress_events_per_stage() -> None:
    events: list[Any] = []
    lock = threading.Lock()

    def sink(event: Any) -> None:
        with lock:
            events.append(event)

    Pipeline(range(40), progress=sink).stage(inc, name="a").stage(inc, name="b").run()
    finished = {e.label: e for e in events if isinstance(e, RunFinished)}
    assert set(finished) == {"a", "b"}
    assert all(e.done == 40 and e.total == 40 and e.state == "finished" for e in finished.values())
    assert {e.label for e in events if isinstance(e, ProgressEvent)} == {"a", "b"}


def test_failing_source_is_named() -> None:
    def source() -> Iterator[int]:
        yield 1
        raise OSError("disk gone")

    with pytest.raises(StageError) as info:
        Pipeline(source()).stage(inc).run()
    assert info.value.stage == "source" and isinstance(info.value.cause, OSError)


def test_lambdas_closures_and_a_shared_counter_in_stages(start_method: str) -> None:
    offset = 10
    with SharedCounter() as seen:
        out = (
            Pipeline(range(50), start_method=start_method)
            .stage(lambda x: x + offset, workers=2)
            .stage(functools.partial(_pair, seen), workers=2)
            .stage(count_and_pass)
            .run()
        )
        assert out == [x + 10 for x in range(50)]
        assert seen.value == 50


def _pair(counter: SharedCounter, x: int) -> tuple[SharedCounter, int]:
    return counter, x


def test_no_stage_and_bad_arguments() -> None:
    assert Pipeline([1, 2]).run() == [1, 2]
    with pytest.raises(ValueError):
        Pipeline([], errors="ignore")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Pipeline([]).stage(inc, workers=0)
    assert MessageType.DONE == "done" and MessageType("data") is MessageType.DATA


def test_a_stage_fed_item_by_item_never_waits_for_the_managers_idle_tick() -> None:
    # Regression: a wake-up lost between the manager's read of its pipe and its flag made each
    # 8-item downstream chunk wait up to the 0.5 s idle tick (3,000 items: minutes, not seconds).
    t0 = time.monotonic()
    out = Pipeline(range(3000), start_method="fork").stage(abs).stage(abs).stage(abs).run()
    assert out == list(range(3000))
    assert time.monotonic() - t0 < 15


def test_a_stage_behind_a_slow_one_starts_on_the_first_results() -> None:
    # The second stage takes what the first has produced; it must not wait to fill a chunk
    # (an adaptive chunk of a cheap stage is thousands of items: the whole run, here).
    t0 = time.monotonic()
    it = iter(Pipeline(range(40), start_method="fork").stage(sleepy).stage(inc))
    try:
        assert next(it) == 1
        first = time.monotonic() - t0
        assert list(it) == list(range(2, 41))
        whole = time.monotonic() - t0
    finally:
        it.close()  # type: ignore[attr-defined]
    assert whole >= 2.0  # 40 items of 50 ms on one worker
    assert first < whole / 2, (first, whole)


def test_a_cheap_downstream_stage_gets_full_chunks_not_a_message_per_item(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import corelane.ipc.pipeline as pipeline_module

    pools: list[Any] = []

    class Recorded(pipeline_module.Pool):  # type: ignore[misc,name-defined]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            pools.append(self)

        def terminate(self) -> None:  # keep the counts readable after the run
            self.last_statistics = self.statistics()
            super().terminate()

        def close(self, timeout: float | None = None) -> None:
            self.last_statistics = self.statistics()
            super().close(timeout)

    monkeypatch.setattr(pipeline_module, "Pool", Recorded)
    assert Pipeline(range(20_000), start_method="fork").stage(inc).stage(inc).run() == list(
        range(2, 20_002))
    assert len(pools) == 2
    # 20,000 cheap items: a fixed 8-item chunk would be 2,500 messages.
    assert pools[1].last_statistics.chunks_sent < 200, pools[1].last_statistics


def test_a_stage_fed_a_trickle_keeps_all_its_workers_busy() -> None:
    # Items arrive a few at a time from a slow first stage; the second stage's idle workers
    # must take them as they come, not wait for the (1 s) chunk already out to return.
    from tests.ipc_tasks import stamp_sleep

    out = (Pipeline(range(8), start_method="fork").stage(sleepy).stage(stamp_sleep, workers=4)
           .run())
    assert [x for x, *_ in out] == list(range(8))
    first_start: dict[int, float] = {}
    for _, pid, start, _ in out:
        first_start[pid] = min(start, first_start.get(pid, start))
    starts = sorted(first_start.values())
    assert len(starts) == 4
    # The first items go to two workers; the other two start on the next items stage 1
    # sends (~0.1 s later), not once the first chunks return (1 s).
    assert starts[3] - starts[0] < 0.6, starts
