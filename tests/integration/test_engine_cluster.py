"""The engine on a Dask cluster: a real ``dask scheduler`` and two ``dask worker`` processes.

The module starts them once on free loopback ports (each worker: one process, one thread, under
a nanny that restarts it when it dies) and stops them at the end, checking that none of their
processes is left. The scheduler runs with ``allowed-failures=1`` (a task is re-run once after
its worker dies, then fails with KilledWorker) and ``worker-saturation=1.0`` (a one-thread
worker holds only the task it runs, so a death blames that task alone).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import engine_tasks as tasks
import ipc_tasks
import psutil
import pytest
from servers import free_port, wait_port

import corelane
from corelane.errors import (
    Broken,
    Closed,
    NotPicklable,
    StageError,
    TaskError,
    TaskTimeout,
    WorkerDied,
)
from corelane.events import ProgressEvent, RunFinished

try:
    import distributed
except ImportError:  # pragma: no cover - the dask extra is part of corelane[test]
    if os.environ.get("CI") == "true":
        pytest.fail("dask[distributed] is not installed; CI must install corelane[test]",
                    pytrace=False)
    pytest.skip("dask[distributed] is not installed (pip install 'corelane[dask]')",
                allow_module_level=True)

from corelane.engine.cluster import (  # noqa: E402
    MAX_WINDOW_CHUNKS_PER_WORKER,
    SCATTER_ABOVE,
    ClusterPool,
)

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
pytestmark = pytest.mark.allow_leaks  # the cluster outlives each case; the fixture checks at its end


class Cluster:
    """A scheduler and its workers, each in its own session (process group)."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), str(ROOT)]),
                   DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES="1",
                   DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION="1.0")
        dask = str(Path(sys.executable).parent / "dask")
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs = tmp
        self.sems_before = _named_semaphores()
        self._start([dask, "scheduler", "--host", "127.0.0.1", "--port", str(self.port),
                     "--no-dashboard"], env, "scheduler")
        wait_port(self.port, timeout=60)
        for n in range(2):
            self._start([dask, "worker", self.address, "--nworkers", "1", "--nthreads", "1",
                         "--no-dashboard", "--host", "127.0.0.1", "--name", f"w{n}"],
                        env, f"worker{n}")
        self.client = distributed.Client(self.address, timeout=30, set_as_default=False)
        self.wait_workers()

    def _start(self, cmd: list[str], env: dict[str, str], name: str) -> None:
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 - the child holds it
        self.procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log,
                                           stderr=subprocess.STDOUT, start_new_session=True))
        log.close()

    def wait_workers(self, n: int = 2) -> None:
        self.client.wait_for_workers(n, timeout=60)

    def worker_pids(self) -> list[int]:
        return sorted(self.client.run(os.getpid).values())

    def stop(self) -> list[str]:
        """Stop everything; return the processes still alive after it (should be none)."""
        family = []
        for proc in self.procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                family += [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(True)]
        with contextlib.suppress(Exception):
            self.client.close(timeout=5)
        for proc in reversed(self.procs):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        _, alive = psutil.wait_procs(family, timeout=5)
        for p in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        # The tests SIGKILL Dask workers, and a stop past its grace kills the nannies and their
        # resource trackers: the named semaphores those processes made cannot be unlinked by
        # them, so the harness that killed them unlinks what they left (nobody maps them now).
        for name in _named_semaphores() - self.sems_before:
            if not _mapped(name):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"/dev/shm/{name}")
        return [f"{p.pid} {p.name()}" for p in alive if p.is_running()]


def _named_semaphores() -> set[str]:
    try:
        return {n for n in os.listdir("/dev/shm") if n.startswith("sem.mp-")}
    except FileNotFoundError:
        return set()


def _mapped(name: str) -> bool:
    """Does a live process map /dev/shm/NAME?"""
    for maps in Path("/proc").glob("[0-9]*/maps"):
        with contextlib.suppress(OSError):
            if name in maps.read_text():
                return True
    return False


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    running = Cluster(tmp_path_factory.mktemp("dask"))
    try:
        yield running
    finally:
        left = running.stop()
    assert not left, f"dask processes left running: {left}"


@pytest.fixture
def pool(cluster: Cluster) -> Iterator[ClusterPool]:
    cluster.wait_workers()  # a previous test may have killed one; its nanny brings it back
    with ClusterPool(cluster.address) as p:
        yield p


