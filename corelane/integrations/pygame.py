"""Offloader: hand heavy work to worker processes from a frame loop that must never block.

::

    frame loop (one thread)                  corelane.Pool                    workers
    -----------------------                  -------------                    -------
    submit(key, fn, *args)  --------------->  pool.submit -> Future  ------>   fn(*args)
      latest-wins: the key's older request
      is cancelled (or its result ignored)
    poll()  <-- deque of finished ids  <----  Future done callback  <------   result / error
      returns Done(key, value) | Failure        (manager thread; one append)

This is the tutorial's request-queue / result-queue pattern with the engine underneath: workers
that die are replaced (their request comes back as a Failure carrying WorkerDied), errors carry
the worker's traceback, and ``close()`` terminates the pool so no process outlives the game.
pygame itself is not imported here; any loop that must not block can use it.
"""

from __future__ import annotations

import concurrent.futures
import functools
import itertools
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from corelane.engine import Failure, Pool
from corelane.engine._cpus import cpu_count
from corelane.errors import Cancelled, Closed, CorelaneError, Full, RemoteTraceback, TaskError

OnFull = Literal["raise", "drop_oldest"]

DEFAULT_MAX_PENDING = 1024  # requests in flight or finished-but-not-polled; far above a frame's needs


class Done(NamedTuple):
    """A finished request: unpack it as ``key, value = done``."""

    key: Hashable
    value: Any


@dataclass(frozen=True)
class OffloaderStatistics:
    """Counters since the Offloader was made (see :meth:`Offloader.statistics`).

    Attributes:
        submitted: requests accepted by ``submit``.
        completed: results returned by ``poll`` (Done).
        failed: Failures returned by ``poll`` (errors, dead workers, dropped requests).
        superseded: requests replaced by a newer one for the same key (latest-wins).
        dropped: requests cancelled to make room (``on_full="drop_oldest"``); also in ``failed``.
        pending: requests not yet returned by ``poll``.
    """

    submitted: int
    completed: int
    failed: int
    superseded: int
    dropped: int
    pending: int


class _Request:
    __slots__ = ("key", "future", "stale")

    def __init__(self, key: Hashable, future: concurrent.futures.Future[Any]) -> None:
        self.key = key
        self.future = future
        self.stale = False  # superseded while running: its result will be ignored


def _default_workers() -> int:
    """All usable CPUs but one: the frame loop needs a core of its own to hold its frame rate."""
    return max(1, cpu_count() - 1)


