"""Module-level task functions for the shm/ipc tests (importable by spawn and forkserver workers)."""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np

# ---------------------------------------------------------------- shared memory


def double_in_place(arr: Any) -> str:
    arr *= 2
    return str(arr.name)


def fill(args: tuple[Any, float]) -> bool:
    arr, value = args
    arr[...] = value
    return bool(arr.is_shared and not arr.is_owner)


def sum_range(args: tuple[Any, int, int]) -> float:
    arr, lo, hi = args
    return float(arr[lo:hi].sum())


def kill_self(_: Any) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def touch_then_die(arr: Any) -> None:
    arr[0] = 42.0
    os.kill(os.getpid(), signal.SIGKILL)


def make_owned_array(n: int) -> Any:
    from corelane import SharedArray

    return SharedArray.zeros(n)


def add_many(args: tuple[Any, int, int]) -> int:
    """Add ``n`` to the counter in steps of ``batch``."""
    counter, n, batch = args
    add = counter.add
    if batch == 1:
        for _ in range(n):
            add()
    else:
        for _ in range(n // batch):
            add(batch)
    return os.getpid()


def meet_then_add_many(args: tuple[Any, Any, int]) -> int:
    """Wait (at most 60 s) until two tasks run at once, then add ``n`` one at a time.

    The meeting makes "several processes added" a fact, not a race: a spawn pool under load can
    bring one worker up long before the others, and that worker could otherwise run every task."""
    counter, met, n = args
    met.add()
    deadline = time.monotonic() + 60
    while met.value < 2 and time.monotonic() < deadline:
        time.sleep(0.005)
    add = counter.add
    for _ in range(n):
        add()
    return os.getpid()


def value_add_many(args: tuple[Any, int]) -> int:
    value, n = args
    for _ in range(n):
        value.add(1)
    return os.getpid()


def hold_lock_and_die(value: Any) -> None:
    value.lock.acquire()
    os.kill(os.getpid(), signal.SIGKILL)


# ---------------------------------------------------------------- pipelines


def inc(x: int) -> int:
    return x + 1


def square(x: int) -> int:
    return x * x


def slow_inc(x: int) -> int:
    time.sleep(0.001)
    return x + 1


def fail_on_13(x: int) -> int:
    if x == 13:
        raise ValueError(f"unlucky {x}")
    return x


def die_on_7(x: int) -> int:
    if x == 7:
        os.kill(os.getpid(), signal.SIGKILL)
    return x


def sleepy(x: int) -> int:
    time.sleep(0.05)
    return x


def meet_pid_of(folder: str, x: int) -> tuple[int, int]:
    """Leave this process's name in ``folder``; wait (at most 30 s) until two processes have."""
    Path(folder, str(os.getpid())).touch()
    deadline = time.monotonic() + 30
    while len(os.listdir(folder)) < 2 and time.monotonic() < deadline:
        time.sleep(0.005)
    return x, os.getpid()


def log_and_return(x: int) -> int:
    log = logging.getLogger("corelane.test.worker")
    log.info("item %d first", x)
    log.info("item %d second", x)
    log.debug("item %d debug", x)
    return x


def count_and_pass(args: tuple[Any, int]) -> int:
    counter, x = args
    counter.add()
    return x


def array_total(arr: Any) -> float:
    return float(np.asarray(arr).sum())


def log_exception(x: int) -> int:
    try:
        raise KeyError(f"missing {x}")
    except KeyError:
        logging.getLogger("corelane.test.worker").exception("item %d failed", x)
    return x


def stamp_sleep(x: int) -> tuple[int, int, float, float]:
    """Sleep 1 s; say who ran it and when."""
    start = time.time()
    time.sleep(1.0)
    return x, os.getpid(), start, time.time()
