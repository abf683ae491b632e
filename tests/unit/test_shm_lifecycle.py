"""Exactly one owner unlinks each segment: on close, at exit, after an exception, after a worker
is SIGKILLed, and (through the resource tracker) after the owner itself is SIGKILLed. Workers that
attach never unlink and never make the resource tracker complain."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import corelane
from corelane import Failure, SharedArray, WorkerDied, share
from corelane.shm import _segments
from tests.ipc_tasks import kill_self, make_owned_array, touch_then_die

ROOT = Path(__file__).resolve().parents[2]

OWNER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    import corelane
    from corelane import SharedArray, SharedCounter, SharedValue, share
    from tests.ipc_tasks import add_many, array_total

    mode, method = sys.argv[1], sys.argv[2]
    arr = share(np.arange(1000.0))
    big = SharedArray.zeros((100, 100))
    counter = SharedCounter()
    value = SharedValue(0.5)
    view = arr[10:20]
    with corelane.Pool(2, start_method=method) as pool:  # workers attach to everything
        assert list(pool.map(array_total, [arr, view, big])) == [499500.0, 145.0, 0.0]
        list(pool.map(add_many, [(counter, 10, 1)] * 2))
        assert counter.value == 20
        print(arr.name, big.name, counter.name, value.name, flush=True)
        if mode == "sigkill":
            print("ready", flush=True)
            time.sleep(60)
    if mode == "exception":
        raise RuntimeError("the owner failed")
    """
)


def _run_owner(mode: str, method: str) -> tuple[list[str], str]:
    proc = subprocess.run(
        [sys.executable, "-c", OWNER, mode, method],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    names = proc.stdout.split()
    return names, proc.stderr


def _gone(names: list[str], within: float) -> bool:
    deadline = time.monotonic() + within
    while any(_segments.exists(n) for n in names):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.parametrize("mode", ["normal", "exception"])
def test_owner_exit_unlinks_everything(start_method: str, mode: str) -> None:
    names, stderr = _run_owner(mode, start_method)
    assert len(names) == 4 and all(n.startswith("corelane_") for n in names), stderr
    assert _gone(names, within=0.0), "segments must be gone as soon as the owner has exited"
    if mode == "exception":
        assert "RuntimeError: the owner failed" in stderr
    # Workers attached without registering: the resource tracker has nothing to clean or warn.
    assert "resource_tracker" not in stderr and "leaked" not in stderr, stderr


def test_owner_sigkilled_the_tracker_unlinks(start_method: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", OWNER, "sigkill", start_method],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        names = proc.stdout.readline().split()
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.stderr else ""
        assert len(names) == 4 and all(_segments.exists(n) for n in names)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        proc.kill()
        proc.wait(10)
        if proc.stdout:
            proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()
    # The tracker unlinks once every holder of its pipe is gone (workers die with their parent).
    assert _gone(names, within=10.0), [n for n in names if _segments.exists(n)]


def test_worker_sigkilled_while_attached(start_method: str) -> None:
    with share(np.zeros(8)) as arr:
        out = corelane.map(touch_then_die, [arr], errors="return", start_method=start_method)
        assert isinstance(out[0], Failure) and isinstance(out[0].exception, WorkerDied)
        assert arr[0] == 42.0  # its write landed before it died
        assert _segments.exists(arr.name)  # a dying attacher unlinks nothing
        assert corelane.map(kill_self, [1], errors="return", start_method=start_method)[0] is not None
    assert not _segments.exists(arr.name)


def test_exception_in_with_block_unlinks() -> None:
    with pytest.raises(ZeroDivisionError), SharedArray.zeros(10) as arr:
        name = arr.name
        raise ZeroDivisionError
    assert not _segments.exists(name)


def test_garbage_collected_owner_unlinks() -> None:
    arr = SharedArray.zeros(10)
    name = arr.name
    view = arr[2:5]
    del arr
    assert _segments.exists(name)  # the view still uses the segment
    del view
    assert not _segments.exists(name)


def test_array_made_in_a_worker_comes_back_by_value(start_method: str) -> None:
    # A worker owns what it creates and unlinks it when the task drops it, so returning it sends
    # the data (ownership does not move to the parent) and no segment outlives the task.
    with corelane.Pool(1, start_method=start_method) as pool:
        out = list(pool.map(make_owned_array, [4, 0]))
    assert [type(a) for a in out] == [np.ndarray, np.ndarray]
    assert out[0].tolist() == [0.0] * 4 and out[1].shape == (0,)
