"""Errors are honest: TaskError names the item and carries the worker's traceback; "return" mode
puts a Failure in place; a failure stops the rest of the work promptly."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

import corelane
from corelane import Failure, TaskError
from tests.engine_tasks import NeedsTwoArgs, fail_first_then_sleep, fail_on_five, raise_needs_two


def test_raise_mode_names_item_and_keeps_worker_traceback(start_method: str) -> None:
    with pytest.raises(TaskError) as info:
        corelane.map(fail_on_five, range(10), workers=2, start_method=start_method)
    err = info.value
    assert err.index == 5 and err.item == 5
    assert isinstance(err.__cause__, ValueError) and "bad input 5" in str(err.__cause__)
    assert "engine_tasks.py" in err.remote_traceback and "in fail_on_five" in err.remote_traceback
    assert "item 5 failed" in str(err)


def test_return_mode_puts_failure_in_place(start_method: str) -> None:
    out = corelane.map(fail_on_five, range(10), workers=2, errors="return", start_method=start_method)
    assert [x for x in out if not isinstance(x, Failure)] == [0, 1, 2, 3, 4, 6, 7, 8, 9]
    failure = out[5]
    assert isinstance(failure, Failure)
    assert failure.index == 5 and failure.item == 5 and isinstance(failure.exception, ValueError)
    assert "fail_on_five" in failure.traceback


def test_first_failure_stops_the_rest_promptly(tmp_path: Path) -> None:
    items = [(str(tmp_path), i) for i in range(200)]  # 200 x 50 ms = 10 s of work if not stopped
    with pytest.raises(TaskError):
        corelane.map(fail_first_then_sleep, items, workers=2, chunksize=1)
    ran = len(os.listdir(tmp_path))
    assert ran < 50, f"{ran} items ran after the failure"


def test_exception_that_cannot_unpickle_does_not_lose_other_results() -> None:
    out = corelane.map(raise_needs_two, range(4), workers=2, errors="return")
    assert out[0] == 0 and out[2] == 2 and out[3] == 3
    assert isinstance(out[1], Failure)
    assert "NeedsTwoArgs" in str(out[1].exception)
    assert NeedsTwoArgs.__name__ in out[1].traceback


def test_errors_survive_a_pickle_round_trip() -> None:
    for err in (
        TaskError(3, "x", ValueError("v"), "tb"),
        corelane.WorkerDied(1, 42, -9),
        corelane.TaskTimeout(2, 1.5, 42),
        corelane.NotPicklable("item 1", "reason"),
        corelane.InitializerError("init failed", "tb"),
    ):
        again = pickle.loads(pickle.dumps(err))
        assert type(again) is type(err) and str(again) == str(err)
