"""Inter-process building blocks on top of the engine: typed messages, pipelines, worker logging.

Submodules are imported on use (workers import only ``corelane.engine._logs``, cheaply).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Message": "corelane.ipc.messages",
    "MessageType": "corelane.ipc.messages",
    "Pipeline": "corelane.ipc.pipeline",
    "forward_worker_logs": "corelane.ipc.logging",
}

__all__ = ["Message", "MessageType", "Pipeline", "forward_worker_logs"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'corelane.ipc' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
