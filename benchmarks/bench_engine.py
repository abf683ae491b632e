"""Engine benchmarks W1-W3: corelane side by side with its peers, in one run.

Every row is also given as a ratio to the *ceiling* row of the same run: the same work dealt by
hand to plain processes (balanced blocks, no pool, nothing shipped back). On a shared machine
the ceiling shows what the cores really gave while the benchmark ran, so ratios stay comparable
when absolute times do not.

    python benchmarks/bench_engine.py [--quick]
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import corelane  # noqa: E402
from benchmarks._report import (  # noqa: E402
    OUT,
    interleaved_samples,
    machine,
    paired_ratio,
    table,
    write_section,
)  # noqa: E402

WORKERS = os.cpu_count() or 2
CTX = mp.get_context("fork")  # the peers' fastest start method on Linux
# corelane is pinned to it too: its default is fork only while no other thread runs, and from
# the first joblib row on, loky's threads stay alive in this process (corelane would then take
# the forkserver, whose workers import this module afresh at every cold call). Its forkserver
# cost is a row of its own in W1.
FORK = "fork"


# ---------------------------------------------------------------- workloads


def is_prime(n: int) -> bool:
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    for i in range(3, math.isqrt(n) + 1, 2):
        if n % i == 0:
            return False
    return True


def square(x: int) -> int:
    return x * x


UNIT = 3000  # loop iterations in one unit of W3 work (~0.1 ms)


def heavy_tailed(units: int) -> int:
    s = 0
    for i in range(units * UNIT):
        s += i
    return s


def w3_costs(n: int = 2000) -> list[int]:
    """Light tasks first; the last eighth holds ~70% of the work (bunched at the end)."""
    heavy = n // 8
    return [1] * (n - heavy) + [16] * heavy


# ---------------------------------------------------------------- the ceiling


def _ceiling_worker(fn: Callable[[Any], Any], items: Sequence[Any]) -> None:
    for item in items:
        fn(item)


def ceiling(fn: Callable[[Any], Any], blocks: list[list[Any]]) -> None:
    """The same work split by hand over plain processes: no pool, no results shipped back."""
    procs = [CTX.Process(target=_ceiling_worker, args=(fn, block)) for block in blocks]
    for p in procs:
        p.start()
    for p in procs:
        p.join()


def balanced_blocks(items: list[Any], n: int) -> list[list[Any]]:
    """Contiguous equal blocks (an interleaved split would give one process all the odd numbers)."""
    return [items[k * len(items) // n : (k + 1) * len(items) // n] for k in range(n)]


def longest_first_blocks(costs: list[int], n: int) -> list[list[int]]:
    """Greedy longest-processing-time split: a near-optimal balance for known costs."""
    blocks: list[list[int]] = [[] for _ in range(n)]
    loads = [0] * n
    for cost in sorted(costs, reverse=True):
        k = loads.index(min(loads))
        blocks[k].append(cost)
        loads[k] += cost
    return blocks


# ---------------------------------------------------------------- peers


def run_pool_map(fn: Callable[[Any], Any], items: list[Any], chunksize: int | None = None) -> Any:
    with CTX.Pool(WORKERS) as pool:
        return pool.map(fn, items, chunksize)


def run_pool_imap1(fn: Callable[[Any], Any], items: list[Any]) -> Any:
    with CTX.Pool(WORKERS) as pool:
        return list(pool.imap(fn, items, chunksize=1))


def run_ppe(fn: Callable[[Any], Any], items: list[Any], chunksize: int = 1) -> Any:
    with ProcessPoolExecutor(WORKERS, mp_context=CTX) as ex:
        return list(ex.map(fn, items, chunksize=chunksize))


def run_joblib(fn: Callable[[Any], Any], items: list[Any]) -> Any:
    from joblib import Parallel, delayed

    return Parallel(n_jobs=WORKERS)(delayed(fn)(x) for x in items)


def run_mpire(fn: Callable[[Any], Any], items: list[Any]) -> Any:
    from mpire import WorkerPool

    with WorkerPool(WORKERS, start_method="fork") as pool:
        return pool.map(fn, items, progress_bar=False)


def run_corelane(fn: Callable[[Any], Any], items: list[Any], start_method: str = FORK) -> Any:
    return corelane.map(fn, items, workers=WORKERS, start_method=start_method)


def tuned_chunks(n: int) -> int:
    return max(1, n // (WORKERS * 4))


# ---------------------------------------------------------------- running




def speed_rows(
    serial_s: float, ceiling_s: float, rows: list[tuple[str, float]], note: dict[str, str]
) -> list[list[str]]:
    ceiling_speedup = serial_s / ceiling_s
    out = [["serial (one process)", f"{serial_s:.3f}", "1.00x", f"{1 / ceiling_speedup:.2f}", ""]]
    out.append(["**ceiling** (hand split over plain processes)", f"{ceiling_s:.3f}",
                f"{ceiling_speedup:.2f}x", "1.00", ""])
    for name, seconds in rows:
        speedup = serial_s / seconds
        out.append([name, f"{seconds:.3f}", f"{speedup:.2f}x", f"{speedup / ceiling_speedup:.2f}",
                    note.get(name, "")])
    return out


HEAD = ["row", "median s", "speedup vs serial", "ratio to ceiling", "note"]


SCALED = " (on 1/10, scaled)"
FORKSERVER_ROW = "corelane.map (forkserver)"


def _timed(
    fns: dict[str, Callable[[], object]], rounds: int
) -> tuple[float, float, list[tuple[str, float]], dict[str, list[float]]]:
    """Interleaved medians; returns (serial, ceiling, rows, samples), rows on a tenth scaled
    back up, samples the raw times of every round."""
    samples = interleaved_samples(fns, rounds)
    got = {name: statistics.median(ts) for name, ts in samples.items()}
    serial, ceil = got.pop("serial"), got.pop("ceiling")
    serial_small = got.pop("serial small", None)
    rows = []
    for name, seconds in got.items():
        if name.endswith(SCALED) and serial_small:
            seconds *= serial / serial_small
        rows.append((name, seconds))
    return serial, ceil, rows, samples


def bench_w1(quick: bool, rounds: int) -> tuple[str, dict[str, float]]:
    count = 70_000 if quick else 700_000
    numbers = list(range(10_000_000, 10_000_000 + count))
    small = numbers[: count // 10]  # the very slow peers run on a tenth, scaled back up
    serial, ceil, rows, samples = _timed({
        "serial": lambda: list(map(is_prime, numbers)),
        "serial small": lambda: list(map(is_prime, small)),
        "ceiling": lambda: ceiling(is_prime, balanced_blocks(numbers, WORKERS)),
        "corelane.map": lambda: run_corelane(is_prime, numbers),
        FORKSERVER_ROW: lambda: run_corelane(is_prime, numbers, "forkserver"),
        "multiprocessing.Pool.map (default chunks)": lambda: run_pool_map(is_prime, numbers),
        "Pool.map, tutorial chunks len//(workers*4)":
            lambda: run_pool_map(is_prime, numbers, tuned_chunks(count)),
        "ProcessPoolExecutor.map chunksize tuned":
            lambda: run_ppe(is_prime, numbers, tuned_chunks(count)),
        "joblib.Parallel": lambda: run_joblib(is_prime, numbers),
        "mpire.WorkerPool.map": lambda: run_mpire(is_prime, numbers),
        "Pool.imap chunksize=1" + SCALED: lambda: run_pool_imap1(is_prime, small),
        "ProcessPoolExecutor.map chunksize=1" + SCALED: lambda: run_ppe(is_prime, small, 1),
    }, rounds)
    text = f"### W1 — prime test of {count:,} numbers from 10,000,000 (the tutorial's example)\n\n"
    note = {FORKSERVER_ROW: "corelane's default while other threads run (a notebook, a server)"}
    text += table(HEAD, speed_rows(serial, ceil, rows, note))
    pool = samples["multiprocessing.Pool.map (default chunks)"]
    text += ("\n\ncorelane.map against Pool.map round by round (Pool's time / corelane's, both "
             f"from the same round): {paired_ratio(pool, samples['corelane.map'])}.")
    return text, {name: serial / s for name, s in rows} | {"ceiling": serial / ceil}


def bench_w2(quick: bool, rounds: int) -> tuple[str, dict[str, float]]:
    n = 200_000
    items = list(range(n))
    warm_corelane = corelane.Pool(WORKERS, start_method=FORK)
    warm_pool = CTX.Pool(WORKERS)
    try:
        list(warm_corelane.map(square, range(100)))
        warm_pool.map(square, range(100))
        samples = interleaved_samples({
            "ceiling": lambda: ceiling(square, balanced_blocks(items, WORKERS)),
            "corelane.map (cold: pool start included)": lambda: run_corelane(square, items),
            "corelane.Pool.map (warm pool)": lambda: list(warm_corelane.map(square, items)),
            "multiprocessing.Pool.map (cold)": lambda: run_pool_map(square, items),
            "multiprocessing.Pool.map (warm pool)": lambda: warm_pool.map(square, items),
            "ProcessPoolExecutor.map chunksize tuned":
                lambda: run_ppe(square, items, tuned_chunks(n)),
            "joblib.Parallel": lambda: run_joblib(square, items),
            "mpire.WorkerPool.map": lambda: run_mpire(square, items),
        }, rounds)
    finally:
        warm_corelane.close()
        warm_pool.close()
        warm_pool.join()
    got = {name: statistics.median(ts) for name, ts in samples.items()}
    ceil = got.pop("ceiling")
    rows = list(got.items())
    head = ["row", "median s", "items/s", "ratio to best peer"]
    best_peer = min(s for name, s in rows if "corelane" not in name)
    body = [["ceiling (hand split, nothing returned)", f"{ceil:.3f}", f"{n / ceil:,.0f}", ""]]
    body += [[name, f"{s:.3f}", f"{n / s:,.0f}", f"{best_peer / s:.2f}"] for name, s in rows]
    text = f"### W2 — {n:,} trivial tasks (x*x): overhead per item\n\n" + table(head, body)
    text += "\n\n`ratio to best peer` > 1 means faster than the fastest peer row of this run."
    text += ("\n\nRound by round (the peer's time / corelane's, both from the same round): warm "
             f"{paired_ratio(samples['multiprocessing.Pool.map (warm pool)'], samples['corelane.Pool.map (warm pool)'])}"
             f"; cold {paired_ratio(samples['multiprocessing.Pool.map (cold)'], samples['corelane.map (cold: pool start included)'])}.")
    return text, {name: n / s for name, s in rows}


W3_WARM = "corelane.Pool.map (warm pool)"


def bench_w3(quick: bool, rounds: int) -> tuple[str, dict[str, float]]:
    costs = w3_costs()
    warm = corelane.Pool(WORKERS, start_method=FORK)  # joblib's executor is warm too (see below)
    try:
        list(warm.map(heavy_tailed, costs[:10]))
        serial, ceil, rows, samples = _timed({
            "serial": lambda: list(map(heavy_tailed, costs)),
            "ceiling": lambda: ceiling(heavy_tailed, longest_first_blocks(costs, WORKERS)),
            "corelane.map": lambda: run_corelane(heavy_tailed, costs),
            W3_WARM: lambda: list(warm.map(heavy_tailed, costs)),
            "multiprocessing.Pool.map (default chunks)": lambda: run_pool_map(heavy_tailed, costs),
            "ProcessPoolExecutor.map chunksize=5": lambda: run_ppe(heavy_tailed, costs, 5),
            "joblib.Parallel": lambda: run_joblib(heavy_tailed, costs),
            "mpire.WorkerPool.map": lambda: run_mpire(heavy_tailed, costs),
        }, rounds)
    finally:
        warm.close()
    text = "### W3 — 2,000 tasks with heavy-tailed cost, the expensive eighth (70% of the work) last\n\n"
    note = {"corelane.map": "starts its pool in every round",
            W3_WARM: "one pool for every round",
            "joblib.Parallel": "reuses its executor from round to round"}
    text += table(HEAD, speed_rows(serial, ceil, rows, note))
    text += "\n\nThe ceiling here is a longest-first split of the known costs (near-optimal balance)."
    joblib = samples["joblib.Parallel"]
    text += ("\n\nRound by round (the peer's time / corelane's, both from the same round): joblib "
             f"against the warm pool {paired_ratio(joblib, samples[W3_WARM])}, against "
             f"corelane.map {paired_ratio(joblib, samples['corelane.map'])}; the ceiling against "
             f"corelane.map {paired_ratio(samples['ceiling'], samples['corelane.map'])}. joblib "
             "reuses its executor from one call to the next (loky's reusable executor), so the "
             "like-for-like comparison is with corelane's warm pool; corelane.map, like the "
             "ceiling, starts its processes in every round.")
    return text, {name: serial / s for name, s in rows} | {"ceiling": serial / ceil}


# ---------------------------------------------------------------- robustness


def sigkill_on(x: tuple[int, int], stamp: str | None = None) -> int:
    """Sleep 10 ms; item ``target`` notes the time and SIGKILLs its own worker instead."""
    value, target = x
    if value == target:
        if stamp:
            Path(stamp).write_text(repr(time.monotonic()))
        os.kill(os.getpid(), 9)
    time.sleep(0.01)
    return value


def _sigkill_stamped(x: tuple[int, int, str]) -> int:
    return sigkill_on((x[0], x[1]), x[2])


PEER_KILL_SCRIPT = """
import os, sys, time
sys.path.insert(0, {root!r})
from benchmarks.bench_engine import sigkill_on, WORKERS, CTX
items = [(i, 7) for i in range(20)]
kind = sys.argv[1]
try:
    if kind == "Pool.map":
        with CTX.Pool(WORKERS) as p: r = p.map(sigkill_on, items)
    elif kind == "ProcessPoolExecutor":
        from concurrent.futures import ProcessPoolExecutor
        with ProcessPoolExecutor(WORKERS, mp_context=CTX) as ex: r = list(ex.map(sigkill_on, items))
    elif kind == "joblib":
        from joblib import Parallel, delayed
        r = Parallel(n_jobs=WORKERS)(delayed(sigkill_on)(x) for x in items)
    elif kind == "mpire":
        from mpire import WorkerPool
        with WorkerPool(WORKERS, start_method="fork") as p: r = p.map(sigkill_on, items, progress_bar=False)
    print("returned", len(r))
