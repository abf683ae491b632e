"""Broker URLs: which kind, their TLS options, and how to show one without its password.

Kept free of redis, kombu and Flask so every layer (health, logs, the CLI) can use it.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

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


# ---------------------------------------------------------------------- Redis over TLS
#
# Two spellings of the same options are in use: redis-py's (``ssl_cert_reqs=required``) and
# Celery's (``ssl_cert_reqs=CERT_REQUIRED``). Both are accepted in any Redis URL here, for every
# client (progress bus, registry, Socket.IO queue, Celery broker), and a bare ``rediss://``
# verifies the server's certificate (kombu alone would connect without any check).

TLS_PARAMS = ("ssl_cert_reqs", "ssl_ca_certs", "ssl_ca_path", "ssl_certfile", "ssl_keyfile",
              "ssl_check_hostname")
_CERT_REQS = {"none": "none", "cert_none": "none", "optional": "optional",
              "cert_optional": "optional", "required": "required", "cert_required": "required"}


def redis_tls(url: str) -> tuple[str, dict[str, str]]:
    """Split a Redis URL into (the URL without TLS options, the options in redis-py's spelling).

    Raises:
        ValueError: an unknown ``ssl_cert_reqs`` value, or TLS options on a plain redis:// URL.
    """
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    tls = {k: v for k, v in query if k in TLS_PARAMS}
    rest = [(k, v) for k, v in query if k not in TLS_PARAMS]
    if "ssl_cert_reqs" in tls:
        value = _CERT_REQS.get(tls["ssl_cert_reqs"].lower())
        if value is None:
            raise ValueError(f"ssl_cert_reqs={tls['ssl_cert_reqs']!r}: use required, optional or "
                             "none (or CERT_REQUIRED, CERT_OPTIONAL, CERT_NONE)")
        tls["ssl_cert_reqs"] = value
    if parts.scheme == "rediss":
        tls.setdefault("ssl_cert_reqs", "required")
    elif tls:
        raise ValueError(f"TLS options need a rediss:// URL: {mask_url(url)}")
    return urlunsplit(parts._replace(query=urlencode(rest))), tls


def redis_py_url(url: str) -> str:
    """``url`` with its TLS options in redis-py's spelling (certificates verified by default)."""
    base, tls = redis_tls(url)
    if not tls:
        return base
    return base + ("&" if urlsplit(base).query else "?") + urlencode(tls)


def celery_ssl(url: str) -> dict[str, Any] | None:
    """Celery's ``broker_use_ssl`` for a rediss:// broker URL (None for anything else)."""
    if not url.startswith("rediss://"):
        return None
    import ssl

    _base, tls = redis_tls(url)
    modes = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}
    out: dict[str, Any] = {"ssl_cert_reqs": modes[tls["ssl_cert_reqs"]]}
    for key in ("ssl_ca_certs", "ssl_ca_path", "ssl_certfile", "ssl_keyfile"):
        if key in tls:
            out[key] = tls[key]
    if "ssl_check_hostname" in tls:
        out["ssl_check_hostname"] = tls["ssl_check_hostname"].lower() in ("1", "true", "yes")
    return out


def celery_broker_url(url: str) -> str:
    """The broker URL Celery gets: TLS options travel in ``broker_use_ssl`` instead."""
    return redis_tls(url)[0] if is_redis(url) else url
