"""The tutorial's shared counter: a Manager Value and Lock (every increment a round trip to the
manager process), then corelane.SharedCounter (shared memory; each process adds to its own slot,
so increments never wait and never get lost), with the rate of each.

    python examples/shared_counter.py
"""

from __future__ import annotations

import time
from multiprocessing import Manager, Process
from typing import Any

import corelane
from corelane import SharedCounter

N_WORKERS = 4
MANAGER_ITERS = 500  # a Manager does a few thousand increments a second: keep this small
SHARED_ITERS = 250_000


def manager_worker(counter: Any, lock: Any, n_iter: int) -> None:
    for _ in range(n_iter):
        with lock:  # without the lock, `counter.value += 1` loses updates
            counter.value += 1


def shared_worker(args: tuple[SharedCounter, int]) -> None:
    counter, n_iter = args
    add = counter.add
    for _ in range(n_iter):
        add()  # or add(n_iter) once: batching is faster still


if __name__ == "__main__":
    with Manager() as manager:
        counter = manager.Value("i", 0)
        lock = manager.Lock()
        t0 = time.perf_counter()
        processes = [
            Process(target=manager_worker, args=(counter, lock, MANAGER_ITERS))
            for _ in range(N_WORKERS)
        ]
        for p in processes:
            p.start()
        for p in processes:
            p.join(60)
        elapsed = time.perf_counter() - t0
        expected = N_WORKERS * MANAGER_ITERS
        manager_rate = expected / elapsed
        print(f"Manager: counter should be {expected}; actual {counter.value}; "
              f"exact={counter.value == expected}; {manager_rate:,.0f} increments/s")

    with SharedCounter() as shared:
        t0 = time.perf_counter()
        corelane.map(shared_worker, [(shared, SHARED_ITERS)] * N_WORKERS, workers=N_WORKERS)
        elapsed = time.perf_counter() - t0
        expected = N_WORKERS * SHARED_ITERS
        shared_rate = expected / elapsed
        print(f"SharedCounter: counter should be {expected}; actual {shared.value}; "
              f"exact={shared.value == expected}; {shared_rate:,.0f} increments/s")
    print(f"SharedCounter is {shared_rate / manager_rate:,.0f}x the Manager's rate "
          "(process start-up included in both)")
