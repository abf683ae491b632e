"""What a Dask worker runs for :class:`corelane.engine.cluster.ClusterPool`: one chunk of items.

The client ships the function and the chunk as corelane's own pickles (pickle, cloudpickle as
the fallback: :mod:`corelane.engine._serialize`), so what cannot travel fails on the client
with NotPicklable before any worker sees it. The chunk runs item by item on the worker; every
outcome is kept (a result, or the item's exception and traceback), and the outcomes travel back
as one corelane pickle, so one unpicklable result fails only its own item. Nothing here raises
on a user's error: a Dask task that errs means corelane itself could not run (not installed on
the worker, say), which the client turns into Broken.

What comes back is ``(values, problems, seconds, pid)``: the items' return values in order, and
only for the items that did not return a value, their outcome by position in the chunk
(``{position: (ERROR, exception, traceback) | (TIMEOUT, worker address, pid)}``, ``None`` in
``values`` there). The usual chunk, every item fine, is one flat list: no per-item tuple to
build, pickle, unpickle and unpack (on the client, that loop was most of a fast map's cost).

The function arrives as the same bytes with every chunk of a run (or as the value of one
scattered Future, when it is large); a worker keeps the last few it unpickled, as the local
engine's workers keep the functions of a run, so each chunk does not unpickle it again.

Imported on the workers by reference, so it must not import Dask at module level either (it
only asks ``distributed`` for the worker's address when an item overruns its timeout).
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from collections import OrderedDict
from typing import Any

from corelane.engine._protocol import Mode
from corelane.engine._serialize import dumps, loads, portable_exception
from corelane.errors import NotPicklable

__all__ = ["OK", "ERROR", "TIMEOUT", "RELOAD", "run_chunk"]

OK, ERROR, TIMEOUT = 0, 1, 2  # the kinds of one item's outcome
RELOAD = b"reload"  # the chunk's items could not be unpickled here: send them one by one
FUNCTIONS_KEPT = 4  # unpickled functions a worker keeps, by their pickle (LRU; a closure's
#                    captured data stays in the worker's memory while it is kept)

_functions: OrderedDict[bytes, Any] = OrderedDict()
_functions_lock = threading.Lock()  # a worker of several threads runs chunks side by side


def _function(fn_data: bytes) -> Any:
    """The function pickled in ``fn_data``, unpickled once per worker while it is in use."""
    with _functions_lock:
        fn = _functions.get(fn_data)
        if fn is not None:
            _functions.move_to_end(fn_data)
            return fn
    fn = loads(fn_data)
    with _functions_lock:
        _functions[fn_data] = fn
        while len(_functions) > FUNCTIONS_KEPT:
            _functions.popitem(last=False)
    return fn


def _error(exc: BaseException) -> tuple[Any, ...]:
    """An item's failure: the exception (if it survives a pickle) and its traceback from the
    user's function on (the first frame, ours, left out)."""
    tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    return (ERROR, portable_exception(exc), text)


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
        return _error(exc)


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


def _all_failed(n: int, failed: BaseException) -> bytes:
    return dumps(([None] * n, {i: (ERROR, failed, "") for i in range(n)}, 0.0, os.getpid()))


def run_chunk(items_data: bytes, n: int, fn_data: bytes, mode: int,
              timeout: float | None) -> bytes:
    """Run ``fn`` on each of the ``n`` items of one chunk; return the pickled
    ``(values, problems, seconds, pid)``, or RELOAD when the items cannot be unpickled here."""
    try:
        fn = _function(fn_data)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - every item fails the same way
        return _all_failed(n, NotPicklable("the function", f"unpickling it on the worker: {exc!r}"))
    try:
        items = loads(items_data)
    except (Exception, SystemExit) as exc:  # noqa: BLE001
        if n > 1:
            return RELOAD  # the client resends them one by one, so only the bad one fails
        return _all_failed(1, NotPicklable("the item", f"unpickling it on the worker: {exc!r}"))
    started = time.perf_counter()
    values: list[Any] = []
    problems: dict[int, tuple[Any, ...]] = {}
    if mode == Mode.ONE and timeout is None:  # the usual case, with no call between
        for position, item in enumerate(items):
            try:
                values.append(fn(item))
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # noqa: BLE001 - SystemExit too: the item's failure
                values.append(None)
                problems[position] = _error(exc)
    else:
        for position, item in enumerate(items):
            if timeout is None:
                outcome = _outcome(fn, item, mode)
            else:
                outcome = _timed_outcome(fn, item, mode, timeout)
            if outcome[0] == OK:
                values.append(outcome[1])
            else:
                values.append(None)
                problems[position] = outcome
    elapsed = time.perf_counter() - started
    del fn, items
    try:
        return dumps((values, problems, elapsed, os.getpid()))
    except NotPicklable:
        pass
    for position, value in enumerate(values):  # fail only the results that cannot travel
        if position in problems:
            try:
                dumps(problems[position], "the result")
            except NotPicklable as exc:  # the item's exception itself
                problems[position] = (ERROR, exc, "")
            continue
        try:
            dumps(value, "the result")
        except NotPicklable as exc:
            values[position] = None
            problems[position] = (ERROR, exc, "")
    return dumps((values, problems, elapsed, os.getpid()))
