"""Engine benchmark W2 in detail: fixed cost per call, scaling with size, chunks, submit at scale.

Every figure is a ratio inside one run, rows interleaved round by round (medians of ``--rounds``):

* per-call latency of a warm ``Pool.map`` of 100 / 2,000 / 20,000 trivial items, corelane vs
  ``multiprocessing.Pool.map``, with the number of chunks corelane sent;
* throughput at 20k / 200k / 2M items, warm and cold (pool start and shutdown included);
* ``submit`` with 100 / 10,000 / 100,000 futures outstanding, vs ProcessPoolExecutor.

    python benchmarks/bench_engine_calls.py [--quick] [--rounds 5]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, wait
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import corelane  # noqa: E402
from benchmarks._report import interleaved, machine, table, write_section  # noqa: E402

WORKERS = os.cpu_count() or 2
CTX = mp.get_context("fork")


def square(x: int) -> int:
    return x * x


def latency_rows(rounds: int) -> list[list[str]]:
    rows = []
    with corelane.Pool(WORKERS, start_method="fork") as pool, CTX.Pool(WORKERS) as peer:
        list(pool.map(square, range(100)))
        peer.map(square, range(100))
        for n in (100, 2_000, 20_000):
            items = list(range(n))
            before = pool.statistics().chunks_sent
            got = interleaved({"corelane": lambda items=items: list(pool.map(square, items)),
                               "mp": lambda items=items: peer.map(square, items)}, rounds)
            chunks = (pool.statistics().chunks_sent - before) / rounds
            rows.append([f"{n:,}", f"{got['corelane'] * 1e3:.2f}", f"{got['mp'] * 1e3:.2f}",
                         f"{got['corelane'] / got['mp']:.2f}x", f"{chunks:.0f}"])
    return rows


def scaling_rows(rounds: int, sizes: tuple[int, ...]) -> list[list[str]]:
    rows = []
    with corelane.Pool(WORKERS, start_method="fork") as pool, CTX.Pool(WORKERS) as peer:
        for n in sizes:
            items = list(range(n))

            def cold_peer(items: list[int] = items) -> None:
                with CTX.Pool(WORKERS) as p:
                    p.map(square, items)

            got = interleaved({
                "warm": lambda items=items: list(pool.map(square, items)),
                "warm peer": lambda items=items: peer.map(square, items),
                "cold": lambda items=items: corelane.map(square, items, workers=WORKERS, start_method="fork"),
                "cold peer": cold_peer,
            }, rounds)
            rows.append([f"{n:,}", f"{n / got['warm']:,.0f}", f"{n / got['warm peer']:,.0f}",
                         f"{got['warm peer'] / got['warm']:.2f}x", f"{n / got['cold']:,.0f}",
                         f"{n / got['cold peer']:,.0f}", f"{got['cold peer'] / got['cold']:.2f}x"])
    return rows


def submit_rate(executor: object, outstanding: int) -> tuple[float, float]:
    """(submits/s while queueing ``outstanding`` futures, completions/s for the whole batch)."""
    t0 = time.perf_counter()
    futures = [executor.submit(square, i) for i in range(outstanding)]  # type: ignore[attr-defined]
    queued = time.perf_counter() - t0
    wait(futures)
    return outstanding / queued, outstanding / (time.perf_counter() - t0)


def submit_rows(sizes: tuple[int, ...]) -> list[list[str]]:
    rows = []
    with corelane.Pool(WORKERS, start_method="fork") as pool, \
            ProcessPoolExecutor(WORKERS, mp_context=CTX) as ppe:
        submit_rate(pool, 100)
        submit_rate(ppe, 100)
        for n in sizes:
            ours, peer = submit_rate(pool, n), submit_rate(ppe, n)
            rows.append([f"{n:,}", f"{ours[0]:,.0f}", f"{ours[1]:,.0f}", f"{peer[0]:,.0f}",
                         f"{peer[1]:,.0f}", f"{ours[1] / peer[1]:.2f}x"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller inputs")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    sizes = (20_000, 200_000) if args.quick else (20_000, 200_000, 2_000_000)
    submits = (100, 10_000) if args.quick else (100, 10_000, 100_000)
    text = (f"### W2 in detail: cost per call, scaling, submit at scale\n\n{machine()}; medians of "
            f"{args.rounds} interleaved rounds, {time.strftime('%Y-%m-%d')}; fork, {WORKERS} workers."
            "\n\nWarm `Pool.map` of trivial items (`x * x`), one call's wall time:\n\n")
    text += table(["items", "corelane ms", "multiprocessing.Pool ms", "corelane / Pool",
                   "chunks corelane sent"], latency_rows(args.rounds))
    text += "\n\nThroughput (items/s); cold includes starting and stopping the pool:\n\n"
    text += table(["items", "corelane warm", "Pool warm", "ratio", "corelane.map cold",
                   "Pool cold", "ratio"], scaling_rows(args.rounds, sizes))
    text += ("\n\n`submit` of a trivial call with N futures outstanding (submits/s while queueing; "
             "completions/s for the batch):\n\n")
    text += table(["outstanding", "corelane submit/s", "corelane done/s", "PPE submit/s",
                   "PPE done/s", "done/s ratio"], submit_rows(submits))
    print(text)
    write_section("engine-calls", text)


if __name__ == "__main__":
    main()
