"""SharedArray: a NumPy array in shared memory that crosses processes as a small handle.

A SharedArray is an ``ndarray`` whose bytes live in a corelane shared-memory segment. Pickling it
(which is what sending it to ``corelane.map`` tasks or pipeline stages does) writes only
``(segment name, dtype, shape, strides, offset)``; the receiving process maps the same segment, so
nothing is copied and a write in a worker is seen by every process. Slices and views of a shared
array stay shared and travel as handles too; a new array computed from one (``a * 2``,
``a.copy()``) lives in private memory and pickles by value, like any ndarray.

The creating process owns the segment and is the only one that unlinks it: on :meth:`close`, at
the end of a ``with`` block, when the array and all its views are garbage collected, when the
interpreter exits, and (through the resource tracker) when the owner is killed.
"""

from __future__ import annotations

import multiprocessing
from typing import Any

import numpy as np
from numpy.lib.array_utils import byte_bounds
from numpy.typing import ArrayLike, DTypeLike

from corelane.errors import Closed
from corelane.shm import _segments
from corelane.shm._segments import Segment


def _address(seg: Segment) -> int:
    """Address where ``seg`` is mapped in this process (cached per process state)."""
    state = seg.process_state()
    addr = state.get("address")
    if addr is None:
        addr = state["address"] = np.frombuffer(seg.buf, np.uint8).__array_interface__["data"][0]
    return int(addr)


def _offset_in(seg: Segment, arr: np.ndarray) -> int | None:
    """Byte offset of ``arr``'s first element inside ``seg``, or None if its memory is elsewhere."""
    start = _address(seg)
    if arr.size == 0:
        data = arr.__array_interface__["data"][0]
        return data - start if start <= data <= start + seg.size else None
    low, high = byte_bounds(arr)
    if low < start or high > start + seg.size:
        return None
    return int(arr.__array_interface__["data"][0] - start)


