"""corelane: CPU-bound parallel data processing for Python.

The public surface is exactly ``__all__``. Heavier parts (NumPy-backed shared memory, pipelines,
the game offloader) are imported on first use, so ``import corelane`` stays cheap in every worker.
"""

from __future__ import annotations

import importlib
from typing import Any

from corelane import errors, events
from corelane.engine import Failure, Pool, imap, imap_unordered, map, worker_state
from corelane.engine._cpus import cpu_count
from corelane.engine._startmethod import start_forkserver_early
from corelane.errors import (
    Cancelled,
    CorelaneError,
    InitializerError,
    NotPicklable,
    TaskError,
    TaskTimeout,
    WorkerDied,
)

start_forkserver_early()  # only where forkserver will be the default (threads are running)

# name -> module that defines it, imported on first attribute access (PEP 562).
_LAZY: dict[str, str] = {
    "Pipeline": "corelane.ipc.pipeline",
    "MessageType": "corelane.ipc.messages",
    "SharedArray": "corelane.shm.array",
    "share": "corelane.shm.array",
    "SharedCounter": "corelane.shm.counter",
    "SharedValue": "corelane.shm.counter",
    "Offloader": "corelane.integrations.pygame",
}

__all__ = [
    "Cancelled",
    "CorelaneError",
    "Failure",
    "InitializerError",
    "MessageType",
    "NotPicklable",
    "Offloader",
    "Pipeline",
    "Pool",
    "SharedArray",
    "SharedCounter",
    "SharedValue",
    "TaskError",
    "TaskTimeout",
    "WorkerDied",
    "cpu_count",
    "errors",
    "events",
    "imap",
    "imap_unordered",
    "map",
    "share",
    "worker_state",
]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'corelane' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
