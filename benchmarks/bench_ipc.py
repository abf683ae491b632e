"""IPC benchmarks W4-W6: shared arrays, shared counters and pipelines, side by side in one run.

W4  a 400 MB float64 array summed in halves by 2 workers: SharedArray vs pickled argument vs raw
    shared_memory by hand vs mpire shared objects. Wall time (pool start included) and peak PSS
    of the whole process tree (parent, workers, forkserver), each variant in a fresh process.
W5  2 processes x 20,000 increments of one shared counter; increments/s of the loops.
W6  a 3-stage pipeline vs the hand-written Queue + Enum version of the same work; items/s.

    python benchmarks/bench_ipc.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import pickle
import subprocess
import sys
import threading
import time
from enum import StrEnum
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import contextlib

import numpy as np  # noqa: E402
import psutil  # noqa: E402

import corelane  # noqa: E402
from benchmarks._report import interleaved, machine, table, write_section  # noqa: E402
from corelane import Pipeline, SharedArray, SharedCounter, SharedValue, share  # noqa: E402

MiB = 1024 * 1024

# ---------------------------------------------------------------- W4: a big array, two workers

_GLOBAL: np.ndarray | None = None  # for the ceiling: inherited by forked processes


def sum_part(part: np.ndarray) -> float:
    return float(part.sum())


def sum_by_name(args: tuple[str, int, int]) -> float:
    from multiprocessing import shared_memory

    name, lo, hi = args
    shm = shared_memory.SharedMemory(name=name)  # registers on 3.11 (bpo-38119): unregister
    from multiprocessing import resource_tracker

    resource_tracker.unregister(shm._name, "shared_memory")  # type: ignore[attr-defined]
    arr: np.ndarray = np.ndarray((hi - lo,), np.float64, buffer=shm.buf, offset=lo * 8)
    total = float(arr.sum())
    del arr
    shm.close()
    return total


def sum_global(args: tuple[int, int, Any]) -> None:
    lo, hi, out = args
    assert _GLOBAL is not None
    out.put(float(_GLOBAL[lo:hi].sum()))


def sum_mpire(shared: np.ndarray, lo: int, hi: int) -> float:
    return float(shared[lo:hi].sum())


class PeakPSS:
    """Samples the PSS of this process and all its (and the forkserver's) descendants."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def tree(self) -> int:
        me = psutil.Process()
        procs = [me, *me.children(recursive=True)]
        from multiprocessing import forkserver

        fs_pid = getattr(forkserver._forkserver, "_forkserver_pid", None)  # type: ignore[attr-defined]
        if fs_pid:
            with contextlib.suppress(psutil.NoSuchProcess):
                procs.extend(psutil.Process(fs_pid).children(recursive=True))
        total = 0
        for p in {p.pid: p for p in procs}.values():
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                total += p.memory_full_info().pss
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.tree())
            time.sleep(self.interval)

    def __enter__(self) -> PeakPSS:
        self.peak = self.tree()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.peak = max(self.peak, self.tree())
        self._stop.set()
        self._thread.join()


