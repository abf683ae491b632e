"""SharedCounter and SharedValue: numbers in shared memory that any process can update exactly.

Both pickle as the name of their segment, so they can be sent to the tasks of a pool that is
already running, under every start method (a ``multiprocessing.Lock`` can only be handed over
when a process is created). Their lock is a ``flock`` on the segment (see ``_segments``), which
the kernel releases if its holder dies: a worker SIGKILLed mid-update cannot wedge the others.

SharedCounter does not even take that lock on the hot path. Its segment holds one slot per
process, each on its own cache line; a process claims a slot once (under the lock) and from then
on adds to it alone, so increments never contend and are never lost. ``value`` is the sum of the
slots. A slot whose process has died is handed to the next process that asks (its count stays
counted). When every slot belongs to a live process, further processes add under the lock.

::

    word 0..7     header: magic, slots, overflow count (locked adds; the initial value), -
    64..          slot owners: one pid (int64) per slot
    counts        one int64 per slot, 64 bytes apart (no false sharing between processes)
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from corelane.errors import Closed
from corelane.shm import _segments
from corelane.shm._segments import Segment, SegmentLock

_MAGIC_COUNTER = 0x434F524543544E52  # "CORECTNR"
_MAGIC_VALUE = 0x434F524556414C55  # "COREVALU"
_W_MAGIC, _W_SLOTS, _W_OVERFLOW = 0, 1, 2
_PIDS = 8  # first word of the pid table
_LINE = 8  # words per cache line
DEFAULT_SLOTS = 128


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _SharedScalar:
    """What SharedCounter and SharedValue share: a segment, its owner, pickling as a name."""

    _segment: Segment
    _words: memoryview

    def _setup(self, segment: Segment) -> None:
        self._segment = segment
        self._words = memoryview(segment.buf).cast("q")

    @property
    def name(self) -> str:
        """Name of the shared segment."""
        return self._segment.name

    @property
    def is_owner(self) -> bool:
        """True in the process that created it (the one that unlinks its segment)."""
        return self._segment.owner

    def close(self) -> None:
        """Unlink the segment (owner only; idempotent). Copies already attached keep working."""
        self._segment.release()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_sendable(self) -> None:
        if self._segment.released:
            raise Closed(f"{type(self).__name__} {self.name} was closed; it cannot be sent")


class SharedCounter(_SharedScalar):
    """An integer counter that many processes increment exactly, without contention.

    Args:
        initial: starting value.
        slots: processes that get a private, lock-free slot (others add under a lock).

    Example:
        >>> counter = SharedCounter()
        >>> corelane.map(partial(work, counter), items)   # each task calls counter.add()
        >>> counter.value
    """

    def __init__(self, initial: int = 0, *, slots: int = DEFAULT_SLOTS) -> None:
        if slots < 1:
            raise ValueError(f"slots must be >= 1, got {slots}")
        counts = _PIDS + -(-slots // _LINE) * _LINE  # pid table rounded up to a cache line
        segment = _segments.create(8 * (counts + slots * _LINE))
        words = memoryview(segment.buf).cast("q")
        words[_W_SLOTS] = slots
        words[_W_OVERFLOW] = int(initial)
        words[_W_MAGIC] = _MAGIC_COUNTER
        self._setup(segment)

    def _setup(self, segment: Segment) -> None:
        super()._setup(segment)
        words = self._words
        if words[_W_MAGIC] not in (0, _MAGIC_COUNTER):
            raise TypeError(f"segment {segment.name} does not hold a SharedCounter")
        self._slots = slots = words[_W_SLOTS]
        self._counts = _PIDS + -(-slots // _LINE) * _LINE

    def add(self, n: int = 1) -> None:
        """Add ``n`` (may be negative). Batch where you can: ``add(1000)`` costs one ``add(1)``."""
        state = self._segment.process_state()
        word = state.get("word")
        if word is None:
            word = self._claim(state)
        if word < 0:  # no slot of our own: add under the cross-process lock
            with self._segment.lock():
                self._words[_W_OVERFLOW] += n
            return
        with state["tlock"]:  # threads of this process share its slot
            self._words[word] += n

    def __iadd__(self, n: int) -> SharedCounter:
        self.add(n)
        return self

    def _claim(self, state: dict[str, Any]) -> int:
        """Find this process's slot (claiming a free or dead one), once per process."""
        words = self._words
        me = os.getpid()
        with self._segment.lock():
            if "word" in state:  # another thread of ours claimed it meanwhile
                return int(state["word"])
            pids = [words[_PIDS + i] for i in range(self._slots)]
            chosen = pids.index(me) if me in pids else -1
            if chosen < 0:
                chosen = pids.index(0) if 0 in pids else -1
            if chosen < 0:
                chosen = next((i for i, pid in enumerate(pids) if not _alive(pid)), -1)
            if chosen >= 0:
                words[_PIDS + chosen] = me
            state["tlock"] = threading.Lock()
            state["word"] = word = self._counts + chosen * _LINE if chosen >= 0 else -1
        return word

    @property
    def value(self) -> int:
        """The current total (exact once the adders are done; a snapshot while they run)."""
        words = self._words
        start = self._counts
        return int(words[_W_OVERFLOW]) + sum(words[start : start + self._slots * _LINE : _LINE])

    def __int__(self) -> int:
        return self.value

    def __repr__(self) -> str:
        return f"<SharedCounter {self.name} value={self.value}>"

    def __reduce__(self) -> tuple[Any, ...]:
        self._check_sendable()
        return _attach_counter, (self.name,)


