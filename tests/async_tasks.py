"""Module-level tasks for the async tests (importable by workers under every start method)."""

from __future__ import annotations

import os
import time


def hold_until(path: str, limit: float = 30.0) -> str:
    """Keep a worker busy until ``path`` exists (or ``limit`` seconds pass): a test's release."""
    deadline = time.monotonic() + limit
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.005)
    return path
