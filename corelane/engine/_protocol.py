"""Messages between the parent and its workers, and how they are framed.

Every message is one ``send_bytes`` frame holding a pickled tuple whose first element is a
:class:`Msg`. Task payloads stay pre-pickled bytes inside the tuple so that one unpicklable item
cannot make the whole frame unreadable: the worker then fails just that chunk's items.

::

    parent -> worker   (TASK, job_id, fn_id, fn_bytes | None, star, budget, indices, payload)
                       (SHUTDOWN,)
    worker -> parent   (READY, pid)
                       (INIT_FAILED, traceback_text)
                       (RESULTS, job_id, results, final, elapsed, n_run, remainder_indices)
                           results: [(index, ok, value | (exception, traceback_text))]

Each worker also owns a small shared "slot" of int64s that it updates around every item, so the
parent knows which item a worker was running when it died or overran its timeout, without a
message per item.
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
SLOT_INDEX = 1  # index of the item being run
SLOT_START = 2  # time.monotonic_ns() // 1000 when the item started, 0 between items
SLOT_CANCEL = 3  # a job id the parent cancelled: stop that chunk after the current item
SLOT_SIZE = 4