def test_results_in_order_and_as_finished(cluster: Cluster, pool: ClusterPool) -> None:
    assert pool.workers == 2
    assert list(pool.imap(tasks.square, range(500))) == [x * x for x in range(500)]
    unordered = list(pool.imap_unordered(tasks.square, iter(range(300)), chunksize=7))
    assert sorted(unordered) == [x * x for x in range(300)]
    assert corelane.map(tasks.square, range(50), cluster=cluster.address) == [
        x * x for x in range(50)]
    got = corelane.map(lambda x: -x, range(20), ordered=False, cluster=cluster.address)
    assert sorted(got) == sorted(-x for x in range(20))
    with corelane.Pool(cluster=cluster.address) as same:  # the Pool entry point, same calls
        assert isinstance(same, ClusterPool)
        assert same.submit(tasks.square, 12).result(timeout=60) == 144
    # Both workers took part (chunks, not one big task).
    pids = set(pool.imap(lambda _: os.getpid(), range(40), chunksize=1))
    assert pids == set(cluster.worker_pids())


def test_a_task_that_raises(pool: ClusterPool) -> None:
    out = list(pool.imap(tasks.fail_on_five, range(10), errors="return"))
    assert [v for v in out if not isinstance(v, corelane.Failure)] == [0, 1, 2, 3, 4, 6, 7, 8, 9]
    failure = out[5]
    assert isinstance(failure, corelane.Failure)
    assert failure.index == 5 and isinstance(failure.exception, ValueError)
    seen = []
    with pytest.raises(TaskError) as info:
        for value in pool.imap(tasks.fail_on_five, range(10), chunksize=2):
            seen.append(value)
    assert seen == [0, 1, 2, 3, 4]  # every earlier result first
    assert info.value.index == 5 and isinstance(info.value.__cause__, ValueError)
    assert "engine_tasks.py" in info.value.remote_traceback  # the worker's file and line
    # The Executor API raises the task's own exception, the remote traceback as its cause.
    with pytest.raises(ValueError, match="bad input 5") as own:
        pool.submit(tasks.fail_on_five, 5).result(timeout=30)
    assert "engine_tasks.py" in str(own.value.__cause__)
    with pytest.raises(ValueError):
        list(pool.map(tasks.fail_on_five, range(10)))


def test_submit_executor_map_and_progress(pool: ClusterPool) -> None:
    futures = [pool.submit(pow, 2, n) for n in range(10)]
    assert [f.result(timeout=30) for f in futures] == [2**n for n in range(10)]
    assert list(pool.map(pow, [2, 3], [5, 2])) == [32, 9]
    events: list[Any] = []
    assert len(list(pool.imap(time.sleep, [0.02] * 30, progress=events.append))) == 30
    assert isinstance(events[-1], RunFinished) and events[-1].done == 30
    assert events[-1].state == "finished"
    assert any(isinstance(e, ProgressEvent) for e in events[:-1])


def test_a_callable_changed_between_calls_runs_as_it_is_now(pool: ClusterPool) -> None:
    scale = tasks.Scale(2)
    assert list(pool.imap(scale, [1, 2])) == [2, 4]
    scale.k = 3  # the same object: its pickle must be taken again, not reused
    assert list(pool.imap(scale, [1, 2])) == [3, 6]
    assert pool.submit(scale, 5).result(timeout=30) == 15


def test_unpicklable_item_fails_alone_and_function_fails_fast(pool: ClusterPool) -> None:
    lock = threading.Lock()
    out = list(pool.imap(str, [1, lock, 3], errors="return"))
    assert out[0] == "1" and out[2] == "3"
    assert isinstance(out[1].exception, NotPicklable) and "item 1" in str(out[1].exception)
    with pytest.raises(NotPicklable):
        pool.submit(lambda: lock.locked())
    # A result that cannot travel back fails only its own item (the rest of its chunk returns).
    out = list(pool.imap(lambda x: (i for i in range(x)) if x == 2 else x, range(6),
                         chunksize=6, errors="return"))
    assert [v for i, v in enumerate(out) if i != 2] == [0, 1, 3, 4, 5]
    assert isinstance(out[2].exception, NotPicklable) and "result" in str(out[2].exception)


