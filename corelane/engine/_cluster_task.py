"""What a Dask worker runs for :class:`corelane.engine.cluster.ClusterPool`: one chunk of items.

The client ships the function and the chunk as corelane's own pickles (pickle, cloudpickle as
the fallback: :mod:`corelane.engine._serialize`), so what cannot travel fails on the client
with NotPicklable before any worker sees it. The chunk runs item by item on the worker; every
outcome is kept (a result, or the item's exception and traceback), and the outcomes travel back
as one corelane pickle, so one unpicklable result fails only its own item. Nothing here raises
on a user's error: a Dask task that errs means corelane itself could not run (not installed on
the worker, say), which the client turns into Broken.

Imported on the workers by reference, so it must not import Dask at module level either (it
only asks ``distributed`` for the worker's address when an item overruns its timeout).
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from typing import Any

from corelane.engine._protocol import Mode
from corelane.engine._serialize import dumps, loads, portable_exception
from corelane.errors import NotPicklable

__all__ = ["OK", "ERROR", "TIMEOUT", "RELOAD", "run_chunk"]

OK, ERROR, TIMEOUT = 0, 1, 2  # the kinds of one item's outcome
RELOAD = b"reload"  # the chunk's items could not be unpickled here: send them one by one


def _outcome(fn: Any, item: Any, mode: int) -> tuple[Any, ...]:
    try:
        if mode == Mode.KWARGS:
            value = fn(*item[0], **item[1])
        elif mode == Mode.STAR:
            value = fn(*item)
        else:
            value = fn(item)
        return (OK, value)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - SystemExit too: the item's failure
        tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None  # from fn on
        text = "".join(traceback.format_exception(type(exc), exc, tb))
        return (ERROR, portable_exception(exc), text)


def _timed_outcome(fn: Any, item: Any, mode: int, timeout: float) -> tuple[Any, ...]:
    """Run one item in a helper thread and give up waiting after ``timeout`` seconds.

    A Dask worker runs tasks in threads, where no signal can interrupt Python code, so the
    overdue call is left running in its (daemon) thread and the outcome says so, with this
    worker's address: the client then asks the worker's nanny to restart it.
    """
    box: list[tuple[Any, ...]] = []
    runner = threading.Thread(target=lambda: box.append(_outcome(fn, item, mode)), daemon=True,
                              name="corelane-timed-item")
    runner.start()
    runner.join(timeout)
    if box:
        return box[0]
    from distributed import get_worker  # only here: the module must load without Dask

    return (TIMEOUT, get_worker().address, os.getpid())


def run_chunk(fn_data: bytes, items_data: bytes, n: int, mode: int,
              timeout: float | None) -> bytes:
    """Run ``fn`` on each of the ``n`` items of one chunk; return the pickled
    ``(outcomes, seconds, pid)``, or RELOAD when the items cannot be unpickled here."""
    try:
        fn = loads(fn_data)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - every item fails the same way
        failed = NotPicklable("the function", f"unpickling it on the worker: {exc!r}")
        return dumps(([(ERROR, failed, "")] * n, 0.0, os.getpid()))
    try:
        items = loads(items_data)
    except (Exception, SystemExit) as exc:  # noqa: BLE001
        if n > 1:
            return RELOAD  # the client resends them one by one, so only the bad one fails
        failed = NotPicklable("the item", f"unpickling it on the worker: {exc!r}")
        return dumps(([(ERROR, failed, "")], 0.0, os.getpid()))
    started = time.perf_counter()
    if timeout is None:
        outcomes = [_outcome(fn, item, mode) for item in items]
    else:
        outcomes = [_timed_outcome(fn, item, mode, timeout) for item in items]
    elapsed = time.perf_counter() - started
    del fn, items
    try:
        return dumps((outcomes, elapsed, os.getpid()))
    except NotPicklable:
        pass
    for i, outcome in enumerate(outcomes):  # fail only the results that cannot travel
        try:
            dumps(outcome, "the result")
        except NotPicklable as exc:
            outcomes[i] = (ERROR, exc, "")
    return dumps((outcomes, elapsed, os.getpid()))
