"""The engine on a Dask cluster vs the local engine, on the same machine, in one run.

W1 (the prime test of bench_engine.py) through ``ClusterPool`` on a ``LocalCluster`` of 2
one-thread worker processes, and through a local ``corelane.Pool(2)``: medians of interleaved
rounds (the rows take turns, so a noisy minute on a shared machine hits both), and their ratio.
Then what one task costs: tiny items one per task, in adaptive chunks, and one submit at a time.

    python benchmarks/bench_cluster.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# The cluster's worker processes import the task functions from this package, as corelane does.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))

import dask  # noqa: E402
from distributed import LocalCluster  # noqa: E402

import corelane  # noqa: E402
from benchmarks._report import interleaved, machine, table, write_section  # noqa: E402
from benchmarks.bench_engine import is_prime, square  # noqa: E402
from corelane.engine.cluster import ClusterPool  # noqa: E402

WORKERS = 2


def w1(cluster: ClusterPool, local: corelane.Pool, count: int, rounds: int) -> str:
    numbers = list(range(10_000_000, 10_000_000 + count))
    expected = sum(map(is_prime, numbers[:2000]))
    assert sum(list(cluster.imap(is_prime, numbers[:2000]))) == expected  # warm both
    assert sum(list(local.imap(is_prime, numbers[:2000]))) == expected
    times = interleaved({
        "local corelane.Pool(2).imap": lambda: list(local.imap(is_prime, numbers)),
        "ClusterPool(LocalCluster, 2 workers).imap": lambda: list(cluster.imap(is_prime, numbers)),
    }, rounds)
    base = times["local corelane.Pool(2).imap"]
    rows = [(name, f"{s:.3f}", f"{base / s:.2f}") for name, s in times.items()]
    return (f"### W1 — prime test of {count:,} numbers from 10,000,000, adaptive chunks\n\n"
            + table(["row", "median s", "ratio to local (higher is better)"], rows))


def per_task(cluster: ClusterPool, local: corelane.Pool, n: int, rounds: int) -> str:
    items = list(range(n))
    subs = max(1, n // 10)

    def submits(pool: corelane.Pool | ClusterPool) -> None:
        for x in range(subs):
            pool.submit(square, x).result()

    times = interleaved({
        "local one": lambda: list(local.imap(square, items, chunksize=1)),
        "cluster one": lambda: list(cluster.imap(square, items, chunksize=1)),
        "local adaptive": lambda: list(local.imap(square, items)),
        "cluster adaptive": lambda: list(cluster.imap(square, items)),
        "local submit": lambda: submits(local),
        "cluster submit": lambda: submits(cluster),
    }, rounds)
    rows = []
    for label, key, per in (("one item per task (chunksize=1)", "one", n),
                            ("adaptive chunks", "adaptive", n),
                            ("submit(...).result(), one at a time", "submit", subs)):
        local_us = times[f"local {key}"] / per * 1e6
        cluster_us = times[f"cluster {key}"] / per * 1e6
        rows.append((label, f"{local_us:,.0f}", f"{cluster_us:,.0f}"))
    return (f"### Cost per item of a trivial function ({n:,} items; submits: {subs:,})\n\n"
            + table(["how", "local Pool(2) µs/item", "ClusterPool µs/item"], rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller inputs, 3 rounds")
    args = parser.parse_args()
    rounds = 3 if args.quick else 5
    count = 70_000 if args.quick else 300_000
    # Dask's default worker-saturation (1.1: one task queued behind the running one); 1.0 blames
    # deaths exactly and measured the same here (W1 at 0.57 of local in one run).
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        started = time.perf_counter()
        lc = LocalCluster(n_workers=WORKERS, threads_per_worker=1, processes=True,
                          dashboard_address=None)
        up = time.perf_counter() - started
    try:
        with ClusterPool(lc) as cluster, corelane.Pool(WORKERS) as local:
            parts = [f"## Cluster (Dask)\n\nMachine: {machine()}; {WORKERS} workers each side; "
                     f"medians of {rounds} interleaved rounds, {time.strftime('%Y-%m-%d')}. "
                     f"The LocalCluster took {up:.1f} s to start.\n"]
            print("running W1 ...", flush=True)
            parts.append(w1(cluster, local, count, rounds))
            print(parts[-1], flush=True)
            print("running per-task costs ...", flush=True)
            parts.append(per_task(cluster, local, 500 if args.quick else 1_000, rounds))
            print(parts[-1], flush=True)
    finally:
        lc.close()
    write_section("cluster", "\n\n".join(parts))


if __name__ == "__main__":
    main()
