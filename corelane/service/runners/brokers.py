"""Broker URLs: which kind, and how to show one without its password.

Kept free of redis, kombu and Flask so every layer (health, logs, the CLI) can use it.
"""

from __future__ import annotations

import re

_SECRET_IN_URL = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:@/\s]*):[^@/\s]*@", re.I)
REDIS_SCHEMES = ("redis://", "rediss://")
AMQP_SCHEMES = ("amqp://", "amqps://", "pyamqp://")


def mask_url(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***`` (for logs and errors)."""
    return _SECRET_IN_URL.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)


def is_redis(url: str | None) -> bool:
    return bool(url) and str(url).startswith(REDIS_SCHEMES)


def describe(exc: BaseException) -> str:
    """``Type: message`` of an exception, passwords masked, bounded in length."""
    return mask_url(f"{type(exc).__name__}: {exc}")[:300]
