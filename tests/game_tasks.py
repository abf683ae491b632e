"""Task functions for the game-offload tests, importable by workers under every start method."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def square(x: int) -> int:
    return x * x


def echo(value: object) -> object:
    return value


def boom(message: str) -> None:
    raise ValueError(message)


def sigkill_self() -> None:
    """Die the hard way, as the out-of-memory killer would do it."""
    os.kill(os.getpid(), signal.SIGKILL)


def slow_marked(marker: str, seconds: float, value: object = None) -> object:
    """Create ``marker`` (so the test knows the task started), then sleep; return ``value``."""
    Path(marker).write_text(str(os.getpid()))
    time.sleep(seconds)
    return value


def wait_for_file(path: Path, timeout: float = 10.0) -> int:
    """Wait (bounded) until a task has started and written its pid to ``path``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text():
            return int(path.read_text())
        time.sleep(0.01)
    raise TimeoutError(f"{path} did not appear within {timeout} s")