def w4_one(variant: str, method: str, n: int) -> dict[str, Any]:
    """One W4 variant in this (fresh) process: returns wall, handoff and memory figures."""
    global _GLOBAL
    half = n // 2
    expected = float(n) * (n - 1) / 2
    if variant == "sharedarray":
        data: np.ndarray = SharedArray.empty(n)  # allocated in shared memory: no copy-in
    else:
        data = np.empty(n)
    data[:] = np.arange(n, dtype=np.float64)
    baseline = PeakPSS().tree()
    handoff = 0.0
    with PeakPSS() as mem:
        t0 = time.perf_counter()
        if variant in ("sharedarray", "share"):
            arr = data if variant == "sharedarray" else share(data)  # share(): includes copy-in
            parts = [arr[:half], arr[half:]]
            h0 = time.perf_counter()
            pickle.dumps(parts)
            handoff = time.perf_counter() - h0
            total = sum(corelane.map(sum_part, parts, workers=2, start_method=method))
            arr.close()
        elif variant == "pickled":
            parts = [data[:half], data[half:]]
            h0 = time.perf_counter()
            pickle.dumps(parts)
            handoff = time.perf_counter() - h0
            total = sum(corelane.map(sum_part, parts, workers=2, start_method=method))
        elif variant == "raw":
            from multiprocessing import shared_memory

            h0 = time.perf_counter()
            shm = shared_memory.SharedMemory(create=True, size=data.nbytes)
            view: np.ndarray = np.ndarray(data.shape, data.dtype, buffer=shm.buf)
            view[:] = data  # the copy-in
            handoff = time.perf_counter() - h0
            with mp.get_context(method).Pool(2) as pool:
                total = sum(pool.map(sum_by_name, [(shm.name, 0, half), (shm.name, half, n)]))
            del view
            shm.close()
            shm.unlink()
        elif variant == "mpire":
            from mpire import WorkerPool

            with WorkerPool(2, shared_objects=data, start_method=method) as pool:
                total = sum(pool.map(sum_mpire, [(0, half), (half, n)], progress_bar=False))
        elif variant == "ceiling":  # fork-inherited global, plain processes, nothing passed
            _GLOBAL = data
            ctx = mp.get_context("fork")
            out = ctx.SimpleQueue()
            procs = [ctx.Process(target=sum_global, args=((lo, hi, out),))
                     for lo, hi in ((0, half), (half, n))]
            for p in procs:
                p.start()
            total = out.get() + out.get()
            for p in procs:
                p.join()
        else:
            raise ValueError(variant)
        wall = time.perf_counter() - t0
    assert abs(total - expected) < 1e-6 * expected, (total, expected)
    return {"wall": wall, "handoff": handoff, "peak": mem.peak / MiB, "baseline": baseline / MiB}


W4_ROWS = [
    ("ceiling: fork-inherited global, 2 plain processes", "ceiling", "fork"),
    ("corelane SharedArray.empty (allocated shared)", "sharedarray", "fork"),
    ("corelane SharedArray.empty (allocated shared)", "sharedarray", "forkserver"),
    ("corelane SharedArray.empty (allocated shared)", "sharedarray", "spawn"),
    ("corelane share(ndarray) (with copy-in)", "share", "fork"),
    ("pickled argument (corelane.map)", "pickled", "fork"),
    ("pickled argument (corelane.map)", "pickled", "spawn"),
    ("raw shared_memory by hand (mp.Pool, copy-in)", "raw", "fork"),
    ("raw shared_memory by hand (mp.Pool, copy-in)", "raw", "spawn"),
    ("mpire shared_objects", "mpire", "fork"),
    ("mpire shared_objects", "mpire", "spawn"),
]


def bench_w4(quick: bool) -> str:
    n = (50 if quick else 400) * MiB // 8
    rows = []
    for label, variant, method in W4_ROWS:
        proc = subprocess.run(
            [sys.executable, __file__, "--w4", variant, method, str(n)],
            capture_output=True, text=True, timeout=300,
        )
        if proc.returncode != 0:
            rows.append([label, method, "failed", "", "", "", proc.stderr.strip().splitlines()[-1]])
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append([label, method, f"{r['wall']:.3f}", f"{r['handoff'] * 1000:.1f}",
                     f"{r['peak']:.0f}", f"{r['peak'] - r['baseline']:+.0f}", ""])
        print(rows[-1], flush=True)
    size = n * 8 // MiB
    return (f"### W4: a {size} MiB float64 array summed in halves by 2 workers\n\n"
            "Each row runs in a fresh process. *wall*: from the start of the hand-off to the "
            "sum, pool start included. *hand-off*: serializing what is sent (or, by hand, "
            "creating the segment and copying in). *peak PSS*: the whole process tree "
            "(parent, workers, forkserver); *over baseline*: above the parent holding the array "
            "before the run.\n\n"
            + table(["row", "start method", "wall s", "hand-off ms", "peak PSS MiB",
                     "over baseline MiB", "note"], rows))


# ---------------------------------------------------------------- W5: a shared counter


