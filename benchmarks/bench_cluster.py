"""The engine on a Dask cluster vs the local engine, on the same machine, in one run.

W1 (the prime test of bench_engine.py) and the imaging job (bench_imaging.py's: read a 12 MP
JPEG, 1024/512/128 WebP, features, write) through ``ClusterPool`` on a ``LocalCluster`` of 2
one-thread worker processes, and through a local ``corelane.Pool(2)``: medians of interleaved
rounds (the rows take turns, so a noisy minute on a shared machine hits both), and their ratio.
Beside the wall time, the CPU seconds each side spent, split between the caller's process (for
the cluster it also runs the scheduler and the nannies: a ``LocalCluster`` keeps them there) and
the worker processes: on a shared machine CPU time is steadier than wall time, and it shows what
the cluster's own processes take from the two cores. Then what one task costs: tiny items one
per task, in adaptive chunks, and one submit at a time.

    python benchmarks/bench_cluster.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# The cluster's worker processes import the task functions from this package, as corelane does.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))

import dask  # noqa: E402
import psutil  # noqa: E402
from distributed import LocalCluster  # noqa: E402

import corelane  # noqa: E402
from benchmarks._report import interleaved, machine, table, write_section  # noqa: E402
from benchmarks.bench_engine import is_prime, square  # noqa: E402
from corelane.commands.images import _Task, process_file  # noqa: E402
from corelane.engine.cluster import ClusterPool  # noqa: E402
from corelane.imaging import ImageLimits, ProcessOptions  # noqa: E402
from tests import imaging_samples as samples  # noqa: E402

WORKERS = 2
LOCAL, CLUSTER = "local corelane.Pool(2)", "ClusterPool(LocalCluster, 2 workers)"


def _cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


class Side:
    """One row: how to run the job, and which processes are its caller and its workers."""

    def __init__(self, name: str, run: Callable[[], object], workers: Callable[[], list[int]]):
        self.name, self.run, self.workers = name, run, workers
        self.cpu: dict[str, list[float]] = {"caller": [], "workers": []}

    def __call__(self) -> None:
        workers = self.workers()
        caller0, workers0 = _cpu([os.getpid()]), _cpu(workers)
        self.run()
        self.cpu["caller"].append(_cpu([os.getpid()]) - caller0)
        self.cpu["workers"].append(_cpu(workers) - workers0)


def compare(title: str, local: Side, cluster: Side, rounds: int) -> tuple[str, float, float]:
    """Interleaved medians of both sides: wall, CPU by process, the ratio; the text, the wall
    ratio and the ratio of CPU seconds (all processes)."""
    times = interleaved({local.name: local, cluster.name: cluster}, rounds)
    base = times[local.name]
    rows = []
    for side in (local, cluster):
        caller = statistics.median(side.cpu["caller"])
        workers = statistics.median(side.cpu["workers"])
        rows.append((side.name, f"{times[side.name]:.3f}", f"{base / times[side.name]:.2f}",
                     f"{caller:.2f}", f"{workers:.2f}", f"{caller + workers:.2f}"))
    ratio = base / times[cluster.name]
    cpu = [statistics.median(side.cpu["caller"]) + statistics.median(side.cpu["workers"])
           for side in (local, cluster)]
    return (f"### {title}\n\n" + table(
        ["row", "median s", "ratio to local (higher is better)",
         "CPU s: caller's process", "CPU s: workers", "CPU s: all"], rows),
        ratio, cpu[0] / cpu[1])


def w1(cluster: ClusterPool, local: corelane.Pool, count: int,
       rounds: int) -> tuple[str, float, float]:
    numbers = list(range(10_000_000, 10_000_000 + count))
    expected = sum(map(is_prime, numbers[:2000]))
    assert sum(list(cluster.imap(is_prime, numbers[:2000]))) == expected  # warm both
    assert sum(list(local.imap(is_prime, numbers[:2000]))) == expected
    return compare(
        f"W1 — prime test of {count:,} numbers from 10,000,000, adaptive chunks",
        Side(LOCAL, lambda: list(local.imap(is_prime, numbers)), lambda: local.pids),
        Side(CLUSTER, lambda: list(cluster.imap(is_prime, numbers)), lambda: _dask_pids(cluster)),
        rounds)


def imaging(cluster: ClusterPool, local: corelane.Pool, count: int,
            rounds: int) -> tuple[str, float, float]:
    """bench_imaging.py's job: files on a disk both sides read, outputs written by the workers."""
    distinct = min(count, 4)
    with tempfile.TemporaryDirectory(prefix="corelane-bench-cluster-") as tmp:
        folder, out = Path(tmp) / "in", Path(tmp) / "out"
        folder.mkdir()
        out.mkdir()
        photos = list(local.imap(_photo, [(s, str(folder / f"photo{s:02d}.jpg")) for s in range(distinct)]))
        for i in range(distinct, count):  # copies under other names, as bench_imaging.py does
            (folder / f"photo{i:02d}.jpg").write_bytes(Path(photos[i % distinct]).read_bytes())
        options = ProcessOptions(sizes=(1024, 512, 128), format="webp", quality=85, features=True)
        tasks = [_Task(str(p), p.stem, str(out), options, ImageLimits())
                 for p in sorted(folder.iterdir())]
        list(cluster.imap(process_file, tasks[:2]))  # warm both: imports on the workers
        list(local.imap(process_file, tasks[:2]))
        return compare(
            f"Imaging job — {count} photos of 12 MP (read, decode, 1024/512/128 WebP q85, "
            "features, write)",
            Side(LOCAL, lambda: list(local.imap(process_file, tasks)), lambda: local.pids),
            Side(CLUSTER, lambda: list(cluster.imap(process_file, tasks)),
                 lambda: _dask_pids(cluster)),
            rounds)


