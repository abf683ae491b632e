"""Progress transport between whoever runs jobs and the web process that relays to browsers.

The runner calls ``bus.publish(event)``; the web layer calls ``bus.subscribe(handler)`` once and
forwards what it gets to Socket.IO rooms. ``LocalBus`` is the embedded default: an in-process
queue drained by one dispatcher thread, so a slow handler never blocks the runner. A Redis
pub/sub bus (for runners on other hosts) implements the same three methods, and neither the
runner nor the web layer changes.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BusEvent:
    """One event: its name (an EventName value), the job it is about, and a JSON-able payload.

    ``sent_at`` is ``time.time()`` at publish, so receivers can measure transport latency.
    """

    name: str
    job_id: str
    data: dict[str, Any]
    sent_at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "job_id": self.job_id, "data": self.data,
                "sent_at": self.sent_at}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BusEvent:
        return cls(str(data["name"]), str(data["job_id"]), dict(data["data"]),
                   float(data["sent_at"]))


Handler = Callable[[BusEvent], None]


def call_handlers(handlers: list[Handler], event: BusEvent) -> None:
    """Give ``event`` to every handler; a broken handler must not stop the others."""
    for handler in list(handlers):
        try:
            handler(event)
        except Exception:
            log.exception("bus handler %r failed on %s", handler, event.name)


class Bus(Protocol):
    """What runners publish to and the web layer subscribes to."""

    def publish(self, event: BusEvent) -> None: ...

    def subscribe(self, handler: Handler) -> None: ...

    def close(self) -> None: ...


class LocalBus:
    """In-process bus: publish never blocks; one daemon thread calls the handlers in order."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[BusEvent | None] = queue.SimpleQueue()
        self._handlers: list[Handler] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    def publish(self, event: BusEvent) -> None:
        if not self._closed:
            self._queue.put(event)

    def subscribe(self, handler: Handler) -> None:
        with self._lock:
            self._handlers.append(handler)
            if self._thread is None:
                self._thread = threading.Thread(target=self._dispatch, name="corelane-bus",
                                                daemon=True)
                self._thread.start()

    def _dispatch(self) -> None:
        while True:
            event = self._queue.get()
            if event is None:
                return
            call_handlers(self._handlers, event)

    def close(self, timeout: float = 2.0) -> None:
        """Stop the dispatcher after the events already published (bounded wait)."""
        self._closed = True
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)
