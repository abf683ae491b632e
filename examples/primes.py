"""The tutorial's prime finder, corrected and runnable: first with multiprocessing.Pool.map over
hand-made chunks (``n_workers * 4`` of them), then the same with corelane.map, which chunks by itself.

    .venv/bin/python examples/primes.py [START] [COUNT]

(``make setup`` creates .venv with corelane installed; ``python3`` from outside it has no
corelane, nor NumPy, to import. With ``. .venv/bin/activate`` a plain ``python`` works too.)
"""

from __future__ import annotations

import math
import sys
import time
from multiprocessing import Pool, cpu_count

import corelane


def is_prime(n: int) -> bool:
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    for i in range(3, math.isqrt(n) + 1, 2):
        if n % i == 0:
            return False
    return True


def chunked_primes(nums: list[int]) -> list[int]:
    return [n for n in nums if is_prime(n)]


def with_stdlib_pool(numbers: list[int]) -> list[int]:
    n_workers = cpu_count()
    chunk_size = max(1, len(numbers) // (n_workers * 4))  # the tutorial's `n_workers 4`, fixed
    chunks = [numbers[i : i + chunk_size] for i in range(0, len(numbers), chunk_size)]
    with Pool(processes=n_workers) as pool:
        results = pool.map(chunked_primes, chunks)
    return [p for chunk in results for p in chunk]


def with_corelane(numbers: list[int]) -> list[int]:
    flags = corelane.map(is_prime, numbers)  # adaptive chunks: no hand-made chunking
    return [n for n, prime in zip(numbers, flags, strict=True) if prime]


if __name__ == "__main__":
    start = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000_000
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 50_000
    numbers = list(range(start, start + count))
    for name, fn in (("multiprocessing.Pool", with_stdlib_pool), ("corelane.map", with_corelane)):
        t0 = time.perf_counter()
        primes = fn(numbers)
        print(f"{name}: found {len(primes)} primes in {time.perf_counter() - t0:.2f} s")
