"""Fixtures shared by every test: start methods, and a leak check after each test.

The leak check asserts that a test leaves no child process of ours running and no new
shared-memory segment in /dev/shm (the brief's "no orphan, no leaked segment", proved per test).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import time
from collections.abc import Iterator

import psutil
import pytest

START_METHODS = [m for m in ("fork", "forkserver", "spawn") if m in mp.get_all_start_methods()]
SHM_DIR = "/dev/shm"


def _shm_segments() -> set[str]:
    try:
        return {n for n in os.listdir(SHM_DIR) if n.startswith(("psm_", "corelane", "wnsm_", "sem.mp-"))}
    except FileNotFoundError:
        return set()


def _helper_pids() -> set[int]:
    """Long-lived helpers multiprocessing keeps on purpose (forkserver, resource tracker)."""
    pids: set[int] = set()
    from multiprocessing import forkserver, resource_tracker

    for obj in (forkserver._forkserver, resource_tracker._resource_tracker):  # type: ignore[attr-defined]
        pid = getattr(obj, "_forkserver_pid", None) or getattr(obj, "_pid", None)
        if pid:
            pids.add(pid)
    return pids


def _our_children() -> list[psutil.Process]:
    helpers = _helper_pids()
    out = []
    for child in psutil.Process().children(recursive=False):
        if child.pid in helpers:
            continue
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                child.wait(timeout=0)
                continue
        except (psutil.NoSuchProcess, psutil.TimeoutExpired):
            continue
        out.append(child)
    # Workers started through the forkserver are its children, not ours.
    for pid in helpers:
        with contextlib.suppress(psutil.NoSuchProcess):
            out.extend(psutil.Process(pid).children(recursive=False))
    return out


@pytest.fixture(autouse=True)
def no_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that leaves a process or a /dev/shm segment behind (bounded 5 s grace)."""
    before = _shm_segments()
    children_before = {p.pid for p in _our_children()}
    yield
    if request.node.get_closest_marker("allow_leaks"):
        return
    deadline = time.monotonic() + 5.0
    while True:
        mp.active_children()  # reaps finished children
        left = [p for p in _our_children() if p.pid not in children_before]
        leaked = _shm_segments() - before
        if not left and not leaked:
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    for p in left:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    msgs = []
    if left:
        msgs.append(f"processes left running: {[(p.pid, p.name()) for p in left]}")
    if leaked:
        msgs.append(f"/dev/shm segments leaked: {sorted(leaked)}")
    pytest.fail("; ".join(msgs))


@pytest.fixture(params=START_METHODS)
def start_method(request: pytest.FixtureRequest) -> str:
    """Run the test once under each start method this platform has."""
    return str(request.param)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "allow_leaks: skip the process/shm leak check")
