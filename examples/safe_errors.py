"""The tutorial's safe_wrapper pattern, corrected (``x * x``), then the same built in:
``errors="return"`` puts a Failure (with the worker's traceback) in place of a failed item.
"""

from __future__ import annotations

import traceback
from multiprocessing import Pool, cpu_count

import corelane


def risky(x: int) -> int:
    if x == 5:
        raise ValueError("bad input!")
    return x * x


def safe_wrapper(x: int) -> tuple[bool, object]:
    try:
        return (True, risky(x))
    except Exception as e:  # the tutorial's way: every task wrapped by hand
        return (False, (e, traceback.format_exc()))


if __name__ == "__main__":
    print("-- by hand, with multiprocessing.Pool and safe_wrapper")
    with Pool(cpu_count()) as pool:
        for ok, payload in pool.map(safe_wrapper, range(10)):
            if ok:
                print("Result:", payload)
            else:
                exc, tb = payload  # type: ignore[misc]
                print("Worker error:", exc)
                print(tb)

    print("-- built in, with corelane.map(errors='return')")
    for result in corelane.map(risky, range(10), errors="return"):
        if isinstance(result, corelane.Failure):
            print(f"Worker error on item {result.index}: {result.exception!r}")
            print(result.traceback)
        else:
            print("Result:", result)

    print("-- or stop at the first error, with the worker's traceback attached")
    try:
        corelane.map(risky, range(10))
    except corelane.TaskError as err:
        print(f"TaskError for item {err.index}: caused by {err.__cause__!r}")