except BaseException as e:
    print("raised", type(e).__name__)
"""


def bench_kill(repeats: int) -> str:
    import tempfile

    latencies, complete = [], 0
    with tempfile.TemporaryDirectory() as tmp, corelane.Pool(WORKERS, start_method=FORK) as pool:
        stamp = str(Path(tmp, "killed-at"))
        items = [(i, 7, stamp) for i in range(20)]
        for _ in range(repeats):
            seen, ok = None, 0
            for r in pool.imap_unordered(_sigkill_stamped, items, errors="return", chunksize=1):
                if isinstance(r, corelane.Failure):
                    seen = time.monotonic()
                else:
                    ok += 1
            if seen is not None and ok == 19:
                complete += 1
                latencies.append(seen - float(Path(stamp).read_text()))
    lat = sorted(latencies)
    rows = [["corelane (errors='return')",
             f"{complete}/{repeats} runs returned the failure and all 19 other results, 0 hangs",
             f"failure reported {statistics.median(lat) * 1000:.0f} ms (median), "
             f"{lat[-1] * 1000:.0f} ms (max) after the kill"]]
    root = str(Path(__file__).resolve().parent.parent)
    for peer in ("Pool.map", "ProcessPoolExecutor", "joblib", "mpire"):
        try:
            out = subprocess.run(
                [sys.executable, "-c", PEER_KILL_SCRIPT.format(root=root), peer],
                capture_output=True, text=True, timeout=10,
            ).stdout.strip() or "no output"
        except subprocess.TimeoutExpired:
            out = "hung (killed after 10 s)"
        rows.append([peer, out, ""])
    text = f"### A task that SIGKILLs its worker (20 items, item 7 kills; {repeats} repeats)\n\n"
    return text + table(["runner", "outcome", "latency"], rows)


def chart(results: dict[str, dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, key in zip(axes, ("W1", "W3"), strict=True):
        data = results[key]
        names = list(data)
        ax.barh(names, [data[n] for n in names],
                color=["#2a9d8f" if "corelane" in n else "#888" if n != "ceiling" else "#e76f51"
                       for n in names])
        ax.set_title(f"{key}: speedup vs serial ({WORKERS} cores)")
        ax.invert_yaxis()
        ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller inputs, one round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per row")
    args = parser.parse_args()
    repeat = 1 if args.quick else args.rounds
    results: dict[str, dict[str, float]] = {}
    parts = [f"## Engine (W1-W3)\n\nMachine: {machine()}; {WORKERS} workers; fork start method for "
             f"every pool, corelane's too (one W1 row shows corelane under the forkserver); "
             f"medians of {repeat} interleaved rounds (every row, the serial one too, once per round) "
             f"in one session, {time.strftime('%Y-%m-%d')}.\n"]
    for key, fn in (("W1", bench_w1), ("W2", bench_w2), ("W3", bench_w3)):
        print(f"running {key} ...", flush=True)
        text, results[key] = fn(args.quick, repeat)
        parts.append(text)
        print(text, flush=True)
    parts.append(bench_kill(10 if args.quick else 50))
    png = Path(__file__).resolve().parent.parent / "docs" / "engine-speedup.png"
    chart(results, png)
    parts.append("![speedup chart](engine-speedup.png)")
    write_section("engine", "\n\n".join(parts))
    OUT.mkdir(parents=True, exist_ok=True)
    print(parts[-2])


if __name__ == "__main__":
    main()
