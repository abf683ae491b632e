"""How jobs and items look from outside (REST and Socket.IO), and the token check both use."""

from __future__ import annotations

import hmac
from typing import Any

from corelane.service.config import ServiceConfig

TOKEN_COOKIE = "corelane_token"


def public_job(job: dict[str, Any]) -> dict[str, Any]:
    """A job as clients see it: counts, options and links."""
    out = dict(job)
    out["urls"] = {"self": f"/api/jobs/{job['id']}", "items": f"/api/jobs/{job['id']}/items",
                   "zip": f"/api/jobs/{job['id']}/zip"}
    return out


def public_item(item: dict[str, Any]) -> dict[str, Any]:
    """An item as clients see it: no storage keys, a URL per output size."""
    out = {k: v for k, v in item.items() if k != "source_key"}
    outputs = {}
    for size, info in (item.get("outputs") or {}).items():
        info = {k: v for k, v in info.items() if k != "key"}
        info["url"] = f"/api/jobs/{item['job_id']}/items/{item['id']}/outputs/{size}"
        outputs[size] = info
    out["outputs"] = outputs
    return out


def token_ok(config: ServiceConfig, request: Any, given: str | None = None) -> bool:
    """True when no token is configured, or the request presents it.

    Accepted: ``Authorization: Bearer <token>``, ``X-API-Token``, the ``corelane_token`` cookie
    (set by opening ``/?token=...``), or ``given`` (the Socket.IO ``auth`` token).
    """
    expected = config.api_token
    if not expected:
        return True
    candidates = [given, request.headers.get("X-API-Token"), request.cookies.get(TOKEN_COOKIE)]
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        candidates.append(auth[7:].strip())
    return any(c and hmac.compare_digest(c.encode(), expected.encode()) for c in candidates)