def _count(kind: str, counter: Any, lock: Any, n: int, barrier: Any, out: Any) -> None:
    barrier.wait(30)
    t0 = time.perf_counter()
    if kind == "manager":
        for _ in range(n):
            with lock:
                counter.value += 1
    elif kind == "mp_value":
        for _ in range(n):
            with counter.get_lock():
                counter.value += 1
    elif kind == "mp_value_unlocked":
        for _ in range(n):
            counter.value += 1
    elif kind in ("shared_counter", "shared_value"):
        add = counter.add
        for _ in range(n):
            add(1)
    elif kind == "shared_counter_batched":
        local = 0
        for _ in range(n):
            local += 1
            if local == 1000:
                counter.add(local)
                local = 0
        counter.add(local)
    elif kind == "ceiling":
        local = 0
        for _ in range(n):
            local += 1  # noqa: SIM113 - the increment itself is what is measured
    out.put(time.perf_counter() - t0)


W5_ROWS = [
    ("ceiling: local counting, nothing shared", "ceiling"),
    ("Manager().Value + Manager().Lock (the tutorial)", "manager"),
    ("multiprocessing.Value with its lock", "mp_value"),
    ("multiprocessing.Value, no lock (unsafe)", "mp_value_unlocked"),
    ("corelane SharedValue.add (flock)", "shared_value"),
    ("corelane SharedCounter.add(1)", "shared_counter"),
    ("corelane SharedCounter, batched add(1000)", "shared_counter_batched"),
]


def bench_w5(quick: bool) -> str:
    n, procs = (5_000 if quick else 20_000), 2
    ctx = mp.get_context("fork")
    rows = []
    manager_rate = None
    for label, kind in W5_ROWS:
        manager = None
        lock = None
        counter: Any = None
        if kind == "manager":
            manager = ctx.Manager()
            counter, lock = manager.Value("i", 0), manager.Lock()
        elif kind.startswith("mp_value"):
            counter = ctx.Value("q", 0)
        elif kind == "shared_value":
            counter = SharedValue(0)
        elif kind.startswith("shared_counter"):
            counter = SharedCounter()
        barrier, out = ctx.Barrier(procs), ctx.SimpleQueue()
        ps = [ctx.Process(target=_count, args=(kind, counter, lock, n, barrier, out))
              for _ in range(procs)]
        for p in ps:
            p.start()
        elapsed = max(out.get() for _ in ps)
        for p in ps:
            p.join(60)
        total = n * procs
        value = None if counter is None else int(counter.value)
        rate = total / elapsed
        if kind == "manager":
            manager_rate = rate
        exact = "" if value is None else ("exact" if value == total else
                                          f"LOST {100 * (total - value) / total:.0f}% of updates")
        vs = f"{rate / manager_rate:,.0f}x" if manager_rate else ""
        rows.append([label, f"{rate:,.0f}", vs, exact])
        print(rows[-1], flush=True)
        if manager is not None:
            manager.shutdown()
        if hasattr(counter, "close"):
            counter.close()
    return (f"### W5: {procs} processes x {n:,} increments of one counter\n\n"
            "Rate of the increment loops (processes started and synchronized on a barrier "
            "first), fork start method.\n\n"
            + table(["row", "increments/s", "vs Manager", "result"], rows))


# ---------------------------------------------------------------- W6: a 3-stage pipeline

WORK = 400  # loop iterations per stage per item (~20 us)


def stage_a(x: int) -> int:
    s = x
    for i in range(WORK):
        s += i
    return s


def stage_b(x: int) -> int:
    s = x
    for i in range(WORK):
        s ^= i
    return s


def stage_c(x: int) -> int:
    s = x
    for i in range(WORK):
        s -= i
    return s


class Msg(StrEnum):
    DATA = "data"
    DONE = "done"


def _hand_stage(fn: Any, inq: Any, outq: Any) -> None:
    """One hand-written consumer: runs until its DONE."""
    while True:
        kind, payload = inq.get()
        if kind is Msg.DONE:
            break
        outq.put((Msg.DATA, fn(payload)))


