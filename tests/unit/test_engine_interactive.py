"""Code typed into a REPL or a notebook: functions and classes of an interactive ``__main__``
(here: a script fed to ``python -`` on stdin, with a thread alive as in a Jupyter kernel) work
under every start method, and under the default one."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import START_METHODS

SESSION = textwrap.dedent(
    """
    import threading, time
    import corelane

    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()  # a kernel's threads

    def double(x):
        return 2 * x

    class Point:
        def __init__(self, x):
            self.x = x

    offset = 10
    method = {method!r}
    print(corelane.map(double, range(5), workers=2, start_method=method))
    with corelane.Pool(2, start_method=method) as pool:
        print(pool.submit(double, 21).result(timeout=60))
        print(list(pool.map(lambda p: p.x + offset, [Point(1), Point(2)])))
        print(pool.start_method)
    """
)


@pytest.mark.parametrize("method", [*START_METHODS, None])
def test_functions_typed_on_stdin_run_in_workers(method: str | None) -> None:
    root = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
    proc = subprocess.run(
        [sys.executable, "-"], input=SESSION.format(method=method), cwd=root,
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[:3] == ["[0, 2, 4, 6, 8]", "42", "[11, 12]"], proc.stderr
    assert lines[3] == (method or "forkserver")  # a thread is alive: forkserver by default