class Offloader:
    """Non-blocking submit/poll over a :class:`corelane.Pool`, for game and GUI loops.

    Use it from one thread (the loop's). Typical frame::

        for outcome in offloader.poll():
            if isinstance(outcome, corelane.Failure):
                log(outcome.item, outcome.exception)   # item is the key
            else:
                key, path = outcome
                units[key].follow(path)

    Args:
        workers: worker processes (default: usable CPUs minus one, leaving the loop a core).
        latest_wins: a new request for a key replaces that key's pending one: cancelled if it
            has not started, otherwise left to finish with its result thrown away. With False,
            every request for a key is answered.
        max_pending: bound on requests in flight: queued, running, or finished and waiting to
            be polled.
        on_full: what :meth:`submit` does at the bound: ``"raise"`` (default) raises
            :class:`corelane.errors.Full` and accepts nothing; ``"drop_oldest"`` cancels the
            oldest request that has not started and reports it at the next poll as a Failure
            carrying :class:`corelane.errors.Cancelled` (raising Full if every pending request
            is already running).
        initializer: run once per worker, e.g. to install a map shared by every request
            (see :func:`corelane.worker_state`).
        initargs: arguments for ``initializer``.
        start_method: "fork", "forkserver" or "spawn" (default: the engine's choice).
        pool: use this pool instead of starting one; ``close()`` then cancels only this
            Offloader's requests and leaves the pool running. Excludes the pool options above.
    """

    def __init__(
        self,
        workers: int | None = None,
        *,
        latest_wins: bool = True,
        max_pending: int = DEFAULT_MAX_PENDING,
        on_full: OnFull = "raise",
        initializer: Callable[..., Any] | None = None,
        initargs: tuple[Any, ...] = (),
        start_method: str | None = None,
        pool: Pool | None = None,
    ) -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending}")
        if on_full not in ("raise", "drop_oldest"):
            raise ValueError(f"on_full must be 'raise' or 'drop_oldest', got {on_full!r}")
        if pool is not None and (workers is not None or initializer is not None or start_method):
            raise ValueError("pass either pool= or the options to start one, not both")
        self.latest_wins = latest_wins
        self.max_pending = max_pending
        self.on_full: OnFull = on_full
        self._owned = pool is None
        self._pool = pool if pool is not None else Pool(
            workers if workers is not None else _default_workers(),
            initializer=initializer, initargs=initargs, start_method=start_method,
        )
        self._seq = itertools.count()
        self._inflight: dict[int, _Request] = {}  # insertion order = age, for drop_oldest
        self._latest: dict[Hashable, int] = {}
        self._finished: deque[int] = deque()  # appended by the pool's thread, popped by poll
        self._ready: deque[Failure] = deque()  # failures known at submit time
        self._closed = False
        self._submitted = self._completed = self._failed = self._superseded = self._dropped = 0

    # ------------------------------------------------------------------ the loop's API

    def submit(self, key: Hashable, fn: Callable[..., Any], /, *args: Any) -> None:
        """Ask for ``fn(*args)`` to run in a worker; return at once. Its outcome comes from poll.

        Args:
            key: what the result is for (a unit id, a chunk coordinate); comes back with it.
            fn: the function; module-level functions, lambdas and closures all work.
            args: its arguments (pickled now; keep them small, install big data once with
                ``initializer``).

        Raises:
            Full: ``max_pending`` requests are pending and none could be dropped.
            Closed: the Offloader was closed.
        """
        if self._closed:
            raise Closed("the Offloader is closed")
        old = self._latest.get(key) if self.latest_wins else None
        if old is not None and self._cancel(old):
            old = None  # it had not started: gone, and its slot is free
        if len(self._inflight) >= self.max_pending:
            self._make_room()  # may raise Full: then a running older request still stands
        if old is not None:
            self._supersede(old)  # running: its result will be ignored
        seq = next(self._seq)
        self._submitted += 1
        try:
            future = self._pool.submit(fn, *args)
        except Closed:
            raise
        except CorelaneError as exc:  # NotPicklable, or a broken pool: an answer, not a crash
            self._latest.pop(key, None)
            self._ready.append(Failure(seq, key, exc, ""))
            return
        self._inflight[seq] = _Request(key, future)
        if self.latest_wins:
            self._latest[key] = seq
        future.add_done_callback(functools.partial(_notify, self._finished, seq))

    def poll(self, max_results: int | None = None) -> list[Done | Failure]:
        """Return the outcomes finished since the last poll; never blocks.

        Each is a :class:`Done` ``(key, value)`` or a :class:`corelane.Failure` whose ``item`` is
        the key, ``index`` the request's number and ``exception`` the task's own exception (with
        the worker's ``traceback``), WorkerDied, or Cancelled. Superseded requests return nothing.

        Args:
            max_results: return at most this many (the rest wait for the next poll), to bound
                the work a single frame spends applying results.
        """
        out: list[Done | Failure] = []
        limit = -1 if max_results is None else max_results
        while self._ready and len(out) != limit:
            out.append(self._ready.popleft())
            self._failed += 1
        while len(out) != limit:
            try:
                seq = self._finished.popleft()
            except IndexError:
                break
            req = self._inflight.pop(seq, None)
            if req is None:  # cancelled by us, already accounted for
                continue
            if req.stale:
                self._superseded += 1
                continue
            if self._latest.get(req.key) == seq:
                del self._latest[req.key]
            outcome = _outcome(seq, req)
            if isinstance(outcome, Failure):
                self._failed += 1
            else:
                self._completed += 1
            out.append(outcome)
        return out

    def cancel(self, key: Hashable) -> bool:
        """Forget the pending request for ``key`` (latest-wins mode); True if there was one."""
        seq = self._latest.pop(key, None)
        if seq is None:
            return False
        self._supersede(seq)
        return True

    @property
    def pending(self) -> int:
        """Requests not yet returned by poll (including superseded ones still running)."""
        return len(self._inflight) + len(self._ready)

    @property
    def workers(self) -> int:
        """Number of worker processes."""
        return self._pool.workers

    def statistics(self) -> OffloaderStatistics:
        """Counters of what this Offloader has done so far."""
        return OffloaderStatistics(
            self._submitted, self._completed, self._failed, self._superseded, self._dropped,
            self.pending,
        )

    def wait_idle(self, timeout: float) -> bool:
        """Block until every pending request has finished (poll still returns them).

        For shutdown paths, scripts and tests, not for the frame loop.

        Returns:
            True if nothing is left running, False if ``timeout`` seconds passed first.
        """
        futures = [r.future for r in self._inflight.values()]
        _, not_done = concurrent.futures.wait(futures, timeout=timeout)
        return not not_done

    def close(self) -> None:
        """Stop now, even mid-task: the workers are terminated and pending requests dropped.

        With a pool passed in, only this Offloader's requests are cancelled. Safe to call twice.
        """
        if self._closed:
            return
        self._closed = True
        if self._owned:
            self._pool.terminate()
        else:
            for req in self._inflight.values():
                req.future.cancel()
        self._inflight.clear()
        self._latest.clear()
        self._finished.clear()
        self._ready.clear()

    def __enter__(self) -> Offloader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"pending={self.pending}"
        return f"<corelane.Offloader workers={self._pool.workers} {state}>"

    # ------------------------------------------------------------------ helpers

    def _cancel(self, seq: int) -> bool:
        """Cancel request ``seq`` if it has not started; True if it is gone."""
        req = self._inflight.get(seq)
        if req is None or not req.future.cancel():
            return False
        del self._inflight[seq]
        if self._latest.get(req.key) == seq:
            del self._latest[req.key]
        self._superseded += 1
        return True

    def _supersede(self, seq: int) -> None:
        if not self._cancel(seq) and seq in self._inflight:
            self._inflight[seq].stale = True  # running (or done, not yet polled): ignore it

    def _make_room(self) -> None:
        if self.on_full == "drop_oldest":
            for seq, req in self._inflight.items():
                if not req.stale and req.future.cancel():
                    del self._inflight[seq]
                    if self._latest.get(req.key) == seq:
                        del self._latest[req.key]
                    self._dropped += 1
                    self._ready.append(Failure(seq, req.key, Cancelled(
                        f"request for {req.key!r} dropped: {self.max_pending} requests were "
                        "pending (on_full='drop_oldest')"), ""))
                    return
        raise Full(
            f"{self.pending} requests pending (max_pending={self.max_pending}); "
            "call poll() to collect results before submitting more"
            + ("" if self.on_full == "drop_oldest" else ", or use on_full='drop_oldest'")
        )


def _notify(finished: deque[int], seq: int, _future: concurrent.futures.Future[Any]) -> None:
    """Done callback, on the pool's thread: one append (thread-safe), nothing that can raise."""
    finished.append(seq)


def _outcome(seq: int, req: _Request) -> Done | Failure:
    """Turn a finished Future into what poll returns (never raises, never blocks)."""
    future = req.future
    if future.cancelled():
        return Failure(seq, req.key, Cancelled(f"request for {req.key!r} was cancelled"), "")
    exc = future.exception(timeout=0)
    if exc is None:
        return Done(req.key, future.result(timeout=0))
    if isinstance(exc, TaskError):
        return Failure(seq, req.key, exc.exception, exc.remote_traceback)
    if isinstance(exc.__cause__, RemoteTraceback):  # the task's own exception (Executor style)
        return Failure(seq, req.key, exc, exc.__cause__.text)
    return Failure(seq, req.key, exc, "")