def test_a_large_closure_is_scattered_once(cluster: Cluster, pool: ClusterPool) -> None:
    table = bytes(range(256)) * (2 * SCATTER_ABOVE // 256)  # its pickle is past SCATTER_ABOVE

    def lookup(x: int) -> int:
        return table[x % len(table)] + x

    before = set(cluster.client.who_has())
    assert list(pool.imap(lookup, range(300), chunksize=5)) == [lookup(x) for x in range(300)]
    assert pool.submit(lookup, 7).result(timeout=30) == lookup(7)
    # One key on the cluster holds the function's bytes, shared by the 61 tasks that used it.
    scattered = [k for k in set(cluster.client.who_has()) - before
                 if str(k).startswith("bytes-")]
    assert len(scattered) == 1, scattered
    del lookup
    deadline = time.monotonic() + 10  # released with the function
    while set(cluster.client.who_has()) & set(scattered) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not set(cluster.client.who_has()) & set(scattered)


def test_a_worker_killed_mid_map_the_map_completes(cluster: Cluster, pool: ClusterPool) -> None:
    victim = cluster.worker_pids()[0]
    killer = threading.Timer(1.0, os.kill, (victim, signal.SIGKILL))
    killer.start()
    started = time.monotonic()
    out = list(pool.imap(lambda x: (time.sleep(0.05), x * x)[1], range(120), chunksize=3,
                         errors="return"))
    killer.join()
    assert time.monotonic() - started < 60
    assert not psutil.pid_exists(victim) or psutil.Process(victim).status() == "zombie"
    # The chunk running on it ran again on the other worker (allowed-failures=1): nothing lost.
    assert out == [x * x for x in range(120)]


def test_the_item_that_kills_its_workers_fails_alone(cluster: Cluster, pool: ClusterPool) -> None:
    items = [(x, 13) for x in range(40)]
    started = time.monotonic()
    out = list(pool.imap(tasks.sigkill_on, items, chunksize=8, errors="return"))
    assert time.monotonic() - started < 90
    failed = [v for v in out if isinstance(v, corelane.Failure)]
    assert [f.index for f in failed] == [13], failed
    assert isinstance(failed[0].exception, WorkerDied)
    assert "Dask gave up" in str(failed[0].exception)
    assert [v for v in out if not isinstance(v, corelane.Failure)] == [
        x for x in range(40) if x != 13]
    cluster.wait_workers()
    with pytest.raises(WorkerDied):
        pool.submit(tasks.sigkill_on, (1, 1)).result(timeout=90)


def test_results_held_by_workers_that_died_after_them_are_not_lost(
        cluster: Cluster, pool: ClusterPool, tmp_path: Path) -> None:
    # Executor.map sends every call at once and fetches each result only when it is read: by
    # then each worker has killed itself a moment after returning, and its result is gone
    # with it. Dask re-runs the call (it finds its flag file and just returns), or corelane
    # sends it again; either way each value comes back once, in order.
    items = [(3, str(tmp_path / "a")), (4, str(tmp_path / "b"))]
    results = pool.map(tasks.square_then_die_once, items, chunksize=1)
    deadline = time.monotonic() + 30
    while not all((tmp_path / name).exists() for name in "ab"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.5)  # the workers are dead
    started = time.monotonic()
    assert list(results) == [9, 16]
    assert time.monotonic() - started < 10  # not Dask's 30 s connect timeout on a dead worker
    cluster.wait_workers()


def test_maps_through_repeated_worker_deaths_never_stall(cluster: Cluster) -> None:
    # A gather racing a worker's death once waited out Dask's 30 s connect timeout on the dead
    # worker (a 1.5 s map took 31.5 s in CI); corelane now asks again beside it.
    for _ in range(12):
        cluster.wait_workers()
        with ClusterPool(cluster.address) as pool:
            started = time.monotonic()
            out = list(pool.imap(tasks.sigkill_on, [(x, 13) for x in range(40)], chunksize=8,
                                 errors="return"))
            assert time.monotonic() - started < 15
            assert [f.index for f in out if isinstance(f, corelane.Failure)] == [13]
    cluster.wait_workers()


class Counting:
    """An endless source that counts how far it has been read."""

    def __init__(self) -> None:
        self.read = 0

    def __iter__(self) -> Iterator[int]:
        for n in itertools.count():
            self.read = n + 1
            yield n


def test_endless_generator_bounded_read_ahead_flat_memory(pool: ClusterPool) -> None:
    source = Counting()
    me = psutil.Process()
    rss = []
    max_ahead = 0
    for consumed, value in enumerate(pool.imap(tasks.square, source, chunksize=200), 1):
        assert value == (consumed - 1) ** 2
        if consumed % 10_000 == 0:
            rss.append(me.memory_info().rss)
        max_ahead = max(max_ahead, source.read - consumed)
        if consumed == 60_000:
            break
    # At most MAX_WINDOW_CHUNKS_PER_WORKER chunks per worker thread (cheap items: short
    # chunks, so more than 3 in flight) were read ahead of the consumer.
    assert max_ahead <= 200 * 2 * MAX_WINDOW_CHUNKS_PER_WORKER + 200 + 1, max_ahead
    assert rss[-1] - rss[0] < 20 * 2**20, [r // 2**20 for r in rss]


def test_per_item_timeout(cluster: Cluster, pool: ClusterPool) -> None:
    started = time.monotonic()
    out = list(pool.imap(time.sleep, [0.01, 30, 0.01], timeout=1.5, errors="return"))
    assert time.monotonic() - started < 20
    assert out[0] is None and out[2] is None
    assert isinstance(out[1].exception, TaskTimeout) and out[1].exception.index == 1
    # The runaway call ends with its worker: the nanny restarts it, and a fresh one joins.
    overdue = out[1].exception.pid
    deadline = time.monotonic() + 60
    while psutil.pid_exists(overdue):
        assert time.monotonic() < deadline, f"worker {overdue} still runs the overdue item"
        time.sleep(0.1)
    cluster.wait_workers()


def test_closed_pool_refuses_work(cluster: Cluster) -> None:
    pool = ClusterPool(cluster.address)
    pool.shutdown()
    with pytest.raises(Closed):
        pool.submit(pow, 2, 2)
    with pytest.raises(RuntimeError):
        list(pool.imap(tasks.square, [1]))


def test_ctrl_c_stops_a_cluster_map_promptly(cluster: Cluster, tmp_path: Path) -> None:
    script = tmp_path / "main.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        import corelane
        print("started", flush=True)
        corelane.map(time.sleep, [0.3] * 1000, chunksize=1, cluster={cluster.address!r})
    """))
    proc = subprocess.Popen([sys.executable, str(script)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"started"
        time.sleep(3.0)
        proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        _, err = proc.communicate(timeout=15)
        assert time.monotonic() - sent < 10
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode != 0 and b"KeyboardInterrupt" in err, err[-2000:]
    _assert_idle_soon(cluster)  # its tasks were cancelled


def _assert_idle_soon(cluster: Cluster) -> None:
    """No task of ours is left processing on the cluster (cancelled ones go within seconds)."""
    deadline = time.monotonic() + 15
    while any(cluster.client.processing().values()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(cluster.client.processing().values())


def test_unreachable_cluster_fails_fast() -> None:
    started = time.monotonic()
    with pytest.raises(Broken, match="cannot reach the Dask scheduler"):
        ClusterPool(f"tcp://127.0.0.1:{free_port()}", connect_timeout=2)
    assert time.monotonic() - started < 15


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)


def test_corelane_without_dask() -> None:
    # Importing corelane never imports Dask; without it, the cluster route says what to install.
    done = _python("import sys, corelane; corelane.map(abs, [-1], workers=0); "
                   "print(sorted(m for m in sys.modules if m.split('.')[0] in "
                   "('dask', 'distributed')))")
    assert done.stdout.strip() == "[]", done.stderr
    done = _python("import sys; sys.modules['distributed'] = None; import corelane; "
                   "corelane.map(abs, [-1], cluster='tcp://127.0.0.1:1')")
    assert "pip install 'corelane[dask]'" in done.stderr and done.returncode == 1, done.stderr


def test_images_command_on_the_cluster(cluster: Cluster, tmp_path: Path) -> None:
    import imaging_samples as samples

    photos = tmp_path / "in"
    photos.mkdir()
    for i in range(4):
        (photos / f"p{i}.jpg").write_bytes(samples.photo_jpeg(320, 240, seed=i))
    (photos / "broken.jpg").write_bytes(b"not a jpeg")
    cmd = [sys.executable, "-m", "corelane", "images", str(photos), "--out",
           str(tmp_path / "out"), "--sizes", "64", "--quiet", "--cluster"]
    done = subprocess.run([*cmd, cluster.address], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1, done.stderr  # one input failed, the others were written
    assert "processed 4 of 5 images (1 failed)" in done.stdout
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        f"p{i}_64.webp" for i in range(4)]
    nobody = subprocess.run([*cmd, f"tcp://127.0.0.1:{free_port()}"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert nobody.returncode == 2 and "cannot reach the Dask scheduler" in nobody.stderr


# ---------------------------------------------------------------- Pipeline(cluster=...)


def test_pipeline_on_the_cluster_orders_and_stops_on_a_failure(cluster: Cluster) -> None:
    address = cluster.address
    out = (corelane.Pipeline(range(200), cluster=address)
           .stage(ipc_tasks.inc).stage(lambda x: x * 3).run())
    assert out == [(x + 1) * 3 for x in range(200)]
    unordered = (corelane.Pipeline(iter(range(100)), ordered=False, cluster=address)
                 .stage(ipc_tasks.inc, chunksize=3).stage(ipc_tasks.square).run())
    assert sorted(unordered) == [(x + 1) ** 2 for x in range(100)]
    # errors="raise": an endless source, so the pipeline can only end by stopping on the error.
    pipe = (corelane.Pipeline(itertools.count(), cluster=address)
            .stage(ipc_tasks.inc).stage(ipc_tasks.fail_on_13, name="check")
            .stage(ipc_tasks.square))
    with pytest.raises(StageError) as info:
        pipe.run()
    err = info.value
    assert err.stage == "check" and isinstance(err.cause, TaskError)
    assert err.cause.item == 13 and err.cause.index == 12  # the stage's item, its source index
    assert isinstance(err.cause.__cause__, ValueError)
    assert "ipc_tasks.py" in err.cause.remote_traceback and "unlucky 13" in str(err)
    # errors="return": a Failure in place, everything else completed.
    out = (corelane.Pipeline(range(30), errors="return", cluster=address)
           .stage(ipc_tasks.inc).stage(ipc_tasks.fail_on_13, name="check")
           .stage(ipc_tasks.square).run())
    (failure,) = [o for o in out if isinstance(o, corelane.Failure)]
    assert out[12] is failure and failure.index == 12 and failure.item == 13
    assert isinstance(failure.exception, StageError) and failure.exception.stage == "check"
    assert [o for i, o in enumerate(out) if i != 12] == [
        (x + 1) ** 2 for x in range(30) if x != 12]
    with pytest.raises(ValueError, match="do not apply"):
        corelane.Pipeline([1], cluster=address, start_method="spawn")
    _assert_idle_soon(cluster)


def test_pipeline_on_the_cluster_reads_only_as_fast_as_results_are_consumed(
        cluster: Cluster) -> None:
    source = Counting()
    it = iter(corelane.Pipeline(source, buffer=4, cluster=cluster.address)
              .stage(ipc_tasks.inc, chunksize=4).stage(ipc_tasks.inc, chunksize=4))
    try:
        assert [next(it) for _ in range(50)] == [x + 2 for x in range(50)]
        time.sleep(1.0)  # the consumer stalls: everything upstream must stop reading
        stalled = source.read
        time.sleep(1.0)
        assert source.read == stalled  # flat: no reading while nobody consumes
        # Bounded by each stage's window (4 items x 2 workers x MAX_WINDOW_CHUNKS_PER_WORKER)
        # and the queues, not by the source.
        assert stalled < 50 + 2 * (4 * 2 * MAX_WINDOW_CHUNKS_PER_WORKER + 4 + 4), stalled
        assert next(it) == 52
    finally:
        it.close()
    _assert_idle_soon(cluster)


def test_pipeline_on_the_cluster_a_stage_item_that_kills_its_workers(cluster: Cluster) -> None:
    cluster.wait_workers()
    out = (corelane.Pipeline(range(20), errors="return", cluster=cluster.address)
           .stage(ipc_tasks.inc).stage(ipc_tasks.die_on_7, name="die").stage(ipc_tasks.inc)
           .run())
    assert isinstance(out[6], corelane.Failure)
    died = out[6].exception
    assert isinstance(died, StageError) and died.stage == "die"
    assert isinstance(died.cause, WorkerDied) and died.cause.index == 6
    assert "Dask gave up" in str(died.cause)
    assert [o for i, o in enumerate(out) if i != 6] == [x + 2 for x in range(20) if x != 6]
    cluster.wait_workers()
