"""How jobs and items look from outside (REST and Socket.IO)."""

from __future__ import annotations

from typing import Any


def public_job(job: dict[str, Any]) -> dict[str, Any]:
    """A job as clients see it: counts, options and links."""
    out = dict(job)
    out["urls"] = {"self": f"/api/jobs/{job['id']}", "items": f"/api/jobs/{job['id']}/items",
                   "zip": f"/api/jobs/{job['id']}/zip"}
    return out


def split_outputs(stored: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """An item's stored ``outputs`` as (sizes, crops).

    The store keeps crops beside the sizes under ``"<ratio>/<size>"`` keys (runners/_work.py);
    this gives ``{size: info}`` and ``{ratio: {"box": [...], "outputs": {size: info}}}``.
    """
    sizes: dict[str, Any] = {}
    crops: dict[str, Any] = {}
    for name, info in (stored or {}).items():
        label, sep, size = name.rpartition("/")
        if not sep:
            sizes[name] = info
            continue
        entry = crops.setdefault(label, {"box": info.get("box"), "outputs": {}})
        entry["outputs"][size] = info
    return sizes, crops


def public_item(item: dict[str, Any]) -> dict[str, Any]:
    """An item as clients see it: no storage keys, a URL per output size and per crop."""
    out = {k: v for k, v in item.items() if k != "source_key"}
    base = f"/api/jobs/{item['job_id']}/items/{item['id']}"
    sizes, crops = split_outputs(item.get("outputs"))
    out["outputs"] = {size: {k: v for k, v in info.items() if k != "key"}
                      | {"url": f"{base}/outputs/{size}"} for size, info in sizes.items()}
    out["crops"] = {
        label: {"box": crop["box"], "outputs": {
            size: {k: v for k, v in info.items() if k not in ("key", "box")}
            | {"url": f"{base}/crops/{label.replace(':', 'x')}/{size}"}
            for size, info in crop["outputs"].items()}}
        for label, crop in crops.items()
    }
    return out