def _photo(args: tuple[int, str]) -> str:
    seed, path = args
    Path(path).write_bytes(samples.photo_jpeg(4000, 3000, seed=seed, quality=90))
    return path


def _dask_pids(cluster: ClusterPool) -> list[int]:
    return list(cluster.client.run(os.getpid).values())


def per_task(cluster: ClusterPool, local: corelane.Pool, n: int, rounds: int) -> str:
    items = list(range(n))
    subs = max(1, n // 10)

    def submits(pool: corelane.Pool | ClusterPool) -> None:
        for x in range(subs):
            pool.submit(square, x).result()

    def raw_one() -> None:  # Dask alone: a task per item, every key at once, one gather
        client.gather(client.map(square, items, pure=False))

    def raw_submits() -> None:
        for x in range(subs):
            client.submit(square, x, pure=False).result()

    client = cluster.client
    times = interleaved({
        "local one": lambda: list(local.imap(square, items, chunksize=1)),
        "cluster one": lambda: list(cluster.imap(square, items, chunksize=1)),
        "local adaptive": lambda: list(local.imap(square, items)),
        "cluster adaptive": lambda: list(cluster.imap(square, items)),
        "local submit": lambda: submits(local),
        "cluster submit": lambda: submits(cluster),
        "dask one": raw_one,
        "dask submit": raw_submits,
    }, rounds)
    rows = []
    for label, key, per in (("one item per task (chunksize=1)", "one", n),
                            ("adaptive chunks", "adaptive", n),
                            ("submit(...).result(), one at a time", "submit", subs)):
        us = [f"{times[f'{side} {key}'] / per * 1e6:,.0f}" if f"{side} {key}" in times else ""
              for side in ("local", "cluster", "dask")]
        rows.append((label, *us))
    return (f"### Cost per item of a trivial function ({n:,} items; submits: {subs:,})\n\n"
            + table(["how", "local Pool(2) µs/item", "ClusterPool µs/item",
                     "Dask alone (Client.map + gather; submit) µs/item"], rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller inputs, 3 rounds")
    args = parser.parse_args()
    rounds = 3 if args.quick else 7
    count = 70_000 if args.quick else 300_000
    photos = 4 if args.quick else 12
    load = os.getloadavg()[0]
    # Dask's default worker-saturation (1.1: one task queued behind the running one, so a
    # one-thread worker never waits for the scheduler between chunks).
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        started = time.perf_counter()
        lc = LocalCluster(n_workers=WORKERS, threads_per_worker=1, processes=True,
                          dashboard_address=None)
        up = time.perf_counter() - started
    parts: list[tuple[str, float, float]] = []
    try:
        with ClusterPool(lc) as cluster, corelane.Pool(WORKERS) as local:
            print("running W1 ...", flush=True)
            parts.append(w1(cluster, local, count, rounds))
            print(parts[-1][0], flush=True)
            print("running the imaging job ...", flush=True)
            parts.append(imaging(cluster, local, photos, rounds))
            print(parts[-1][0], flush=True)
            print("running per-task costs ...", flush=True)
            parts.append((per_task(cluster, local, 500 if args.quick else 1_000, rounds), 0.0, 0.0))
            print(parts[-1][0], flush=True)
    finally:
        lc.close()
    head = (f"## Cluster (Dask)\n\nMachine: {machine()}; {WORKERS} workers each side; medians "
            f"of {rounds} interleaved rounds, {time.strftime('%Y-%m-%d')}; load average "
            f"{load:.1f} at the start (the machine is shared: read the ratios, measured in the "
            f"same run, not the seconds). The LocalCluster took {up:.1f} s to start. W1 ran at "
            f"**{parts[0][1]:.2f}** of the local engine's speed ({parts[0][2]:.2f} by CPU "
            f"seconds), the imaging job at **{parts[1][1]:.2f}** ({parts[1][2]:.2f}).\n")
    text = "\n\n".join([head, *(part for part, _, _ in parts)])
    if args.quick:
        print("(--quick: docs/benchmarks.md left unchanged)")
    else:
        write_section("cluster", text)


if __name__ == "__main__":
    main()