def hand_written(items: list[int], workers: int) -> list[int]:
    """Queue + Enum, one process per stage worker, the DONEs sent and counted by hand.

    Each consumer stops at its first DONE, so a queue read by N consumers needs N DONEs, and they
    may only be sent once everything before them has been queued: a coordinator thread feeds the
    source, then sends each stage its DONEs after the stage before has exited.
    """
    ctx = mp.get_context("fork")
    queues = [ctx.Queue(1000) for _ in range(4)]
    fns = (stage_a, stage_b, stage_c)
    stages = [[ctx.Process(target=_hand_stage, args=(fn, queues[k], queues[k + 1]))
               for _ in range(workers)] for k, fn in enumerate(fns)]
    for group in stages:
        for p in group:
            p.start()

    def coordinate() -> None:
        for x in items:
            queues[0].put((Msg.DATA, x))
        for k, group in enumerate(stages):
            for _ in group:
                queues[k].put((Msg.DONE, None))
            for p in group:
                p.join()
        queues[3].put((Msg.DONE, None))

    coordinator = threading.Thread(target=coordinate, daemon=True)
    coordinator.start()
    out = []
    while True:
        kind, payload = queues[3].get(timeout=60)
        if kind is Msg.DONE:
            break
        out.append(payload)
    coordinator.join()
    return out


def w6_ceiling(items: list[int]) -> None:
    """All the stage work, split in two halves over 2 plain processes; nothing travels."""
    ctx = mp.get_context("fork")
    half = len(items) // 2
    ps = [ctx.Process(target=_ceiling_w6, args=(part,)) for part in (items[:half], items[half:])]
    for p in ps:
        p.start()
    for p in ps:
        p.join()


def _ceiling_w6(part: list[int]) -> None:
    for x in part:
        stage_c(stage_b(stage_a(x)))


def bench_w6(quick: bool) -> str:
    n = 4_000 if quick else 20_000
    items = list(range(n))
    expected = sorted(stage_c(stage_b(stage_a(x))) for x in items)

    def checked(fn: Any) -> Any:
        def run() -> None:
            assert sorted(fn()) == expected
        return run

    rows = {
        "ceiling: stage work split over 2 plain processes": lambda: w6_ceiling(items),
        "hand-written Queue + Enum, 1 process per stage": checked(lambda: hand_written(items, 1)),
        "corelane Pipeline, 1 worker per stage, ordered": checked(
            lambda: Pipeline(items, start_method="fork").stage(stage_a).stage(stage_b)
            .stage(stage_c).run()),
        "corelane Pipeline, 1 worker per stage, unordered": checked(
            lambda: Pipeline(items, ordered=False, start_method="fork").stage(stage_a)
            .stage(stage_b).stage(stage_c).run()),
        "hand-written Queue + Enum, 2 processes per stage": checked(lambda: hand_written(items, 2)),
        "corelane Pipeline, 2 workers per stage, unordered": checked(
            lambda: Pipeline(items, ordered=False, start_method="fork")
            .stage(stage_a, workers=2).stage(stage_b, workers=2).stage(stage_c, workers=2).run()),
    }
    rounds = 1 if quick else 5
    got = interleaved(rows, rounds)
    hand1 = got["hand-written Queue + Enum, 1 process per stage"]
    hand2 = got["hand-written Queue + Enum, 2 processes per stage"]
    body = []
    for label, seconds in got.items():
        base = hand2 if "2 " in label and "plain" not in label else hand1
        body.append([label, f"{n / seconds:,.0f}", f"{seconds:.2f}", f"{base / seconds:.2f}x"])
    return (f"### W6: a 3-stage pipeline, {n:,} items, ~{WORK} loop iterations per stage\n\n"
            f"Items/s end to end (processes started inside the timing), fork start method; "
            f"medians of {rounds} interleaved rounds; the last column is the ratio to the "
            "hand-written version with as many processes per stage.\n\n"
            + table(["row", "items/s", "s", "vs hand-written"], body))


# ---------------------------------------------------------------- main


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--w4":
        variant, method, n = sys.argv[2], sys.argv[3], int(sys.argv[4])
        print(json.dumps(w4_one(variant, method, n)))
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller inputs")
    args = parser.parse_args()
    parts = [f"## IPC (W4-W6)\n\nMachine: {machine()}; one session, {time.strftime('%Y-%m-%d')}.\n"]
    for key, fn in (("W4", bench_w4), ("W5", bench_w5), ("W6", bench_w6)):
        print(f"running {key} ...", flush=True)
        text = fn(args.quick)
        parts.append(text)
        print(text, flush=True)
    write_section("ipc", "\n\n".join(parts))


if __name__ == "__main__":
    main()
