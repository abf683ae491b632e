"""One item policy for both runners: what an item is run with, and what its failure reads as.

::

    web node (either runner)                         wherever the item runs
    job["options"] --decode_options--> ProcessOptions
    config --ItemLimits.from_config--> limits --(in the task message, broker mode)--> ImageLimits
                                                           + item timeout, max attempts
    exception --failure_text--> "ValueError: boom"  (the same text in both modes)
    died / timed out --retry_or_give_up--> try again, or gave_up_text after max_attempts
    job_progress events --ProgressClock--> at most every PROGRESS_S, and always the last one

The limits are the web node's (the one that accepted the upload and probed it), so a worker host
with other defaults still applies the caps the upload was checked against. Neither runner has a
rule of its own: what differs between them is only how an item reaches a process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields
from typing import Any, Protocol

from corelane.service.config import ServiceConfig

PROGRESS_S = 0.1  # job_progress events at most this often (item events are never throttled)


class ProgressClock:
    """Say when a progress event is due: by clock, not per item (a burst of small images would
    otherwise send one event per image to every browser)."""

    def __init__(self, interval: float = PROGRESS_S) -> None:
        self.interval = interval
        self._next = 0.0

    def due(self, final: bool = False) -> bool:
        now = time.monotonic()
        if final or now >= self._next:
            self._next = now + self.interval
            return True
        return False


class Runner(Protocol):
    """What the web layer needs of a runner (LocalRunner and CeleryRunner)."""

    current_job: str | None

    def start(self) -> None:
        """Start taking queued jobs."""

    def wake(self) -> None:
        """Look for queued jobs now (a job was created or retried)."""

    def cancel(self, job_id: str) -> None:
        """Stop running ``job_id`` soon (the store already marked it cancelled)."""

    def stop(self, timeout: float = 10.0) -> None:
        """Stop; unfinished items stay queued and run after the next start."""


@dataclass(frozen=True)
class ItemLimits:
    """The caps an item runs under, decided by the web node and sent with the item."""

    max_pixels: int
    max_bytes: int
    item_timeout: float
    max_attempts: int

    @classmethod
    def from_config(cls, config: ServiceConfig) -> ItemLimits:
        return cls(int(config.max_pixels), int(config.max_file_bytes), float(config.item_timeout),
                   int(config.max_attempts))

    def to_dict(self) -> dict[str, Any]:
        return {"max_pixels": self.max_pixels, "max_bytes": self.max_bytes,
                "item_timeout": self.item_timeout, "max_attempts": self.max_attempts}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ItemLimits:
        return cls(int(data["max_pixels"]), int(data["max_bytes"]), float(data["item_timeout"]),
                   int(data["max_attempts"]))

    def image_limits(self) -> Any:
        """As :class:`corelane.imaging.ImageLimits` (imported here: workers only need imaging)."""
        from corelane.imaging import ImageLimits

        return ImageLimits(max_pixels=self.max_pixels, max_bytes=self.max_bytes)


def decode_options(options: dict[str, Any]) -> Any:
    """A job's stored options (JSON) as :class:`corelane.imaging.ProcessOptions`.

    Every field ProcessOptions knows is passed through (lists become tuples), so an option added
    to imaging reaches both runners without a change here; unknown keys are ignored.
    """
    from corelane.imaging import ProcessOptions

    known = {f.name for f in fields(ProcessOptions)}
    return ProcessOptions(**{k: _tuples(v) for k, v in options.items() if k in known})


def _tuples(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def failure_text(exc: BaseException | None) -> str:
    """The one-line error an item failed with: the cause, not our plumbing.

    A rejected image reads as its own message ("the upload is truncated ..."); anything else as
    ``Type: message`` ("ValueError: boom"), whichever process raised it and however it travelled
    (the engine wraps it in TaskError; Celery runs it in place).
    """
    from corelane.errors import BadImage, TaskError

    if exc is None:
        return "unknown failure"
    if isinstance(exc, TaskError):
        exc = exc.exception
    if isinstance(exc, BadImage):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def timeout_text(item_timeout: float) -> str:
    return f"TaskTimeout: the image took longer than the item timeout of {item_timeout:g} s"


def gave_up_text(attempts: int, cause: str) -> str:
    """The error of an item whose worker died (or overran) on every one of ``attempts`` tries."""
    return (f"gave up on this image after {attempts} attempt(s): {cause}; "
            "it may be a poison input")


def retry_or_give_up(attempts: int, max_attempts: int) -> bool:
    """True when an item whose worker died or timed out on try ``attempts`` runs again."""
    return attempts < max_attempts
