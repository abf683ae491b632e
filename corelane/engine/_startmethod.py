"""Choosing how worker processes start, and how many.

``fork`` is fastest but copies the parent's locks as they are: if another thread held one at that
moment, the child can deadlock on it. So the default is ``fork`` only while the process runs no
threads but corelane's own, and ``forkserver`` otherwise (the choice Python 3.14 makes by default).
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
import os
import sys
import threading
from collections.abc import Iterator
from multiprocessing.context import BaseContext

from corelane.engine._cpus import cpu_count

METHODS = ("fork", "forkserver", "spawn")
_POPEN = {"fork": "multiprocessing.popen_fork", "forkserver": "multiprocessing.popen_forkserver",
          "spawn": "multiprocessing.popen_spawn_posix"}


def available_cpus() -> int:
    """CPUs this process may keep busy: affinity mask and cgroup quota (see engine._cpus)."""
    return cpu_count()


def _foreign_threads() -> list[threading.Thread]:
    main = threading.main_thread()
    return [
        t for t in threading.enumerate()
        if t is not main and not getattr(t, "_corelane", False)
    ]


def default_start_method(recycles: bool = False) -> str:
    """fork on Linux without foreign threads, else forkserver; the platform default elsewhere.

    ``recycles``: the pool replaces workers as a matter of course (``max_tasks_per_child``,
    ``max_worker_memory``), which the manager thread forks while the caller runs on; a worker
    forked that way inherits whatever the caller's thread held at that instant (a module's
    import lock, ``subprocess.Popen``'s exec-status pipe), so such pools take the forkserver,
    as ProcessPoolExecutor refuses ``max_tasks_per_child`` with fork for the same reason.
    """
    if not sys.platform.startswith("linux"):
        return multiprocessing.get_start_method()
    return "forkserver" if recycles or _foreign_threads() else "fork"


def get_context(method: str) -> BaseContext:
    """The multiprocessing context for ``method``, with corelane preloaded in a forkserver."""
    if method not in METHODS:
        raise ValueError(f"start_method must be one of {METHODS}, got {method!r}")
    ctx = multiprocessing.get_context(method)
    # Import what starting a process needs here, in the caller's thread: the pool's manager
    # thread starts the workers, and a busy caller (a frame loop) starves it of the GIL so
    # badly that each of the hundreds of file-system calls of a first import costs a thread
    # switch (5 ms): seconds before the first worker starts.
    importlib.import_module(_POPEN[method])
    if method == "forkserver":
        # Preloading makes every forked worker start with corelane already imported; starting
        # the server now (it is shared, so once per program) keeps that cost off the manager.
        ctx.set_forkserver_preload(["corelane.engine.worker"])
        importlib.import_module("multiprocessing.forkserver").ensure_running()
    return ctx


def start_forkserver_early() -> None:
    """Start the forkserver now, in the background, when it will be the default: on Linux, in
    the program itself (not a worker), with threads other than corelane's already running (a
    notebook kernel, a web server). The first map then finds it running instead of waiting
    the ~0.1 s it takes to start; it is shared by every pool, so this happens once."""
    if not sys.platform.startswith("linux") or multiprocessing.parent_process() is not None:
        return
    if not _foreign_threads():
        return
    importlib.import_module("multiprocessing.forkserver")  # imports here, not in the thread
    importlib.import_module(_POPEN["forkserver"])
    starter = threading.Thread(target=_start_forkserver, name="corelane-forkserver-start",
                               daemon=True)
    starter._corelane = True  # type: ignore[attr-defined]  # not a reason to avoid fork
    starter.start()


_early_failure: str | None = None  # why the early start failed, if it did (for a bug report)


def _start_forkserver() -> None:
    global _early_failure
    try:
        get_context("forkserver")
    except Exception as exc:  # noqa: BLE001 - the first pool that needs it will raise it again
        _early_failure = f"{type(exc).__name__}: {exc}"


@contextlib.contextmanager
def main_hidden_if_interactive() -> Iterator[None]:
    """While a worker starts, hide an ``__main__.__file__`` that is no file (``<stdin>``).

    spawn and forkserver re-run the parent's main file in each child; a script typed on stdin
    has none, and the child would die trying. Its functions travel by value instead (see
    ``_serialize``), so the child needs no ``__main__`` of ours.
    """
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or not isinstance(path, str) or os.path.isfile(path):
        yield
        return
    del main.__file__
    try:
        yield
    finally:
        main.__file__ = path
