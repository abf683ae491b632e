"""Module-level task functions for the engine tests (importable by spawned workers)."""

from __future__ import annotations

import ctypes
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import corelane


def square(x: int) -> int:
    return x * x


def fail_on_five(x: int) -> int:
    if x == 5:
        raise ValueError(f"bad input {x}")
    return x


def sigkill_on(x: tuple[int, int]) -> int:
    value, target = x
    if value == target:
        os.kill(os.getpid(), signal.SIGKILL)
    return value


def square_then_die_once(x: tuple[int, str]) -> int:
    """Return x squared; the first call to see no file at ``flag`` creates it and SIGKILLs its
    own process a moment after returning (its result is then held by a dead worker)."""
    value, flag = x
    try:
        os.close(os.open(flag, os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return value * value
    threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGKILL)).start()
    return value * value


def segfault_on(x: tuple[int, int]) -> int:
    value, target = x
    if value == target:
        ctypes.string_at(0)  # reads address 0: SIGSEGV
    return value


def exit_on(x: tuple[int, int]) -> int:
    value, target = x
    if value == target:
        os._exit(3)
    return value


def sleep_for(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def touch_then_sleep(arg: tuple[str, int, float]) -> int:
    """Record that item ran (a file per item), then sleep."""
    directory, index, seconds = arg
    Path(directory, str(index)).touch()
    time.sleep(seconds)
    return index


def fail_first_then_sleep(arg: tuple[str, int]) -> int:
    directory, index = arg
    if index == 0:
        raise RuntimeError("first item fails")
    Path(directory, str(index)).touch()
    time.sleep(0.05)
    return index


def pid_of(_: Any) -> int:
    return os.getpid()


def init_state(value: str) -> None:
    corelane.worker_state()["model"] = value
    corelane.worker_state()["loads"] = corelane.worker_state().get("loads", 0) + 1


def read_state(_: Any) -> tuple[str, int]:
    state = corelane.worker_state()
    return state["model"], state["loads"]


def _first_to_start(marker: str) -> bool:
    """True in the first worker to get here (it creates ``marker``), False in every later one."""
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def init_dies_once(marker: str) -> None:
    """The first worker to start exits before it is ready; the ones after it start normally."""
    if _first_to_start(marker):
        os._exit(7)


def init_later_ones_sleep(marker: str, seconds: float) -> None:
    """The first worker to start is ready at once; every one after it sleeps ``seconds`` first."""
    if not _first_to_start(marker):
        time.sleep(seconds)


def init_raises() -> None:
    raise OSError("model file missing")


def return_lambda(_: Any) -> Any:
    return lambda: 1


def return_generator(_: Any) -> Any:
    return (i for i in range(3))


class NeedsTwoArgs(Exception):
    """An exception that pickles but does not unpickle (a classic multiprocessing trap)."""

    def __init__(self, a: int, b: int) -> None:
        super().__init__(f"{a}-{b}")


def raise_needs_two(x: int) -> int:
    if x == 1:
        raise NeedsTwoArgs(1, 2)
    return x


def slow_square(x: int) -> int:
    time.sleep(0.2)
    return x * x


def _explode() -> None:
    raise RuntimeError("cannot be rebuilt here")


class Unrebuildable:
    """Pickles fine, but unpickling it raises (like a class the parent cannot import)."""

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return (_explode, ())


def unrebuildable_on_three(x: int) -> Any:
    return Unrebuildable() if x == 3 else x


_LEAKED: list[bytes] = []


def leak_50mb(_: Any) -> int:
    """Keep 50 MB (touched, so resident) for the life of the worker; return its RSS after."""
    from corelane.engine.worker import rss

    _LEAKED.append(b"\x01" * (50 << 20))
    return rss()


class Scale:
    """A callable with state a caller may change between calls."""

    def __init__(self, k: int) -> None:
        self.k = k

    def __call__(self, x: int) -> int:
        return x * self.k


def sleep_then_sigkill(seconds: float) -> None:
    """Sleep, then die by SIGKILL (a worker that dies while its pool is closing)."""
    time.sleep(seconds)
    os.kill(os.getpid(), signal.SIGKILL)


def light_or_sleep(x: int) -> Any:
    """``x`` back at once for x >= 0; for x < 0 sleep ``-x`` ms and say where and when it ran."""
    if x >= 0:
        return x
    start = time.monotonic()
    time.sleep(-x / 1000)
    return os.getpid(), start, time.monotonic()


_given_queue: Any = None


def keep_queue(queue: Any) -> None:
    """Initializer: keep a multiprocessing Queue handed over in initargs."""
    global _given_queue
    _given_queue = queue


def put_on_kept_queue(x: int) -> int:
    _given_queue.put((os.getpid(), x))
    return x
