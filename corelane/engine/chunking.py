"""Adaptive chunk sizing from measured per-item time.

The trade-off: big chunks amortize the ~100 µs cost of a round trip to a worker; small chunks
balance load and keep the tail short. We aim for chunks of about ``TARGET_SECONDS`` of work, from
an estimate of per-item time that follows the measurements (a moving average), and never cut
chunks so large that fewer than ``TAIL_CHUNKS_PER_WORKER`` remain per worker when the total is
known. Workers also stop a chunk that overruns ``BUDGET_FACTOR`` times the work it was cut for and
hand the rest back, which the parent cuts again from the new estimate, so a mis-estimate (heavy
items after light ones) costs at most about one item of imbalance.
"""

from __future__ import annotations

import math

TARGET_SECONDS = 0.05  # work per chunk: ~100 µs overhead per round trip makes this ~0.5%
BUDGET_FACTOR = 4.0  # a chunk running past this times its planned work returns its unstarted items
MAX_CHUNK = 10_000  # bounds memory per message and the read-ahead of lazy input
MAX_CHUNK_KNOWN = 100_000  # the same bound when the input has a length (it is in memory)
TAIL_CHUNKS_PER_WORKER = 4  # keep this many chunks per worker of what is left, for the tail
FLOOR_SECONDS = 0.005  # ... but never cut a chunk below this much measured work for it: a round
#                        trip costs ~0.1-1 ms, and tiny tail chunks were most of a small map's time
SPLIT_SECONDS = 0.0005  # below FLOOR * workers of work left, still give each worker a share
#                        as long as a share is worth this much (a round trip costs ~0.1-0.3 ms)
SMOOTHING = 0.5  # weight of a new measurement in the moving average
INITIAL_CHUNK = 32  # before any measurement; the time budget bounds the cost of a bad guess
PREFETCH_BELOW_SECONDS = 0.1  # send a second chunk ahead only when chunks are this short
DEEP_PREFETCH_BELOW_SECONDS = 0.01  # ... and a third when they are this short


