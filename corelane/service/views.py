"""How jobs and items look from outside (REST and Socket.IO)."""

from __future__ import annotations

from typing import Any


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
