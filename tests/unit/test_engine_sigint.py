"""Ctrl-C in the parent ends every worker within ~2 s, leaves no orphan, and re-raises."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

SCRIPT = textwrap.dedent(
    """
    import sys, time
    import corelane
    from tests.engine_tasks import sleep_for
    if __name__ == "__main__":
        try:
            with corelane.Pool(2, start_method=sys.argv[1]) as pool:
                print("started", *pool.pids, flush=True)
                list(pool.map(sleep_for, [30.0] * 4))
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            raise
    """
)


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_sigint_stops_workers_and_reraises(method: str) -> None:
    root = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, method],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("started"), line + proc.stderr.read() if proc.stderr else line
        pids = [int(p) for p in line.split()[1:]]
        time.sleep(0.3)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "interrupted" in out
    assert "KeyboardInterrupt" in err
    assert proc.returncode != 0
    assert took < 5
    alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"workers left running: {alive}"