class Chunker:
    """Chooses chunk sizes for one run.

    Args:
        workers: number of worker processes sharing the run.
        fixed: a chunk size forced by the caller (``chunksize=``), or None to adapt.
        total: number of items when known (``len()``), else None.
    """

    def __init__(self, workers: int, fixed: int | None = None, total: int | None = None) -> None:
        if fixed is not None and fixed < 1:
            raise ValueError(f"chunksize must be >= 1, got {fixed}")
        self.workers = max(1, workers)
        self.fixed = fixed
        self.total = total
        self.per_item: float | None = None  # seconds, moving average (may start from a hint)
        self._seconds = 0.0  # measured work of this run so far ...
        self._items = 0  # ... and the items it covered (their ratio: the hint for the next run)
        self._last_seconds: float | None = None  # work per chunk chosen for the input's end

    def observe(self, elapsed: float, n_items: int) -> None:
        """Record that ``n_items`` items took ``elapsed`` seconds in a worker."""
        if n_items <= 0:
            return
        sample = max(elapsed / n_items, 1e-8)
        self._seconds += elapsed
        self._items += n_items
        if self.per_item is None:
            self.per_item = sample
        else:
            self.per_item += SMOOTHING * (sample - self.per_item)

    def mean(self) -> float | None:
        """Seconds per item over every chunk measured in this run, weighted by their items: what
        the next run of the same function starts from. Unlike the moving average, it is not
        swayed by the last few chunks, which are the run's smallest (the end is cut fine) and,
        in a new pool, may be the first ones a cold worker ran: their fixed costs read as a
        per-item cost up to 8x the real one, and a hint that far off cut the next warm run of
        20,000 trivial items into 7 chunks instead of 2."""
        if self._items == 0:
            return None
        return max(self._seconds / self._items, 1e-8)

    def size(self, cut_so_far: int = 0) -> int:
        """The size of the next chunk, given how many items were already cut."""
        if self.fixed is not None:
            return self.fixed
        if self.per_item is None:
            if self.total is not None and self.total <= 2 * self.workers * INITIAL_CHUNK:
                # A short input goes out whole, two chunks a worker, in one round trip (the
                # time budget bounds the cost of a bad guess: a slow chunk hands back its rest).
                return max(1, math.ceil(self.total / (2 * self.workers)))
            # Before the first measurement: small chunks, growing with what is already out
            # (large first chunks would bunch a heavy tail on one worker before we know it).
            size = max(INITIAL_CHUNK, cut_so_far // self.workers)
        else:
            size = max(1, int(TARGET_SECONDS / self.per_item))
        if self.total is None:
            return min(size, MAX_CHUNK)
        # A known length means the input is in memory already: no read-ahead cap, only the tail's.
        left = max(0, self.total - cut_so_far)
        tail = math.ceil(left / (self.workers * TAIL_CHUNKS_PER_WORKER))
        if self.per_item is not None and tail * self.per_item < FLOOR_SECONDS:
            tail = self._last_chunk(left, self.per_item)
        return max(1, min(size, MAX_CHUNK_KNOWN, tail))

    def _last_chunk(self, left: int, per_item: float) -> int:
        """Chunks for the end of a known input, once less than ``FLOOR_SECONDS`` a tail chunk is
        left: about ``FLOOR_SECONDS`` each, as many as a multiple of the workers (so the last
        round ends together); less work than that is split once over the workers, a share
        of at least ``SPLIT_SECONDS`` each. The work per chunk is chosen once and kept (deciding
        again at every cut would halve the last chunks); chunks only get fewer items as the
        measured time per item grows (a heavy tail still ends in small chunks)."""
        if self._last_seconds is None:
            work = left * per_item
            w = self.workers
            if work >= FLOOR_SECONDS * w:
                k = w * max(1, round(work / (FLOOR_SECONDS * w)))
            else:
                k = max(1, min(w, int(work / SPLIT_SECONDS)))
            self._last_seconds = work / min(k, w * TAIL_CHUNKS_PER_WORKER)
        size = max(1, round(self._last_seconds / per_item))
        return _no_sliver(left, size)

    def budget(self, n_items: int) -> float:
        """Seconds after which a worker hands back the unstarted rest of a chunk of ``n_items``
        (0: never): ``BUDGET_FACTOR`` times the work it was cut for, counted as at least
        ``FLOOR_SECONDS`` and at most ``TARGET_SECONDS``. Planned on the estimate, so the tail's
        short chunks are caught as soon as heavy items prove the estimate wrong: a 5 ms chunk
        that meets items 16 times heavier stops after 20 ms, not after a whole chunk's 200 ms."""
        if self.fixed is not None:
            return 0.0
        if self.per_item is None:
            return TARGET_SECONDS * BUDGET_FACTOR
        planned = min(TARGET_SECONDS, max(FLOOR_SECONDS, n_items * self.per_item))
        return planned * BUDGET_FACTOR

    def recut(self, n_items: int) -> list[int]:
        """Sizes to cut ``n_items`` handed back over budget into, from the estimate as it is
        now: pieces of the work chunks of this run are cut for (the tail's work once the end is
        reached), no sliver left for one more trip."""
        if self.fixed is not None or self.per_item is None:
            return [n_items]
        seconds = self._last_seconds if self._last_seconds is not None else TARGET_SECONDS
        piece = max(1, round(seconds / self.per_item))
        sizes: list[int] = []
        left = n_items
        while left > 0:
            size = _no_sliver(left, piece)
            sizes.append(size)
            left -= size
        return sizes

    def prefetch(self) -> int:
        """How many chunks a worker may hold at once: one running, plus queued ones when chunks
        are short enough that the parent's turnaround (a few GIL hand-offs) would idle it."""
        if self.per_item is None:
            # Adaptive runs queue one chunk behind the first (no idle round trip while we
            # measure); fixed ones (submits) do not: a queued call can no longer be cancelled.
            return 1 if self.fixed is not None else 2
        chunk_seconds = self.per_item * self.size()  # a chunk as the run began: the end of a
        #   run queues no deeper than its middle (deep queues at the end bunched a heavy tail)
        if chunk_seconds >= PREFETCH_BELOW_SECONDS:
            return 1
        return 3 if chunk_seconds < DEEP_PREFETCH_BELOW_SECONDS else 2


def _no_sliver(left: int, size: int) -> int:
    """``size``, or all of ``left`` when cutting ``size`` would leave a sliver for one more trip."""
    return left if left < size * 1.25 else size
