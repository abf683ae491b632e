"""Choosing how worker processes start, and how many.

``fork`` is fastest but copies the parent's locks as they are: if another thread held one at that
moment, the child can deadlock on it. So the default is ``fork`` only while the process runs no
threads but corelane's own, and ``forkserver`` otherwise (the choice Python 3.14 makes by default).
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
from multiprocessing.context import BaseContext

METHODS = ("fork", "forkserver", "spawn")


def available_cpus() -> int:
    """CPUs this process may run on (respects affinity masks, unlike os.cpu_count())."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _foreign_threads() -> list[threading.Thread]:
    main = threading.main_thread()
    return [
        t for t in threading.enumerate()
        if t is not main and not getattr(t, "_corelane", False)
    ]


def default_start_method() -> str:
    """fork on Linux without foreign threads, else forkserver; the platform default elsewhere."""
    if not sys.platform.startswith("linux"):
        return multiprocessing.get_start_method()
    return "forkserver" if _foreign_threads() else "fork"


def get_context(method: str) -> BaseContext:
    """The multiprocessing context for ``method``, with corelane preloaded in a forkserver."""
    if method not in METHODS:
        raise ValueError(f"start_method must be one of {METHODS}, got {method!r}")
    ctx = multiprocessing.get_context(method)
    if method == "forkserver":
        # Preloading makes every forked worker start with corelane already imported.
        ctx.set_forkserver_preload(["corelane.engine.worker"])
    return ctx
