"""Sinks for progress events: a terminal bar (tqdm) or the caller's own callable.

``progress=True`` means a bar on stderr; ``progress=callable`` means that callable receives every
event (:mod:`corelane.events`). Reporting is driven by the clock (at most every ``INTERVAL`` s), so
200,000 tiny items do not mean 200,000 callbacks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from corelane.events import Event, ProgressEvent, RunFinished

INTERVAL = 0.1  # seconds between progress events

Sink = Callable[[Event], Any]


class TqdmSink:
    """Draws a tqdm bar on stderr from progress events."""

    def __init__(self, label: str = "") -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=None, desc=label or None, unit="item", dynamic_ncols=True)
        self._shown = 0

    def __call__(self, event: Event) -> None:
        if isinstance(event, ProgressEvent | RunFinished):
            if event.total is not None and self._bar.total != event.total:
                self._bar.total = event.total
            self._bar.update(event.done - self._shown)
            self._shown = event.done
            if event.failed:
                self._bar.set_postfix(failed=event.failed, refresh=False)
        if isinstance(event, RunFinished):
            self._bar.close()


def make_sink(progress: bool | Sink | None, label: str = "") -> Sink | None:
    """Turn the ``progress=`` argument into a sink (or None for no reporting)."""
    if progress is None or progress is False:
        return None
    if progress is True:
        return TqdmSink(label)
    if callable(progress):
        return progress
    raise TypeError(f"progress must be a bool or a callable taking events, got {progress!r}")


class Reporter:
    """Counts a run's items and emits events to a sink, throttled by the clock."""

    def __init__(self, sink: Sink | None, total: int | None, label: str = "") -> None:
        self.sink = sink
        self.total = total
        self.label = label
        self.done = 0
        self.failed = 0
        self.started = time.monotonic()
        self._last = 0.0

    def _event(self) -> ProgressEvent:
        elapsed = time.monotonic() - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        return ProgressEvent(self.done, self.total, self.failed, elapsed, rate, self.label)

    def add(self, done: int, failed: int = 0) -> None:
        self.done += done
        self.failed += failed
        if self.sink is None:
            return
        now = time.monotonic()
        if now - self._last >= INTERVAL:
            self._last = now
            self.sink(self._event())

    def finish(self, state: str = "finished") -> None:
        if self.sink is None:
            return
        self.sink(self._event())
        elapsed = time.monotonic() - self.started
        self.sink(RunFinished(self.done, self.total, self.failed, elapsed, state, self.label))
