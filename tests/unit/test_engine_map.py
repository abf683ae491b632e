"""map / imap / imap_unordered return the right results, in the right order, under every start method."""

from __future__ import annotations

import sys

import pytest

import corelane
from corelane.events import ProgressEvent, RunFinished
from tests.engine_tasks import square


def test_map_matches_builtin(start_method: str) -> None:
    data = list(range(5000))
    assert corelane.map(square, data, workers=2, start_method=start_method) == [x * x for x in data]


def test_imap_is_ordered_and_unordered_has_same_set(start_method: str) -> None:
    with corelane.Pool(2, start_method=start_method) as pool:
        assert list(pool.imap(square, range(300))) == [x * x for x in range(300)]
        got = list(pool.imap_unordered(square, range(300)))
        assert sorted(got) == [x * x for x in range(300)]


def test_lambdas_and_closures_run(start_method: str) -> None:
    offset = 7

    def add_offset(x: int) -> int:  # a closure: plain pickle cannot send it
        return x + offset

    with corelane.Pool(2, start_method=start_method) as pool:
        assert list(pool.map(lambda x: x * 3, range(10))) == [x * 3 for x in range(10)]
        assert list(pool.map(add_offset, range(10))) == [x + 7 for x in range(10)]


def test_empty_input_and_forced_chunksize() -> None:
    with corelane.Pool(2) as pool:
        assert list(pool.map(square, [])) == []
        assert list(pool.map(square, range(101), chunksize=10)) == [x * x for x in range(101)]
        with pytest.raises(ValueError, match="chunksize"):
            list(pool.map(square, range(3), chunksize=0))
        with pytest.raises(ValueError, match="errors"):
            list(pool.map(square, range(3), errors="ignore"))  # type: ignore[arg-type]


def test_generator_input_without_len() -> None:
    assert corelane.map(square, (x for x in range(1000)), workers=2) == [x * x for x in range(1000)]


def test_progress_callable_gets_typed_events() -> None:
    events: list[object] = []
    corelane.map(square, range(2000), workers=2, progress=events.append)
    progress = [e for e in events if isinstance(e, ProgressEvent)]
    finished = [e for e in events if isinstance(e, RunFinished)]
    assert progress and len(finished) == 1
    assert finished[0].done == 2000 and finished[0].total == 2000 and finished[0].state == "finished"
    assert progress[-1].done == 2000 and progress[-1].rate > 0
    assert all(a.done <= b.done for a, b in zip(progress, progress[1:], strict=False))


def test_progress_bar_draws_on_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    corelane.map(square, range(500), workers=2, progress=True)
    err = capfd.readouterr().err
    assert "500/500" in err


def test_pool_is_reusable_and_reports_state() -> None:
    pool = corelane.Pool(2)
    try:
        for n in (10, 100, 1000):
            assert list(pool.map(square, range(n))) == [x * x for x in range(n)]
        assert "open" in repr(pool)
    finally:
        pool.close()
    with pytest.raises(corelane.errors.Closed):
        list(pool.map(square, range(3)))


def test_exports_are_exactly_all() -> None:
    public = {name for name in dir(corelane) if not name.startswith("_")}
    for name in corelane.__all__:
        getattr(corelane, name)  # every advertised name resolves (lazy ones included)
    assert set(corelane.__all__) <= public
    assert sys.modules["corelane"] is corelane
