"""What an engine worker runs for one image: read the upload, process it, write the outputs.

Kept free of Flask, SQLAlchemy and Socket.IO so workers import only the imaging code. Outputs are
written by the worker (atomically, under deterministic keys) and only a small summary travels
back to the web process, so encoded images never cross a pipe.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corelane.service.objects import ObjectStore, cached_location, write_atomic


@dataclass(frozen=True)
class ItemTask:
    """One image to process (picklable; sent to a worker)."""

    item_id: str
    source: str  # absolute path of the uploaded bytes
    root: str  # the object store's root
    options: Any  # corelane.imaging.ProcessOptions
    limits: Any  # corelane.imaging.ImageLimits
    objects: str = ""  # where outputs go when not under ``root``: an s3:// URL (objects.py)


def init_worker(nice: int) -> None:
    """Engine initializer: run below the web process's CPU priority so pages stay fast."""
    if nice > 0:
        with contextlib.suppress(OSError):  # not permitted here: run at normal priority
            os.nice(nice)


def process_item(task: ItemTask) -> dict[str, Any]:
    """Process one image; return what the store keeps about it (no image bytes).

    Raises:
        corelane.errors.BadImage: the upload is not an image we accept (a per-item error).
    """
    from corelane.imaging import process_image

    data = Path(task.source).read_bytes()
    result = process_image(data, task.options, task.limits)
    root = Path(task.root)
    store = cached_location(task.objects, task.root) if task.objects else None
    ext = result.extension
    outputs: dict[str, Any] = {}

    def put(key: str, blob: bytes) -> None:
        if store is not None:
            store.put(key, blob)
        else:
            write_atomic(root / key, blob)

    for size, blob in sorted(result.outputs.items(), reverse=True):
        key = ObjectStore.output_key(task.item_id, size, ext)
        put(key, blob)
        w, h = result.output_dims.get(size, (None, None))
        outputs[str(size)] = {"key": key, "width": w, "height": h, "bytes": len(blob)}
    # Crops go in the same map under "<ratio>/<size>" (views.public_item lists them apart), so
    # everything that walks an item's files (retention, S3 checks) sees them with no change.
    for label, by_size in result.crops.items():
        for size, blob in sorted(by_size.items(), reverse=True):
            key = ObjectStore.crop_key(task.item_id, label, size, ext)
            put(key, blob)
            w, h = result.crop_dims[label][size]
            outputs[f"{label}/{size}"] = {"key": key, "width": w, "height": h, "bytes": len(blob),
                                          "box": list(result.crop_boxes[label])}
    return {
        "item_id": task.item_id,
        "width": result.width,
        "height": result.height,
        "format": result.format,
        "mode": result.mode,
        "output_format": result.output_format,
        "outputs": outputs,
        "features": result.features,
        "worker_done_at": time.time(),  # for the progress-latency benchmark
    }
