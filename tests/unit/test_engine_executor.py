"""corelane.Pool keeps the concurrent.futures.Executor contract, as CPython's own suite tests
ProcessPoolExecutor: wait, as_completed, map (several iterables, timeout), shutdown variants,
callbacks, thread safety, references released; plus inline mode, retention and broken pools."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import weakref
from concurrent import futures
from pathlib import Path
from typing import Any

import pytest

import corelane
from corelane.errors import Broken, Closed, RemoteTraceback
from tests.engine_tasks import fail_on_five, sleep_for, square, touch_then_sleep


def mul(x: int, y: int) -> int:
    return x * y


class Model:
    def predict(self, x: int) -> int:
        return x + 1


def test_is_an_executor() -> None:
    assert issubclass(corelane.Pool, futures.Executor)


def test_wait_and_as_completed() -> None:
    with corelane.Pool(2) as pool:
        fs = [pool.submit(sleep_for, d) for d in (0.3, 0.01, 0.01)]
        done, not_done = futures.wait(fs, return_when=futures.FIRST_COMPLETED, timeout=30)
        assert done and fs[0] in not_done | done
        done, not_done = futures.wait(fs, timeout=30)
        assert done == set(fs) and not not_done
        assert sorted(f.result() for f in futures.as_completed(fs, timeout=30)) == [0.01, 0.01, 0.3]
        bad = pool.submit(fail_on_five, 5)
        done, _ = futures.wait([bad, pool.submit(sleep_for, 5)], timeout=30,
                               return_when=futures.FIRST_EXCEPTION)
        assert bad in done


def test_map_several_iterables_shortest_wins() -> None:
    with corelane.Pool(2) as pool:
        assert list(pool.map(mul, range(10), range(5))) == [x * x for x in range(5)]
        assert list(pool.map(pow, [2, 3], [5, 6], chunksize=1)) == [32, 729]
        assert list(pool.map(square, [])) == []


def test_map_raises_the_tasks_own_exception_in_turn() -> None:
    with corelane.Pool(2) as pool:
        it = pool.map(fail_on_five, range(10))
        assert [next(it) for _ in range(5)] == [0, 1, 2, 3, 4]
        with pytest.raises(ValueError, match="bad input 5") as info:
            next(it)
        assert isinstance(info.value.__cause__, RemoteTraceback)


def test_map_timeout_is_a_deadline_for_the_whole_call() -> None:
    with corelane.Pool(2) as pool:
        it = pool.map(sleep_for, [0.01, 5.0, 0.01], timeout=0.5)
        assert next(it) == 0.01
        t0 = time.monotonic()
        with pytest.raises(futures.TimeoutError):
            list(it)
        assert time.monotonic() - t0 < 3


def test_map_runs_without_being_iterated(tmp_path: Path) -> None:
    # Each item leaves a file as it starts: the files, not a sleep, show the work ran un-iterated.
    with corelane.Pool(2) as pool:
        started = time.monotonic()
        results = pool.map(touch_then_sleep, [(str(tmp_path), i, 0.5) for i in range(4)])
        assert time.monotonic() - started < 0.5  # lazy results: back before any item could end
        deadline = time.monotonic() + 30
        while len(list(tmp_path.iterdir())) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["0", "1", "2", "3"]  # eager work
        assert list(results) == [0, 1, 2, 3]


def test_shutdown_wait_finishes_pending_work() -> None:
    pool = corelane.Pool(1)
    fs = [pool.submit(sleep_for, 0.05) for _ in range(5)]
    pool.shutdown(wait=True)
    assert all(f.done() and f.result() == 0.05 for f in fs)
    with pytest.raises(RuntimeError):
        pool.submit(square, 1)
    with pytest.raises(Closed):
        pool.submit(square, 1)


def test_shutdown_cancel_futures_cancels_what_has_not_started() -> None:
    pool = corelane.Pool(1)
    first = pool.submit(sleep_for, 0.3)
    time.sleep(0.1)
    rest = [pool.submit(sleep_for, 0.3) for _ in range(5)]
    pool.shutdown(wait=True, cancel_futures=True)
    assert first.result() == 0.3
    assert sum(f.cancelled() for f in rest) >= 4


@pytest.mark.parametrize("how", ["cancel", "cancel_futures", "terminate"])
def test_wait_and_as_completed_see_a_call_cancelled_while_queued_at_once(how: str) -> None:
    # wait() and as_completed() look for CANCELLED_AND_NOTIFIED, which only the executor's
    # set_running_or_notify_cancel() sets; cancel() alone left them waiting until their timeout.
    pool = corelane.Pool(1)
    try:
        running = pool.submit(sleep_for, 0.5)
        while not running.running():
            time.sleep(0.01)
        queued = [pool.submit(sleep_for, 0.1) for _ in range(3)]
        assert queued[0].cancel()
        if how == "cancel_futures":
            pool.shutdown(wait=True, cancel_futures=True)
        elif how == "terminate":
            pool.terminate()
        else:
            assert running.result(timeout=30) == 0.5
        t0 = time.monotonic()
        done, not_done = futures.wait(queued[:1], timeout=10)
        assert queued[0] in done and not not_done
        assert list(futures.as_completed(queued[:1], timeout=10)) == queued[:1]
        assert time.monotonic() - t0 < 2
        if how == "cancel":
            assert [f.result(timeout=30) for f in queued[1:]] == [0.1, 0.1]
        else:  # the other queued calls are cancelled or failed, and wait() sees them too
            done, not_done = futures.wait(queued, timeout=10)
            assert not not_done and all(f.cancelled() or f.exception() for f in queued)
    finally:
        pool.terminate()


def test_shutdown_without_wait_returns_at_once_and_finishes() -> None:
    pool = corelane.Pool(1)
    f = pool.submit(sleep_for, 0.3)
    t0 = time.monotonic()
    pool.shutdown(wait=False)
    assert time.monotonic() - t0 < 0.2
    assert f.result(timeout=30) == 0.3
    pool.close()


def test_done_callbacks_run_once_with_the_future() -> None:
    with corelane.Pool(2) as pool:
        seen: list[Any] = []
        f = pool.submit(square, 7)
        f.add_done_callback(seen.append)
        assert f.result(timeout=30) == 49
        deadline = time.monotonic() + 5
        while not seen and time.monotonic() < deadline:
            time.sleep(0.01)
        assert seen == [f]


def test_submit_from_many_threads() -> None:
    with corelane.Pool(2) as pool:
        results: list[int] = []
        lock = threading.Lock()

        def worker(base: int) -> None:
            fs = [pool.submit(square, base + i) for i in range(50)]
            with lock:
                results.extend(f.result(timeout=60) for f in fs)

        threads = [threading.Thread(target=worker, args=(k * 100,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(results) == sorted((k * 100 + i) ** 2 for k in range(8) for i in range(50))


def test_references_to_functions_and_results_are_released() -> None:
    with corelane.Pool(1) as pool:
        model = Model()
        ref = weakref.ref(model)
        assert pool.submit(model.predict, 1).result(timeout=30) == 2
        assert list(pool.map(model.predict, range(3))) == [1, 2, 3]
        del model
        gc.collect()
        assert ref() is None, "the pool kept a submitted bound method's object alive"


def test_dropped_pool_is_collected_and_its_workers_exit() -> None:
    pool = corelane.Pool(2)
    future = pool.submit(sleep_for, 0.2)
    pids = pool.pids
    ref = weakref.ref(pool)
    del pool
    gc.collect()
    assert ref() is None
    assert future.result(timeout=30) == 0.2  # its work still finished
    import psutil

    deadline = time.monotonic() + 10
    while any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
              for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in pids if psutil.pid_exists(p)
                and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]


def test_broken_pool_says_so_at_once_with_a_fresh_exception() -> None:
    from tests.engine_tasks import init_raises

    pool = corelane.Pool(1, initializer=init_raises)
    f = pool.submit(square, 2)
    assert isinstance(f.exception(timeout=30), Broken)
    errors = []
    for _ in range(20):
        with pytest.raises(Broken) as info:
            pool.submit(square, 1)
        errors.append(info.value)
    assert len({id(e) for e in errors}) == 20
    assert isinstance(errors[-1], futures.BrokenExecutor)
    pool.terminate()


def test_run_in_executor() -> None:
    async def main(pool: corelane.Pool) -> list[int]:
        loop = asyncio.get_running_loop()
        return list(await asyncio.gather(*(loop.run_in_executor(pool, square, i) for i in range(5))))

    with corelane.Pool(2) as pool:
        assert asyncio.run(main(pool)) == [0, 1, 4, 9, 16]


def test_inline_mode_gives_the_same_results_and_errors() -> None:
    with corelane.Pool(0) as pool:
        assert pool.pids == []
        assert pool.submit(square, 4).result() == 16
        with pytest.raises(ValueError, match="bad input 5"):
            pool.submit(fail_on_five, 5).result()
        assert list(pool.map(mul, [1, 2], [3, 4])) == [3, 8]
        out = list(pool.imap(fail_on_five, range(7), errors="return"))
        assert isinstance(out[5], corelane.Failure) and out[:5] == [0, 1, 2, 3, 4]
        with pytest.raises(corelane.TaskError) as info:
            corelane.map(fail_on_five, range(7), workers=0)
        assert info.value.index == 5 and "fail_on_five" in info.value.remote_traceback
    assert corelane.map(square, range(4), workers=0) == [0, 1, 4, 9]


def test_pending_work_finishes_at_interpreter_exit(tmp_path: Any) -> None:
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        f"""
        import corelane
        from tests.engine_tasks import touch_then_sleep
        pool = corelane.Pool(1)
        for i in range(3):
            pool.submit(touch_then_sleep, ({str(tmp_path)!r}, i, 0.1))
        # no shutdown: as with ProcessPoolExecutor, the submitted work still runs
        """
    )
    root = __file__.rsplit("/tests/", 1)[0]
    proc = subprocess.run([sys.executable, "-c", script], cwd=root, timeout=60,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0", "1", "2"]


def test_batched_submits_fail_only_the_bad_call() -> None:
    from tests.engine_tasks import sigkill_on

    with corelane.Pool(2) as pool:
        assert [f.result(timeout=30) for f in [pool.submit(sigkill_on, (i, -1)) for i in range(50)]]
        before = pool.statistics().chunks_sent
        fs = [pool.submit(sigkill_on, (i, 250)) for i in range(500)]
        done, _ = futures.wait(fs, timeout=60)
        assert len(done) == 500
        assert isinstance(fs[250].exception(), corelane.WorkerDied)
        assert [f.result() for i, f in enumerate(fs) if i != 250] == [i for i in range(500) if i != 250]
        assert pool.statistics().chunks_sent - before < 500  # a backlog went in batches
        assert pool.statistics().worker_deaths in (1, 2)  # 2: died in a batch, then alone
