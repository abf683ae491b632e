"""Pools that come and go leave no fd behind, and one stopping never trips another starting.

corelane.map returns before its pool's workers have exited (they stop in the background). Two
regressions this guards: the pool's wake pipe was never closed (2 fds leaked per call), and a
worker pipe closed by a stopping pool while another pool was forking could hand its fd number
to the new child's own sentinel pipe, which the child then closed: its parent saw it "die"
while it lived, and waited for it forever.
"""

from __future__ import annotations

import os

import corelane
from tests.engine_tasks import square


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_back_to_back_maps_and_pools_leak_nothing_and_never_hang() -> None:
    corelane.map(square, range(100), workers=2, start_method="fork")  # warm imports
    before = _open_fds()
    for i in range(25):
        assert corelane.map(square, range(2000), workers=2, start_method="fork")[-1] == 1999**2
        with corelane.Pool(2, start_method="fork") as pool:  # starts while the last one stops
            assert list(pool.imap(square, range(500)))[i] == i * i
    with corelane.Pool(1) as pool:  # let the background shutdowns finish
        pool.submit(square, 1).result(timeout=30)
    assert _open_fds() <= before + 6