class SharedArray(np.ndarray):
    """A NumPy array backed by shared memory; pickles as a handle, not as data.

    Make one with :func:`share` (copies an existing array in) or allocate straight into shared
    memory with :meth:`empty`, :meth:`zeros` or :meth:`full`, then fill it in place.

    Example:
        >>> with SharedArray.zeros((1000, 1000)) as arr:
        ...     corelane.map(fill_row, [(arr, i) for i in range(1000)])  # sends 1000 handles
        ...     total = arr.sum()
    """

    _segment: Segment | None

    # ------------------------------------------------------------------ construction

    @classmethod
    def empty(cls, shape: int | tuple[int, ...], dtype: DTypeLike = np.float64) -> SharedArray:
        """A new shared array, uninitialized (in practice zero-filled: fresh pages are zeros)."""
        dt = np.dtype(dtype)
        if dt.hasobject:
            raise TypeError(f"cannot share an array of Python objects (dtype {dt}); use a Manager")
        shape_t = (shape,) if isinstance(shape, int | np.integer) else tuple(shape)
        nbytes = int(np.prod(shape_t, dtype=np.int64)) * dt.itemsize
        seg = _segments.create(nbytes)
        return _view(seg, dt, shape_t, None, 0)

    @classmethod
    def zeros(cls, shape: int | tuple[int, ...], dtype: DTypeLike = np.float64) -> SharedArray:
        """A new shared array of zeros (free: a new segment is zero-filled by the kernel)."""
        return cls.empty(shape, dtype)

    @classmethod
    def full(
        cls, shape: int | tuple[int, ...], fill_value: Any, dtype: DTypeLike | None = None
    ) -> SharedArray:
        """A new shared array filled with ``fill_value``."""
        arr = cls.empty(shape, np.array(fill_value, dtype=dtype).dtype if dtype is None else dtype)
        arr.fill(fill_value)
        return arr

    def __array_finalize__(self, obj: Any) -> None:
        # Views (slicing, reshape, .T ...) of a shared array stay shared: their chain of bases
        # ends at the segment's mmap. Copies and ufunc results end elsewhere. Cheap on purpose:
        # this runs for every row a loop takes; pickling checks the exact byte bounds.
        seg = getattr(obj, "_segment", None)
        if seg is not None:
            base = self.base
            while isinstance(base, np.ndarray):
                base = base.base
            if base is not seg.buf:
                seg = None
        self._segment = seg

    def __array_wrap__(self, arr: Any, context: Any = None, return_scalar: bool = False) -> Any:
        # Results of ufuncs on a shared array (``a * 2``) live in fresh private memory: hand them
        # back as plain ndarrays, so that only views of the segment ever look shared.
        out = super().__array_wrap__(arr, context, return_scalar)
        if isinstance(out, SharedArray) and out._segment is None:
            out = out.view(np.ndarray)
            if return_scalar and out.ndim == 0:
                return out[()]
        return out

    # ------------------------------------------------------------------ ownership

    @property
    def name(self) -> str | None:
        """Name of the shared segment (None for an array in private memory)."""
        return self._segment.name if self._segment is not None else None

    @property
    def is_shared(self) -> bool:
        """True when this array's memory lies in a live shared segment."""
        return self._segment is not None and not self._segment.released

    @property
    def is_owner(self) -> bool:
        """True in the process that created the segment (the one that unlinks it)."""
        return self._segment is not None and self._segment.owner

    def close(self) -> None:
        """Unlink the shared segment (owner only; idempotent; a no-op in other processes).

        The array stays usable in this process until it is garbage collected, but it can no
        longer be sent to other processes. Views share the segment: closing one closes it for all.
        """
        if self._segment is not None:
            self._segment.release()

    def __enter__(self) -> SharedArray:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ pickling

    def __reduce_ex__(self, protocol: Any) -> Any:
        seg = self._segment
        if seg is None:  # private memory: pickle the data, as a plain ndarray
            return self.view(np.ndarray).__reduce_ex__(protocol)
        if seg.released:
            raise Closed(f"SharedArray {seg.name} was closed; it cannot be sent to another process")
        offset = _offset_in(seg, self)
        if offset is None or (seg.owner and _in_child_process()):
            # Memory outside the segment; or an array a worker made and is about to return:
            # the worker unlinks what it owns when the task drops it, before the receiver could
            # attach, so it travels by value (ownership does not move between processes).
            return np.array(self).__reduce_ex__(protocol)
        return _rebuild, (seg.name, self.dtype, self.shape, self.strides, offset)

    def __reduce__(self) -> Any:
        return self.__reduce_ex__(2)


def _in_child_process() -> bool:
    return multiprocessing.parent_process() is not None


def _view(
    seg: Segment,
    dtype: np.dtype[Any],
    shape: tuple[int, ...],
    strides: tuple[int, ...] | None,
    offset: int,
) -> SharedArray:
    raw = np.ndarray(shape, dtype, buffer=seg.buf, offset=offset, strides=strides)
    arr = raw.view(SharedArray)
    arr._segment = seg
    return arr


def _rebuild(
    name: str, dtype: np.dtype[Any], shape: tuple[int, ...], strides: tuple[int, ...], offset: int
) -> SharedArray:
    """Unpickle a handle: map the segment (once per process) and view it."""
    return _view(_segments.attach(name), dtype, shape, strides, offset)


def share(array: ArrayLike) -> SharedArray:
    """Copy ``array`` into a new shared-memory segment and return it as a SharedArray.

    An array that is already shared is returned as it is. To skip the copy, allocate in shared
    memory from the start with :meth:`SharedArray.empty` / :meth:`SharedArray.zeros`.
    """
    if isinstance(array, SharedArray) and array.is_shared:
        return array
    src = np.asarray(array)
    out = SharedArray.empty(src.shape, src.dtype)
    out[...] = src
    return out
