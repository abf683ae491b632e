"""The tutorial's NumPy-in-shared-memory example, corrected (``arr *= 2``, not ``arr = 2``, which
only rebinds a local name and leaves the shared data untouched), then the same with SharedArray
across corelane.map: the array travels as a small handle, and its one owner unlinks it.

    python examples/shared_numpy.py
"""

from __future__ import annotations

import pickle
from multiprocessing import Process, shared_memory
from typing import Any

import numpy as np

import corelane
from corelane import SharedArray

N = 10_000_000  # 80 MB of float64


def worker(name: str, shape: tuple[int, ...], dtype: Any) -> None:
    shm = shared_memory.SharedMemory(name=name)  # attach to the existing block by name
    arr: np.ndarray = np.ndarray(shape, dtype=dtype, buffer=shm.buf)
    arr *= 2  # in place: the parent sees it
    del arr  # drop the view before closing, or close() raises BufferError
    shm.close()


def double(part: SharedArray) -> int:
    part *= 2  # a view of the same shared memory: nothing was copied to get here
    return len(part)


if __name__ == "__main__":
    print("-- by hand: shared_memory + a Process")
    data = np.arange(N, dtype=np.float64)
    shm = shared_memory.SharedMemory(create=True, size=data.nbytes)
    try:
        shared_array: np.ndarray = np.ndarray(data.shape, dtype=data.dtype, buffer=shm.buf)
        shared_array[:] = data[:]  # the copy-in
        p = Process(target=worker, args=(shm.name, data.shape, data.dtype))
        p.start()
        p.join(60)
        print("First 5 elements:", shared_array[:5])
        del shared_array
    finally:
        shm.close()
        shm.unlink()  # forget this (or crash before it) and the block stays in /dev/shm

    print("-- corelane: SharedArray across corelane.map, in halves")
    with SharedArray.empty(N) as arr:  # allocated straight in shared memory: no copy-in
        arr[:] = np.arange(N, dtype=np.float64)
        halves = [arr[: N // 2], arr[N // 2 :]]
        print(f"each half travels as {len(pickle.dumps(halves[0]))} bytes, not {arr.nbytes // 2:,}")
        done = corelane.map(double, halves, workers=2)
        print(f"First 5 elements: {arr[:5]}  (doubled {sum(done):,} values)")
        print(f"Last element: {arr[-1]}")
    print("segment unlinked by its owner at the end of the with block")
