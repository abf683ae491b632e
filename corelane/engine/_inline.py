"""``workers=0``: every call runs in the caller's thread, for debugging, with the failure form a
worker gives (a :class:`~corelane.engine.results.Failure` per item, ``SystemExit`` included)."""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from typing import Any

from corelane.engine._protocol import Mode
from corelane.engine.results import Failure, Run


def inline_submit(fn: Callable[..., Any], args: tuple[Any, ...],
                  kwargs: dict[str, Any]) -> Future[Any]:
    """``fn(*args, **kwargs)`` now, as a done Future."""
    future: Future[Any] = Future()
    future.set_running_or_notify_cancel()
    value = _call(fn, (args, kwargs), 0, Mode.KWARGS)
    if isinstance(value, Failure):
        future.set_exception(value.raised())
    else:
        future.set_result(value)
    return future


def inline_runs(fn: Callable[..., Any], iterable: Iterable[Any], mode: Mode) -> Iterator[Run]:
    """A run of one item at a time, computed as it is consumed."""
    for index, item in enumerate(iterable):
        value = _call(fn, item, index, mode)
        yield (index, [value], int(isinstance(value, Failure)))


def _call(fn: Callable[..., Any], item: Any, index: int, mode: Mode) -> Any:
    """Call ``fn`` as a worker would; a failure (SystemExit included) becomes a Failure."""
    try:
        if mode == Mode.KWARGS:
            return fn(*item[0], **item[1])
        if mode == Mode.STAR:
            return fn(*item)
        return fn(item)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - as in a worker: the item's failure
        return Failure(index, item, exc, "".join(traceback.format_exception(exc)))
