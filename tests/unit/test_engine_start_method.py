"""The default start method is safe when the parent has threads."""

from __future__ import annotations

import threading

import corelane
from corelane.engine._startmethod import _foreign_threads, default_start_method
from tests.engine_tasks import square


def test_default_is_fork_without_threads_and_forkserver_with() -> None:
    # (other tests may have left daemon threads, e.g. tqdm's monitor: then forkserver is right)
    assert default_start_method() == ("forkserver" if _foreign_threads() else "fork")
    stop = threading.Event()
    t = threading.Thread(target=stop.wait, daemon=True)
    t.start()
    try:
        assert default_start_method() == "forkserver"
        with corelane.Pool(2) as pool:
            assert pool.start_method == "forkserver"
            assert list(pool.map(square, range(100))) == [x * x for x in range(100)]
    finally:
        stop.set()
        t.join(5)


def test_pool_threads_do_not_count_as_foreign() -> None:
    with corelane.Pool(1) as pool:
        assert pool._manager.thread not in _foreign_threads()
        assert list(pool.map(square, [3])) == [9]
