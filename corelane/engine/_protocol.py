"""Messages between the parent and its workers, and how they are framed.

Every message is one ``send_bytes`` frame holding a pickled tuple whose first element is a
:class:`Msg`. Everything user-made inside a message (the function, the items, the results, the
exceptions) travels as pre-pickled bytes, so the outer tuple always unpickles: an object one side
cannot read fails its own items, never the pool.

::

    parent -> worker   (TASK, job_id, seq, fn_id, fn_bytes | None, mode, budget, precise,
                        n_items, payload)
                       (SHUTDOWN,)
    worker -> parent   (READY, pid)
                       (INIT_FAILED, traceback_text)
                       (LOAD_FAILED, what, reason)       "fn" or "items" of the current chunk
                       (RETIRE,)   after its last results: at its task or memory limit, this
                                   worker exits; what it still holds goes to another
                       (RESULTS, job_id, first, n, values_bytes, fail_texts, fail_bytes, final,
                        elapsed, n_run, stop)
                           values_bytes: the pickled results of chunk positions first..first+n;
                           fail_texts: {position: traceback text} (plain strings, always readable);
                           fail_bytes: the pickled {position: exception}, or b"" when none failed

Each worker also owns a small shared "slot" of int64s. It names the chunk (``seq``) and the
*stage* the worker is in, and the span of positions that stage concerns: loading the function,
loading the items, running a span of items, pickling a span of results, freeing the chunk. When a
worker dies, the parent reads the slot and knows whom to blame: one position, a span to re-run
one item at a time (so the next death names the culprit), or nobody (the chunk was done).
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class Msg(StrEnum):
    TASK = "task"
    SHUTDOWN = "shutdown"
    READY = "ready"
    INIT_FAILED = "init_failed"
    LOAD_FAILED = "load_failed"
    RESULTS = "results"
    RETIRE = "retire"


class Mode(IntEnum):
    """How a worker calls the function on each item."""

    ONE = 0  # fn(item)
    KWARGS = 1  # fn(*args, **kwargs) for item == (args, kwargs)   (submit)
    STAR = 2  # fn(*item)                                         (Executor.map over iterables)


class Stage(IntEnum):
    """What a worker is doing with its current chunk (written to the slot before each step)."""

    IDLE = 0
    LOAD_FN = 1  # unpickling the function
    LOAD_ITEMS = 2  # unpickling the chunk's items (span: the whole chunk)
    RUN = 3  # calling the function on the span
    PACK = 4  # pickling and sending the results of the span
    FREE = 5  # dropping the finished chunk (its results are already sent)


# Slot layout (int64 each).
SLOT_JOB = 0  # job id of the chunk being run, 0 when idle
SLOT_SPAN = 1  # (position << SPAN_BITS) | count: the positions the stage concerns
SLOT_START = 2  # a float: time.monotonic() when the item (timed jobs) or chunk started; 0 idle
SLOT_CANCEL = 3  # a job id the parent cancelled: stop that chunk after the current item
SLOT_SEQ = 4  # the parent's sequence number of the chunk (per worker)
SLOT_STAGE = 5  # a Stage
SLOT_SIZE = 6
SPAN_BITS = 24


def pack_span(position: int, count: int) -> int:
    return (position << SPAN_BITS) | count


def unpack_span(value: int) -> tuple[int, int]:
    return value >> SPAN_BITS, value & ((1 << SPAN_BITS) - 1)
