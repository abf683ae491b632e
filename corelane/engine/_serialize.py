"""Serialization across the process boundary: pickle first, cloudpickle as the fallback.

Plain pickle is fastest and covers module-level functions and ordinary data. Lambdas, closures and
functions defined in ``__main__`` under spawn need cloudpickle, which is slower, so it is only tried
when pickle refuses. What neither can send raises :class:`~corelane.errors.NotPicklable` naming the
object, instead of a deep pickling traceback.
"""

from __future__ import annotations

import pickle
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
    text = repr(obj)
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{kind} {text}"


def dumps(obj: Any, what: str | None = None) -> bytes:
    """Serialize ``obj`` with pickle, falling back to cloudpickle; raise NotPicklable otherwise."""
    try:
        return pickle.dumps(obj, PROTOCOL)
    except Exception as first:  # noqa: BLE001 - pickle raises many types (TypeError, AttributeError ...)
        try:
            return cloudpickle.dumps(obj, PROTOCOL)
        except Exception as second:  # noqa: BLE001
            reason = f"{type(second).__name__}: {second}" if str(second) else str(first)
            raise NotPicklable(what or describe(obj), reason) from None


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
    except Exception:  # noqa: BLE001
        return RuntimeError(f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}")
