"""Serialization across the process boundary: pickle first, cloudpickle as the fallback.

Plain pickle is fastest and covers module-level functions and ordinary data. Lambdas and closures
need cloudpickle, which is slower, so it is only tried when pickle refuses. Objects defined in an
interactive ``__main__`` (a REPL, a notebook, ``python -c``, a script on stdin) pickle by name but
cannot be found by name in a spawned or forkserver worker, which has no such ``__main__``: those
go by value (cloudpickle) too. What neither can send raises :class:`~corelane.errors.NotPicklable`
naming the object, instead of a deep pickling traceback; so does an object whose pickling raises
``SystemExit``, which must not end the caller's program.
"""

from __future__ import annotations

import os
import pickle
import sys
from typing import Any

import cloudpickle

from corelane.errors import NotPicklable

PROTOCOL = pickle.HIGHEST_PROTOCOL


def describe(obj: Any) -> str:
    """A short human name for an object, for error messages."""
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    kind = type(obj).__name__
    if name and callable(obj):
        module = getattr(obj, "__module__", None)
        return f"{kind} {module}.{name}" if module else f"{kind} {name}"
    try:
        text = repr(obj)
    except Exception:  # noqa: BLE001 - a broken __repr__ must not hide the real error
        text = f"at {id(obj):#x}"
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{kind} {text}"


def _main_is_importable() -> bool:
    """Can a fresh interpreter import this program's ``__main__`` (a file, or ``-m module``)?"""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and getattr(spec, "name", None):
        return True
    path = getattr(main, "__file__", None)
    return isinstance(path, str) and os.path.isfile(path)


def dumps(obj: Any, what: str | None = None, *, to_parent: bool = False) -> bytes:
    """Serialize ``obj`` with pickle, falling back to cloudpickle; raise NotPicklable otherwise.

    ``to_parent``: the receiver is the process that started the workers, whose ``__main__``
    is the one names refer to, so what pickles by name goes by name (no scan of the bytes).
    """
    try:
        data = pickle.dumps(obj, PROTOCOL)
        if to_parent or b"__main__" not in data or _main_is_importable():
            return data
    except (Exception, SystemExit) as first:  # noqa: BLE001 - pickle raises many types
        # Its text only: the exception's traceback holds this frame, which holds ``obj``; kept
        # here, the cycle would keep the user's object alive until the next garbage collection.
        why = str(first)
    else:
        why = "defined in an interactive __main__"
    try:
        return cloudpickle.dumps(obj, PROTOCOL)
    except (Exception, SystemExit) as second:  # noqa: BLE001
        reason = f"{type(second).__name__}: {second}" if str(second) else why
        raise NotPicklable(what or describe(obj), reason) from None


def envelope(message: tuple[Any, ...]) -> bytes:
    """A protocol message: corelane's own fields, user data in it already pickled to bytes."""
    return pickle.dumps(message, PROTOCOL)


def loads(data: bytes) -> Any:
    """Inverse of :func:`dumps` (cloudpickle output loads with plain pickle)."""
    return pickle.loads(data)


def portable_exception(exc: BaseException) -> BaseException:
    """Return ``exc`` if it survives a pickle round trip, else a RuntimeError that says what it was.

    Exceptions with custom ``__init__`` signatures often pickle but fail to unpickle; checking the
    round trip here, in the worker, keeps one bad exception from losing a whole batch of results.
    """
    try:
        pickle.loads(dumps(exc))
        return exc
    except BaseException:  # noqa: BLE001 - even SystemExit from a __reduce__ only loses the type
        return RuntimeError(f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}")
