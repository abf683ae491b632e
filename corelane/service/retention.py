"""Deleting jobs: one job on request (``DELETE /api/jobs/<id>``), or every job older than
``keep_days`` on a timer (``corelane serve --keep-days N``).

A deletion removes the rows first (in one write transaction that refuses a running job), then the
files: the uploaded sources and each item's output folder. Rows go first so that no reader ever
sees a job whose files are gone; a crash between the two leaves only unreferenced files.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any

from corelane.errors import JobNotFound
from corelane.service.jobs import EventName
from corelane.service.objects import ObjectStore

log = logging.getLogger(__name__)

_ID = re.compile(r"^[0-9a-f]{32}$")
SWEEP_EVERY_S = 3600.0  # how often the retention sweep looks for expired jobs
SWEEP_BATCH = 100  # jobs listed per round of a sweep


def remove_files(objects: ObjectStore, items: list[dict[str, Any]]) -> int:
    """Delete the sources and outputs of ``items`` (store rows); returns the files removed."""
    removed = 0
    for item in items:
        keys = [item.get("source_key")]
        keys += [info.get("key") for info in (item.get("outputs") or {}).values()]
        for key in keys:
            if key and objects.exists(key):
                objects.delete(key)
                removed += 1
        item_id = str(item["id"])
        if _ID.match(item_id):
            # What is left in the item's output folder: a retry with other sizes leaves files
            # the row no longer lists.
            # (On S3 the bucket's copies go too, not only this host's cache.)
            removed += objects.delete_under(f"out/{item_id[:2]}/{item_id}/")
    return removed


def delete_job(service: Any, job_id: str, ended_before: float | None = None) -> int | None:
    """Delete a job that is not running, its items and files; tell the clients; returns files removed.

    With ``ended_before``, only if the job still ended before then (None: it was left alone).

    Raises:
        JobNotFound: no such job. ServiceError (409): the job is running.
    """
    items = service.store.delete_job(job_id, ended_before)
    if items is None:
        return None
    removed = remove_files(service.objects, items)
    service.publish(EventName.JOB_DELETED, job_id, {"job_id": job_id})
    return removed


def sweep(service: Any, keep_days: float, now: float | None = None) -> list[str]:
    """Delete every finished job that ended more than ``keep_days`` ago; returns their ids."""
    cutoff = (time.time() if now is None else now) - keep_days * 86400
    deleted: list[str] = []
    while batch := service.store.ended_before(cutoff, limit=SWEEP_BATCH):
        for job_id in batch:
            try:
                # A job retried since it was listed is queued again: left alone.
                if delete_job(service, job_id, ended_before=cutoff) is not None:
                    deleted.append(job_id)
            except JobNotFound:
                pass  # deleted by hand meanwhile
            except Exception:  # noqa: BLE001 - one bad job must not stop the service
                log.exception("retention: could not delete job %s", job_id)
                return deleted
        if len(batch) < SWEEP_BATCH:
            break
    if deleted:
        log.info("retention: deleted %d job(s) that ended over %g day(s) ago",
                 len(deleted), keep_days)
    return deleted


class RetentionSweeper:
    """A daemon thread that runs :func:`sweep` at start and every ``SWEEP_EVERY_S`` seconds."""

    def __init__(self, service: Any, keep_days: float, every_s: float = SWEEP_EVERY_S) -> None:
        self.service = service
        self.keep_days = keep_days
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="corelane-retention",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                sweep(self.service, self.keep_days)
            except Exception:  # noqa: BLE001 - the database may be briefly unreachable
                log.exception("retention sweep failed; trying again later")
            self._stop.wait(self.every_s)