def _attach_counter(name: str) -> SharedCounter:
    counter = SharedCounter.__new__(SharedCounter)
    counter._setup(_segments.attach(name))
    return counter


class SharedValue(_SharedScalar):
    """One int (``"q"``) or float (``"d"``) in shared memory, with a cross-process lock.

    Reads and plain assignments are single 8-byte loads and stores (atomic); :meth:`add` and
    :meth:`update` are atomic read-modify-writes under the lock; ``with value.lock:`` makes your
    own compound update atomic.

    Args:
        initial: starting value.
        typecode: ``"q"`` (int64) or ``"d"`` (float64); default from ``initial``'s type.
    """

    def __init__(self, initial: int | float = 0, typecode: str | None = None) -> None:
        if typecode is None:
            typecode = "d" if isinstance(initial, float) else "q"
        if typecode not in ("q", "d"):
            raise ValueError(f'typecode must be "q" (int64) or "d" (float64), got {typecode!r}')
        segment = _segments.create(8 * (_LINE + 1))
        memoryview(segment.buf).cast("q")[1] = ord(typecode)
        self._setup(segment)
        self._cell[0] = initial
        self._words[_W_MAGIC] = _MAGIC_VALUE

    def _setup(self, segment: Segment) -> None:
        super()._setup(segment)
        code = self._words[1]
        self.typecode = chr(code) if code else "q"
        cell: Any = memoryview(segment.buf)[8 * _LINE : 8 * _LINE + 8]
        self._cell = cell.cast(self.typecode)
        self.lock: SegmentLock = segment.lock()

    @property
    def value(self) -> Any:
        """The current value."""
        return self._cell[0]

    @value.setter
    def value(self, new: int | float) -> None:
        self._cell[0] = new

    def add(self, n: int | float = 1) -> Any:
        """Add ``n`` atomically; return the new value."""
        with self.lock:
            self._cell[0] += n
            return self._cell[0]

    def __iadd__(self, n: int | float) -> SharedValue:
        self.add(n)
        return self

    def update(self, fn: Callable[[Any], Any]) -> Any:
        """Replace the value by ``fn(value)`` atomically; return the new value."""
        with self.lock:
            self._cell[0] = new = fn(self._cell[0])
            return new

    def __repr__(self) -> str:
        return f"<SharedValue {self.name} value={self.value!r}>"

    def __reduce__(self) -> tuple[Any, ...]:
        self._check_sendable()
        return _attach_value, (self.name,)


def _attach_value(name: str) -> SharedValue:
    value = SharedValue.__new__(SharedValue)
    value._setup(_segments.attach(name))
    return value
