"""No worker outlives its parent: SIGKILL the parent mid-run, every worker exits by itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

import corelane
from tests.engine_tasks import sleep_for

SCRIPT = textwrap.dedent(
    """
    import sys
    import corelane
    from tests.engine_tasks import sleep_for
    if __name__ == "__main__":
        a = corelane.Pool(2, start_method=sys.argv[1])
        b = corelane.Pool(1, start_method=sys.argv[1])   # a second pool: fds must not cross
        list(a.map(sleep_for, [0.0] * 4))
        list(b.map(sleep_for, [0.0]))
        print(*a.pids, *b.pids, flush=True)
        list(a.map(sleep_for, [60.0] * 4))
    """
)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_workers_exit_when_parent_is_sigkilled(method: str) -> None:
    root = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, method], cwd=root, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) == 3
        time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [p for p in pids if _alive(p)], "workers outlived their killed parent"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def test_close_cancels_an_unconsumed_imap() -> None:
    pool = corelane.Pool(1)
    it = pool.imap(sleep_for, [0.01] * 100)
    t0 = time.monotonic()
    pool.close()
    assert time.monotonic() - t0 < 10
    with pytest.raises(corelane.Cancelled):
        list(it)
