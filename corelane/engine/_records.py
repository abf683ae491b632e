"""The records the manager keeps: functions, chunks (with what becomes of their items: delivered,
failed, requeued, isolated, batched), jobs, workers; and the two guards every
hand-off of a user's object goes through (``fresh`` for errors raised again, ``settle`` for
Futures whose done-callbacks run on the manager's thread).

See :mod:`corelane.engine._manager` for how they move.
"""

from __future__ import annotations

import copy
import itertools
import logging
import queue
from collections import OrderedDict, deque
from collections.abc import Sequence
from concurrent.futures import Future, InvalidStateError
from typing import Any

from corelane.engine._protocol import Mode
from corelane.engine._serialize import describe, dumps, loads
from corelane.engine.chunking import Chunker
from corelane.engine.results import Failure, Run
from corelane.errors import NotPicklable

log = logging.getLogger("corelane.engine")

_job_ids = itertools.count(1)



def fresh(error: BaseException) -> BaseException:
    """A new exception equal to ``error``, so raising it again does not grow one traceback."""
    try:
        new = copy.copy(error)
    except Exception:  # noqa: BLE001 - an exotic exception: reuse it rather than fail here
        return error
    new.__traceback__ = None
    new.__cause__ = error.__cause__
    return new


def begin(future: Future[Any]) -> bool:
    """Take a submit's Future out of PENDING: True if its call is to run (it is RUNNING now, or
    was already: a call requeued after its worker died), False if not.

    A Future cancelled while it waited is told that nobody will run it (CANCELLED becomes
    CANCELLED_AND_NOTIFIED): ``concurrent.futures.wait()`` and ``as_completed()`` wait for that,
    not for ``cancel()``, and without it they waited for a cancelled call until their timeout.
    Each queued Future passes here once (its chunk is dropped when this says False), as
    executors must call ``set_running_or_notify_cancel`` once. A Future settled already (a
    forced cancel) does not run.
    """
    if future.running():
        return True
    if future.done() and not future.cancelled():
        return False
    try:
        return future.set_running_or_notify_cancel()
    except RuntimeError:  # settled meanwhile by another thread (a forced cancel)
        return False


def settle(future: Future[Any], value: Any = None, error: BaseException | None = None) -> None:
    """Complete ``future``, whatever its done-callbacks do (they run here, on our thread); one
    cancelled while it waited is only told so (see ``begin``)."""
    try:
        if not begin(future):
            return  # finished already, or cancelled before it ran
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)
    except InvalidStateError:
        return  # settled meanwhile by another thread (a forced cancel)
    except BaseException:  # noqa: BLE001 - a callback's SystemExit must not end the manager
        log.exception("a done-callback of a corelane future raised; the future itself is done")


class Fn:
    """A pickled function with an id the workers cache it under, and the seconds per item its
    last run measured (a hint for the first chunks of the next run)."""

    __slots__ = ("id", "data", "per_item", "by_name", "__weakref__")
    _ids = itertools.count(1)

    def __init__(self, data: bytes) -> None:
        self.id = next(Fn._ids)
        self.data = data
        self.per_item: float | None = None
        self.by_name = False  # its pickle is a name (a module-level function): it cannot change


