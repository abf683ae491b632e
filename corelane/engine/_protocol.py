"""Messages between the parent and its workers, and how they are framed.

Every message is one ``send_bytes`` frame holding a pickled tuple whose first element is a
:class:`Msg`. Task payloads stay pre-pickled bytes inside the tuple so that one unpicklable item
cannot make the whole frame unreadable: the worker then fails just that chunk's items.

::

    parent -> worker   (TASK, job_id, fn_id, fn_bytes | None, star, budget, precise, n_items, payload)
                       (SHUTDOWN,)
    worker -> parent   (READY, pid)
                       (INIT_FAILED, traceback_text)
                       (RESULTS, job_id, first, n, values_bytes, failures, final, elapsed,
                        n_run, stop)
                           values_bytes: the pickled results of chunk positions first..first+n,
                           kept apart so that one the parent cannot unpickle fails those items,
                           not the pool; failures: {position: (exception, traceback_text)}

Each worker also owns a small shared "slot" of int64s, so the parent knows what a worker was
running when it died or overran its timeout, without a message per item. In a *precise* chunk
(jobs with a timeout, and items being isolated after a death) the slot names one item and its
start time; otherwise it names a short span of items run back to back, which keeps the hot loop
as lean as ``list(map(fn, chunk))``. A death inside a span of several items re-runs those items
one by one, precisely, so the next death names the culprit.
"""

from __future__ import annotations

from enum import StrEnum


class Msg(StrEnum):
    TASK = "task"
    SHUTDOWN = "shutdown"
    READY = "ready"
    INIT_FAILED = "init_failed"
    RESULTS = "results"


# Slot layout (int64 each): which job and item the worker runs, since when, and cancellation.
SLOT_JOB = 0  # job id of the chunk being run, 0 when idle
SLOT_SPAN = 1  # (position << SPAN_BITS) | count: the items being run, one 8-byte atomic write
SLOT_START = 2  # a float: time.monotonic() when the item (timed jobs) or chunk started; 0 idle
SLOT_CANCEL = 3  # a job id the parent cancelled: stop that chunk after the current item
SLOT_SIZE = 4
SPAN_BITS = 24


def pack_span(position: int, count: int) -> int:
    return (position << SPAN_BITS) | count


def unpack_span(value: int) -> tuple[int, int]:
    return value >> SPAN_BITS, value & ((1 << SPAN_BITS) - 1)
