"""Who may talk to the service: the ``Host`` allow-list, the origin rule and the API token.

::

    request ──> HostGuard (WSGI, outermost) ── Host not ours? 421, nothing else runs
                   │
                   ├── /socket.io/ ──> engine.io: Origin via origin_ok (cors callable)
                   │                   └── connect handler: token_ok (auth.token or cookie)
                   └── Flask ──> api.py before_request: token_ok, then origin_ok on writes

Why the ``Host`` check: the origin rule compares ``Origin`` with the request's own ``Host``. A
page on ``evil.example`` whose name later re-resolves to 127.0.0.1 (DNS rebinding) sends
``Host: evil.example`` and ``Origin: http://evil.example`` — the same origin — so only refusing
host names that are not this service's stops it. An IP address literal cannot be rebound (the
attack needs a name), so addresses are accepted on the service's port; names must be loopback
names or ones the operator listed (``--allowed-host``, ``CORELANE_ALLOWED_HOSTS``).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Iterable, Mapping
from typing import Any

from corelane.service.config import ServiceConfig, split_host

TOKEN_COOKIE = "corelane_token"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def host_ok(config: ServiceConfig, host: str | None) -> bool:
    """True when ``host`` (a ``Host`` header) names this service.

    Accepted: loopback names and IP addresses on ``config.port`` (or with no port), the bound
    address, and the names in ``config.allowed_hosts`` (an entry without a port matches any).
    """
    if not host:
        return False
    try:
        name, port = split_host(host)
    except ValueError:
        return False
    own_port = port is None or port == config.port
    if own_port and (name in LOOPBACK_NAMES or name == config.host.lower() or _is_ip(name)):
        return True
    for entry in config.allowed_hosts:
        if entry == "*":
            return True
        entry_name, entry_port = split_host(entry)
        if entry_name == name and entry_port in (None, port):
            return True
    return False


def origin_ok(config: ServiceConfig, origin: str | None, environ: Mapping[str, Any]) -> bool:
    """True when a browser ``Origin`` may use the service: its own origin or a listed one.

    No ``Origin`` (curl, scripts) is fine: the browser attacks this guards against send one.
    """
    if not origin:
        return True
    origin = origin.rstrip("/").lower()
    own = f"{environ.get('wsgi.url_scheme', 'http')}://{environ.get('HTTP_HOST', '')}".lower()
    return origin == own or origin in (o.lower() for o in config.allowed_origins)


def token_ok(config: ServiceConfig, request: Any, given: str | None = None) -> bool:
    """True when no token is configured, or the request presents it.

    Accepted: ``Authorization: Bearer <token>``, ``X-API-Token``, the ``corelane_token`` cookie
    (set by opening ``/?token=...``), or ``given`` (the Socket.IO ``auth`` token).
    """
    if not config.api_token:
        return True
    candidates = [given, request.headers.get("X-API-Token"), request.cookies.get(TOKEN_COOKIE)]
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        candidates.append(auth[7:].strip())
    return any(token_matches(config, c) for c in candidates)


def token_matches(config: ServiceConfig, candidate: str | None) -> bool:
    """True when ``candidate`` is the configured token (compared in constant time)."""
    expected = config.api_token
    return bool(expected and candidate
                and hmac.compare_digest(candidate.encode(), expected.encode()))


class HostGuard:
    """WSGI middleware that answers 421 to a request whose ``Host`` is not this service's.

    It wraps the whole app, Socket.IO's middleware included, so neither a page, an API call nor
    a Socket.IO handshake runs for a foreign host.
    """

    def __init__(self, app: Any, config: ServiceConfig) -> None:
        self.app = app
        self.config = config

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        host = environ.get("HTTP_HOST")
        if host_ok(self.config, host):
            return self.app(environ, start_response)
        message = (f"this service does not answer to the host name {host!r}: open it as "
                   f"http://127.0.0.1:{self.config.port}/, or start it with --allowed-host NAME "
                   f"(CORELANE_ALLOWED_HOSTS) for a name that should reach it")
        body = json.dumps({"error": {"type": "MisdirectedRequest", "message": message,
                                     "status": 421}}).encode()
        start_response("421 Misdirected Request", [("Content-Type", "application/json"),
                                                   ("Content-Length", str(len(body)))])
        return [body]