class Chunk:
    """Items sent to a worker as one message; ``done`` counts the positions with results."""

    __slots__ = ("job", "fn", "indices", "items", "payload", "done", "seq", "innocent", "precise",
                 "futures")

    def __init__(self, job: Job, fn: Fn, indices: Sequence[int], items: list[Any], payload: bytes,
                 futures: dict[int, Future[Any]] | None = None) -> None:
        self.job = job
        self.fn = fn
        self.indices = indices
        self.items = items
        self.payload = payload
        self.done = 0
        self.seq = 0  # the worker-local sequence number it was last sent under
        self.innocent = 0  # deaths of its worker that no stage pinned on it
        self.precise = False  # one item at a time, each timed (set when isolating a crash)
        self.futures = futures  # submits: the Future each index settles (None for a run)

    def single(self, pos: int) -> Chunk:
        """Position ``pos`` alone, to run precisely (its own pickle, its own start time)."""
        item = self.items[pos]
        index = self.indices[pos]
        futures = {index: self.futures[index]} if self.futures is not None else None
        one = Chunk(self.job, self.fn, [index], [item], dumps([item]), futures)
        one.precise = True
        return one

    def claim(self) -> bool:
        """Mark a fresh submit's Future running (False: it was cancelled; a requeued one runs)."""
        assert self.futures is not None
        if len(self.futures) != 1:
            return True
        (future,) = self.futures.values()
        return begin(future)

    def deliver(self, runs: list[Run]) -> None:
        """Results of this chunk: to its run's consumer, or into its submits' Futures."""
        futures = self.futures
        if futures is None:
            self.job.deliver(runs)
            return
        for first, values, _ in runs:
            for index, value in enumerate(values, first):
                if isinstance(value, Failure):
                    settle(futures[index], error=value.raised())
                else:
                    settle(futures[index], value)

    def fail(self, error: BaseException) -> None:
        """Every unfinished item fails with (a copy of) ``error``."""
        if self.futures is not None:
            for index in self.indices[self.done:]:
                settle(self.futures[index], error=fresh(error))
            return
        runs = [(i, [Failure(i, item, fresh(error))], 1)
                for i, item in zip(self.indices[self.done:], self.items[self.done:], strict=True)]
        self.job.deliver(runs)

    def requeue(self, skip: set[int] | None = None, recut: bool = False) -> None:
        """Put the unfinished items (all but positions ``skip``) back at the queue's front;
        ``recut``: in pieces sized from the job's estimate as it is now (the chunk came back over
        its time budget, so the estimate it was cut from was wrong)."""
        job = self.job
        if job.closed:
            return
        positions = [p for p in range(self.done, len(self.indices)) if not skip or p not in skip]
        if not positions:
            return
        sizes = [len(positions)]
        if recut and self.futures is None and not self.precise:
            sizes = job.chunker.recut(len(positions))
        if len(sizes) == 1:
            if len(positions) != len(self.indices):
                items = [self.items[p] for p in positions]
                self.indices = [self.indices[p] for p in positions]
                self.items = items
                self.payload = dumps(items)
                self.done = 0
            job.pending.appendleft(self)
            return
        pieces = []
        start = 0
        for size in sizes:
            part = positions[start : start + size]
            start += size
            items = [self.items[p] for p in part]
            piece = Chunk(job, self.fn, [self.indices[p] for p in part], items, dumps(items))
            piece.innocent = self.innocent
            pieces.append(piece)
        job.pending.extendleft(reversed(pieces))

    def isolate(self, positions: list[int]) -> None:
        """Queue each of ``positions`` alone, at the front, to find which one is at fault."""
        if self.job.closed:
            return
        for p in reversed(positions):
            self.job.pending.appendleft(self.single(p))

    def unpack(self, first: int, n: int, blob: bytes, texts: dict[int, str] | None,
               fail_bytes: bytes) -> tuple[list[Any], dict[int, Any], set[int]]:
        """A results message for positions ``first..first+n`` as (values, failures by position,
        positions to skip). What the parent cannot unpickle fails only its own item: one
        unreadable result is a NotPicklable failure, several each run again alone."""
        failures: dict[int, Any] = {}
        if texts:
            try:
                excs = loads(fail_bytes)
            except BaseException as exc:  # noqa: BLE001 - e.g. a class only the worker imports
                why = f"(the parent could not unpickle it: {type(exc).__name__})"
                excs = {pos: RuntimeError(f"{text.strip().splitlines()[-1]} {why}")
                        for pos, text in texts.items()}
            failures = {pos: (excs[pos], texts[pos]) for pos in texts}
        skip: set[int] = set()
        try:
            values = loads(blob)
        except BaseException as exc:  # noqa: BLE001 - one unreadable result fails only its item
            values = [None] * n
            lost = [p for p in range(first, first + n) if p not in failures]
            if len(lost) == 1:
                what = f"the result of item {self.indices[lost[0]]}"
                reason = f"the parent could not unpickle it: {type(exc).__name__}: {exc}"
                failures[lost[0]] = (NotPicklable(what, reason), "")
            else:  # which one? each runs again alone
                skip = set(lost)
                self.isolate(lost)
        return values, failures, skip

    def runs(self, first: int, values: list[Any], failures: dict[int, Any],
             skip: set[int] | None = None) -> list[Run]:
        """Results for positions ``first..`` as runs of consecutive input indices."""
        for pos, (exc, text) in failures.items():
            values[pos - first] = Failure(self.indices[pos], self.items[pos], exc, text)
        indices: Sequence[int] = self.indices[first : first + len(values)]
        if skip:
            kept = [(i, v) for p, (i, v) in enumerate(zip(indices, values, strict=True), first)
                    if p not in skip]
            indices = [i for i, _ in kept]
            values = [v for _, v in kept]
        if not indices:
            return []
        if indices[-1] - indices[0] == len(indices) - 1:  # the usual case: one run
            return [(indices[0], values, len(failures))]
        runs: list[Run] = []
        start = 0
        for k in range(1, len(indices) + 1):
            if k == len(indices) or indices[k] != indices[k - 1] + 1:
                part = values[start:k]
                runs.append((indices[start], part, sum(isinstance(v, Failure) for v in part)))
                start = k
        return runs


def cut_chunk(job: Job, first: int, items: list[Any]) -> tuple[Chunk | None, list[Run]]:
    """Pickle ``items`` (indices from ``first``) as one chunk; unsendable ones become failures."""
    indices: Sequence[int] = range(first, first + len(items))  # not a list: no int per item
    failures: list[Run] = []
    try:
        payload = dumps(items)
    except NotPicklable:
        keep = []
        for index, item in zip(indices, items, strict=True):
            try:
                dumps(item)
                keep.append((index, item))
            except NotPicklable as exc:
                err = NotPicklable(f"item {index} ({describe(item)})", exc.reason)
                failures.append((index, [Failure(index, item, err)], 1))
        indices = [index for index, _ in keep]
        items = [item for _, item in keep]
        payload = dumps(items)
    assert job.fn is not None
    chunk = Chunk(job, job.fn, indices, items, payload) if indices else None
    return chunk, failures


