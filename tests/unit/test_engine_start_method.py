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


def test_forkserver_starts_at_import_when_threads_already_run() -> None:
    # A notebook kernel or a web server has threads before corelane is imported: forkserver
    # will be the default, so the server starts in the background at import, not in the first
    # map. Without threads nothing starts. (A loaded run once printed 0: the search had matched the
    # resource tracker in the instant between its fork and exec, and stopped waiting too early.)
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import sys, threading, time
        import psutil
        with_thread = sys.argv[1] == "1"
        if with_thread:
            stop = threading.Event()
            threading.Thread(target=stop.wait, daemon=True).start()
        import corelane
        me = psutil.Process()
        deadline = time.monotonic() + 10
        def servers():
            # A child not yet exec'd still shows this program's command line, which holds the
            # word too (the resource tracker's start): only a server's own command line counts.
            found = []
            for c in me.children():
                try:
                    line = c.cmdline()
                except psutil.Error:
                    continue
                if line != me.cmdline() and "forkserver" in " ".join(line):
                    found.append(c)
            return found
        while with_thread and not servers() and time.monotonic() < deadline:
            time.sleep(0.02)
        found = len(servers())
        if with_thread:
            assert corelane.map(abs, [-1, -2], workers=2) == [1, 2]
            assert len(servers()) == 1, "the map started a second server"
        print(found)
        if with_thread and not found:  # say why, for the report
            from corelane.engine import _startmethod
            print("early start failure:", _startmethod._early_failure,
                  [t.name for t in threading.enumerate()],
                  [(c.pid, c.status(), c.cmdline()[:3]) for c in me.children()], file=sys.stderr)
    """)
    for with_thread, expected in (("1", "1"), ("0", "0")):
        out = subprocess.run([sys.executable, "-c", code, with_thread], capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == expected, (with_thread, out.stdout, out.stderr)
