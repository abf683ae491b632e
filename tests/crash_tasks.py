"""Faults to inject at every stage an item passes through (the crash table's ammunition).

A :class:`Bomb` is an item that goes off at one stage: while the parent pickles it, while a
worker unpickles it, when the task runs on it, while the worker pickles its result, while the
worker frees it after sending the result, or while the parent unpickles its result. Each fault
is one way a process can end or fail: a segfault, ``os._exit``, libc's ``exit``, SIGKILL,
``SystemExit`` or an ordinary exception. Bombs know their parent's pid, so the parent's own
copies never go off where only a worker's should.
"""

from __future__ import annotations

import ctypes
import os
import signal
import time
from typing import Any

FAULTS = ["segfault", "os_exit", "libc_exit", "sigkill", "systemexit", "exception"]
DEATHS = {"segfault", "os_exit", "libc_exit", "sigkill"}
WORKER_STAGES = ["unpickle_arg", "call", "pickle_result", "free_arg"]
PARENT_STAGES = ["pickle_arg", "unpickle_result"]  # only faults a process survives make sense


class Injected(Exception):
    """The ordinary exception a bomb raises."""


def go_off(fault: str) -> None:
    if fault == "segfault":
        ctypes.string_at(0)
    elif fault == "os_exit":
        os._exit(3)
    elif fault == "libc_exit":
        ctypes.CDLL(None).exit(4)
    elif fault == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(10)
    elif fault == "systemexit":
        raise SystemExit(5)
    raise Injected(f"injected {fault}")


def _load_in_worker(value: int, fault: str, parent: int) -> Bomb:
    if os.getpid() != parent:
        go_off(fault)
    return Bomb(value, "unpickle_arg", fault, parent)


def _load_in_parent(value: int, fault: str, parent: int) -> int:
    if os.getpid() == parent:
        go_off(fault)
    return value


class Bomb:
    def __init__(self, value: int, stage: str, fault: str, parent: int | None = None) -> None:
        self.value = value
        self.stage = stage
        self.fault = fault
        self.parent = os.getpid() if parent is None else parent

    def __reduce__(self) -> Any:
        if self.stage == "pickle_arg" and os.getpid() == self.parent:
            go_off(self.fault)
        if self.stage == "unpickle_arg":
            return (_load_in_worker, (self.value, self.fault, self.parent))
        return (Bomb, (self.value, self.stage, self.fault, self.parent))

    def __del__(self) -> None:
        if self.stage == "free_arg" and os.getpid() != self.parent:
            go_off(self.fault)


class ResultBomb:
    def __init__(self, value: int, stage: str, fault: str, parent: int) -> None:
        self.value = value
        self.stage = stage
        self.fault = fault
        self.parent = parent

    def __reduce__(self) -> Any:
        if self.stage == "pickle_result":
            go_off(self.fault)
        return (_load_in_parent, (self.value, self.fault, self.parent))


def crash_call(x: Any) -> Any:
    """The task: plain ints come back as they are; a bomb goes off at its stage."""
    if not isinstance(x, Bomb):
        return x
    if x.stage == "call":
        go_off(x.fault)
    if x.stage in ("pickle_result", "unpickle_result"):
        return ResultBomb(x.value, x.stage, x.fault, x.parent)
    return x.value


def slow_value(x: int) -> int:
    time.sleep(0.3)
    return x