class Job:
    """One run (an imap or map call), or the pool's shared run of submitted calls.

    Lazy runs are cut by their caller, a window at a time. Eager runs (``source``) hand their
    whole input over and the manager cuts it as workers free up, so they advance without a
    consumer, as ``Executor.map`` does. The shared submit job holds one chunk per Future.
    """

    def __init__(self, fn: Fn | None, mode: Mode, chunker: Chunker, timeout: float | None,
                 source: list[Any] | None = None, shared: bool = False) -> None:
        self.id = next(_job_ids)
        self.fn = fn
        self.mode = mode
        self.chunker = chunker
        self.timeout = timeout
        self.source = source
        self.shared = shared
        self.cut = 0  # items of ``source`` cut into chunks so far
        self.pending: deque[Chunk] = deque()
        self.out: queue.SimpleQueue[list[Run] | BaseException] = queue.SimpleQueue()
        self.buffer: list[Run] = []  # runs delivered in this pass of the manager, not yet out
        self.dirty: list[Job] | None = None  # the manager's list of jobs with a buffer
        self.inflight = 0  # chunks on workers
        self.closed = False  # the caller is done with it (finished, cancelled or failed)
        self.fatal: BaseException | None = None  # every item fails with this (its fn is bad)
        self.fn_deaths = 0

    def idle(self) -> bool:
        """Nothing queued, nothing running, nothing left to cut."""
        left = self.source is not None and self.cut < len(self.source)
        return not self.pending and not left and self.inflight == 0

    def take(self) -> Chunk | None:
        """The next chunk to run: a queued one, else the next cut of an eager run's input."""
        while True:
            if self.pending:
                return self.pending.popleft()
            if self.source is None or self.cut >= len(self.source):
                return None
            first = self.cut
            items = self.source[first : first + self.chunker.size(first)]
            self.cut += len(items)
            chunk, failures = cut_chunk(self, first, items)
            self.deliver(failures)
            if chunk is not None:
                return chunk

    def batch(self, chunk: Chunk, limit: int) -> Chunk:
        """``chunk`` (a submit) and up to ``limit - 1`` calls of the same function queued behind
        it, as one chunk; each call keeps its own Future (the shared submit job only)."""
        taken = [chunk]
        while self.pending and len(taken) < limit:
            nxt = self.pending[0]
            if nxt.fn is not chunk.fn or nxt.precise or len(nxt.items) != 1:
                break
            self.pending.popleft()
            if nxt.claim():
                taken.append(nxt)
        if len(taken) == 1:
            return chunk
        items = [c.items[0] for c in taken]
        futures = {i: next(iter(c.futures.values())) for i, c in enumerate(taken)}  # type: ignore[union-attr]
        return Chunk(self, chunk.fn, list(range(len(items))), items, dumps(items), futures)

    def deliver(self, runs: list[Run]) -> None:
        """Queue ``runs`` for the consumer; the manager flushes them once per pass, so a burst
        of results costs the consumer one wake-up, not one per message."""
        if not runs or self.closed:
            return
        if self.dirty is None:
            self.out.put(runs)
            return
        if not self.buffer:
            self.dirty.append(self)
        self.buffer.extend(runs)

    def flush(self) -> None:
        """Hand the buffered runs to the consumer (the manager thread only)."""
        runs, self.buffer = self.buffer, []
        if runs and not self.closed:
            self.out.put(runs)

    def fail(self, error: BaseException) -> None:
        if not self.closed:
            self.out.put(fresh(error))
        self.closed = True


class Worker:
    __slots__ = ("proc", "conn", "mv", "mvd", "inflight", "fn_ids", "ready", "kill_reason",
                 "cancel_seen", "seq", "retiring")

    def __init__(self, proc: Any, conn: Any, slot: Any) -> None:
        self.proc = proc
        self.conn = conn
        self.mv = memoryview(slot).cast("B").cast("q")
        self.mvd: Any = memoryview(slot).cast("B").cast("d")
        self.inflight: deque[Chunk] = deque()
        self.fn_ids: OrderedDict[int, None] = OrderedDict()  # mirrors the worker's FIFO cache
        self.ready = False
        self.kill_reason: tuple[str, int, float] | None = None  # ("timeout"|"cancel", pos, s)
        self.cancel_seen = 0.0  # when the parent first saw the running job cancelled
        self.seq = 0
        self.retiring = False  # at its task or memory limit: it exits after its last results

    def hand_back(self) -> None:
        """Requeue every chunk this worker held, in its order, blamed on nobody (futures
        already settled stay so): it exited as planned."""
        for chunk in reversed(self.inflight):  # each goes back to the queue's front
            chunk.job.inflight -= 1
            futures = chunk.futures
            done = {p for p in range(len(chunk.indices))
                    if futures is not None and futures[chunk.indices[p]].done()}
            chunk.requeue(done)
        self.inflight.clear()
