"""The job store: SQLAlchemy Core tables, SQLite (WAL) by default, PostgreSQL by URL.

SQLite notes: a deferred transaction that reads and then writes fails at once with "database is
locked" when another writer got there first, whatever the busy timeout. So every write here runs
in a transaction opened with ``BEGIN IMMEDIATE`` (it takes the write lock up front and waits up to
the busy timeout for it), reads use plain ``BEGIN``, and WAL lets reads go on during a write.
PostgreSQL needs none of this; the same statements run there unchanged.

Every item transition is a conditional UPDATE (``... WHERE state = 'queued'``), so a result that
arrives twice, or after a cancel, changes nothing: an item is settled exactly once.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from corelane.errors import JobNotFound, ServiceError
from corelane.service.jobs import ItemState, JobState

BUSY_TIMEOUT_S = 10.0  # how long a SQLite writer waits for the lock before "database is locked"

metadata = sa.MetaData()

jobs = sa.Table(
    "corelane_jobs", metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(32), nullable=False, unique=True),
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("options", sa.JSON, nullable=False),
    sa.Column("total", sa.Integer, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("started_at", sa.Float),
    sa.Column("finished_at", sa.Float),
)

items = sa.Table(
    "corelane_items", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("job_id", sa.String(32), nullable=False, index=True),
    sa.Column("idx", sa.Integer, nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("source_key", sa.String(80)),
    sa.Column("source_bytes", sa.Integer, nullable=False, default=0),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("error", sa.Text),
    sa.Column("width", sa.Integer),
    sa.Column("height", sa.Integer),
    sa.Column("format", sa.String(16)),
    sa.Column("mode", sa.String(16)),
    sa.Column("output_format", sa.String(8)),
    sa.Column("outputs", sa.JSON),
    sa.Column("features", sa.JSON),
    sa.Column("finished_at", sa.Float),
    sa.UniqueConstraint("job_id", "idx", name="uq_corelane_items_job_idx"),
)

ITEM_FIELDS = ("id", "idx", "name", "source_bytes", "state", "attempts", "error", "width",
               "height", "format", "mode", "output_format", "outputs", "features", "finished_at")


def make_engine(url: str) -> Engine:
    """An Engine for ``url``; SQLite gets WAL, a busy timeout and BEGIN (IMMEDIATE) control."""
    if not url.startswith("sqlite"):
        return sa.create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    engine = sa.create_engine(
        url, connect_args={"timeout": BUSY_TIMEOUT_S, "check_same_thread": False}
    )

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let us issue BEGIN ourselves (pysqlite's own handling defers and cannot be IMMEDIATE).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("corelane_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class Store:
    """Jobs and items in a SQL database; safe to share between threads."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._writer = self.engine.execution_options(corelane_write=True)
        metadata.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._writer.begin() as conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    # ------------------------------------------------------------------ creating and reading

    def create_job(self, job_id: str, options: dict[str, Any], rows: Sequence[dict[str, Any]]
                   ) -> None:
        """Insert a queued job and its items (``rows``: id, idx, name, source_key, ...)."""
        now = time.time()
        with self._write() as conn:
            conn.execute(jobs.insert().values(id=job_id, state=JobState.QUEUED.value,
                                              options=options, total=len(rows), created_at=now))
            if rows:
                blank = {"source_key": None, "source_bytes": 0, "state": ItemState.QUEUED.value,
                         "attempts": 0, "error": None, "width": None, "height": None,
                         "format": None}
                conn.execute(items.insert(), [
                    {**blank, **row, "job_id": job_id,
                     "finished_at": now if row.get("state", "queued") != "queued" else None}
                    for row in rows
                ])

    def _counts(self, conn: Connection, job_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        if not job_ids:
            return {}
        q = (sa.select(items.c.job_id, items.c.state, sa.func.count())
             .where(items.c.job_id.in_(job_ids))
             .group_by(items.c.job_id, items.c.state))
        out: dict[str, dict[str, int]] = {jid: {} for jid in job_ids}
        for row in conn.execute(q):
            out[str(row[0])][str(row[1])] = int(row[2])
        return out

    @staticmethod
    def _queued_seqs(conn: Connection) -> list[int]:
        """The ``seq`` of every queued job, oldest first: a job's queue position is its place."""
        return [int(r[0]) for r in conn.execute(
            sa.select(jobs.c.seq).where(jobs.c.state == JobState.QUEUED.value)
            .order_by(jobs.c.seq))]

    @staticmethod
    def _job_dict(row: Any, counts: dict[str, int], queued: list[int]) -> dict[str, Any]:
        position = None
        if row.state == JobState.QUEUED.value:  # 1 = the next job to start
            position = bisect.bisect_left(queued, row.seq) + 1
        return {
            "id": row.id, "state": row.state, "options": row.options, "total": row.total,
            "done": counts.get(ItemState.DONE.value, 0),
            "failed": counts.get(ItemState.FAILED.value, 0),
            "cancelled": counts.get(ItemState.CANCELLED.value, 0),
            "queued": counts.get(ItemState.QUEUED.value, 0),
            "created_at": row.created_at, "started_at": row.started_at,
            "finished_at": row.finished_at, "queue_position": position,
        }

    def get_job(self, job_id: str) -> dict[str, Any]:
        """The job with its item counts.

        Raises:
            JobNotFound: no such job.
        """
        with self._read() as conn:
            row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).first()
            if row is None:
                raise JobNotFound(f"no job {job_id!r}")
            return self._job_dict(row, self._counts(conn, [job_id])[job_id],
                                  self._queued_seqs(conn) if row.state == JobState.QUEUED.value else [])

    def list_jobs(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest jobs first, with their counts."""
        with self._read() as conn:
            rows = conn.execute(sa.select(jobs).order_by(jobs.c.seq.desc()).limit(limit)).all()
            counts = self._counts(conn, [r.id for r in rows])
            queued = self._queued_seqs(conn)
            return [self._job_dict(r, counts[r.id], queued) for r in rows]

    def list_items(self, job_id: str, state: ItemState | None = None) -> list[dict[str, Any]]:
        """The items of a job in upload order (optionally only those in ``state``)."""
        q = sa.select(items).where(items.c.job_id == job_id).order_by(items.c.idx)
        if state is not None:
            q = q.where(items.c.state == state.value)
        with self._read() as conn:
            return [self._item_dict(r) for r in conn.execute(q)]

    def get_item(self, job_id: str, item_id: str) -> dict[str, Any]:
        """One item, with its source key (for the runner and downloads).

        Raises:
            JobNotFound: no such item in that job.
        """
        with self._read() as conn:
            row = conn.execute(sa.select(items).where(
                items.c.id == item_id, items.c.job_id == job_id)).first()
        if row is None:
            raise JobNotFound(f"no item {item_id!r} in job {job_id!r}")
        return self._item_dict(row)

    @staticmethod
    def _item_dict(row: Any) -> dict[str, Any]:
        data = {name: getattr(row, name) for name in ITEM_FIELDS}
        data["job_id"] = row.job_id
        data["source_key"] = row.source_key
        return data

    # ------------------------------------------------------------------ the runner's writes

    def claim_next_job(self) -> dict[str, Any] | None:
        """Move the oldest queued job to running and return it (None when none is queued).

        Runners call it while they have room for another running job (``max_running_jobs``);
        running jobs then share the workers round-robin (runners/fair.py).
        """
        with self._write() as conn:
            row = conn.execute(
                sa.select(jobs.c.id).where(jobs.c.state == JobState.QUEUED.value)
                .order_by(jobs.c.seq).limit(1)
            ).first()
            if row is None:
                return None
            res = conn.execute(jobs.update()
                               .where(jobs.c.id == row.id, jobs.c.state == JobState.QUEUED.value)
                               .values(state=JobState.RUNNING.value, started_at=time.time()))
            if res.rowcount != 1:
                return None
        return self.get_job(row.id)

    def running_jobs(self) -> list[str]:
        """Ids of the running jobs, oldest first."""
        with self._read() as conn:
            return [str(r.id) for r in conn.execute(
                sa.select(jobs.c.id).where(jobs.c.state == JobState.RUNNING.value)
                .order_by(jobs.c.seq))]

    def still_queued(self, item_ids: Sequence[str]) -> set[str]:
        """Which of ``item_ids`` are still queued (not settled); the dispatcher's view of what
        it sent and is still out."""
        if not item_ids:
            return set()
        with self._read() as conn:
            return {str(r.id) for r in conn.execute(
                sa.select(items.c.id).where(items.c.id.in_(list(item_ids)),
                                            items.c.state == ItemState.QUEUED.value))}

    def item_done(self, item_id: str, result: dict[str, Any]) -> bool:
        """Settle a queued item as done with its result; False if it was already settled."""
        values = {k: result.get(k) for k in ("width", "height", "format", "mode",
                                             "output_format", "outputs", "features")}
        with self._write() as conn:
            res = conn.execute(items.update()
                               .where(items.c.id == item_id,
                                      items.c.state == ItemState.QUEUED.value)
                               .values(state=ItemState.DONE.value, error=None,
                                       finished_at=time.time(), **values))
            return bool(res.rowcount == 1)

    def item_failed(self, item_id: str, error: str, attempts: int | None = None) -> bool:
        """Settle a queued item as failed; False if it was already settled."""
        values: dict[str, Any] = {"state": ItemState.FAILED.value, "error": error[:4000],
                                  "finished_at": time.time()}
        if attempts is not None:
            values["attempts"] = attempts
        with self._write() as conn:
            res = conn.execute(items.update().where(
                items.c.id == item_id, items.c.state == ItemState.QUEUED.value).values(**values))
            return bool(res.rowcount == 1)

    def set_attempts(self, item_id: str, attempts: int) -> None:
        """Record how many times a worker died on this item (poison accounting)."""
        with self._write() as conn:
            conn.execute(items.update().where(items.c.id == item_id).values(attempts=attempts))

    def finish_job(self, job_id: str, state: JobState) -> bool:
        """Move a running job to its final ``state``; False if it was not running."""
        with self._write() as conn:
            res = conn.execute(jobs.update()
                               .where(jobs.c.id == job_id,
                                      jobs.c.state == JobState.RUNNING.value)
                               .values(state=state.value, finished_at=time.time()))
            return bool(res.rowcount == 1)

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        """Cancel a queued or running job: its queued items become cancelled.

        Raises:
            JobNotFound: no such job. ServiceError (409): the job already ended.
        """
        now = time.time()
        with self._write() as conn:
            row = conn.execute(sa.select(jobs.c.state).where(jobs.c.id == job_id)).first()
            if row is None:
                raise JobNotFound(f"no job {job_id!r}")
            if JobState(row.state).finished:
                raise ServiceError(f"job {job_id} already ended ({row.state}); nothing to cancel",
                                   status=409)
            conn.execute(items.update().where(items.c.job_id == job_id,
                                              items.c.state == ItemState.QUEUED.value)
                         .values(state=ItemState.CANCELLED.value, finished_at=now))
            conn.execute(jobs.update().where(jobs.c.id == job_id)
                         .values(state=JobState.CANCELLED.value, finished_at=now))
        return self.get_job(job_id)

    def retry_job(self, job_id: str) -> dict[str, Any]:
        """Queue a finished job's failed and cancelled items again.

        Raises:
            JobNotFound: no such job. ServiceError (409): still running, or nothing to retry.
        """
        with self._write() as conn:
            row = conn.execute(sa.select(jobs.c.state).where(jobs.c.id == job_id)).first()
            if row is None:
                raise JobNotFound(f"no job {job_id!r}")
            if not JobState(row.state).finished:
                raise ServiceError(f"job {job_id} is {row.state}; retry it once it ends",
                                   status=409)
            res = conn.execute(
                items.update().where(items.c.job_id == job_id, items.c.state.in_(
                    [ItemState.FAILED.value, ItemState.CANCELLED.value]),
                    items.c.source_key.is_not(None))
                .values(state=ItemState.QUEUED.value, error=None, attempts=0, finished_at=None))
            if res.rowcount == 0:
                raise ServiceError(f"job {job_id} has no failed item that can run again",
                                   status=409)
            conn.execute(jobs.update().where(jobs.c.id == job_id)
                         .values(state=JobState.QUEUED.value, finished_at=None))
        return self.get_job(job_id)

    # ------------------------------------------------------------------ deleting

    def delete_job(self, job_id: str, ended_before: float | None = None
                   ) -> list[dict[str, Any]] | None:
        """Delete a job that is not running, with its items; returns the items (for their files).

        With ``ended_before`` (the retention sweep) only a job that still is finished and ended
        before that time goes; otherwise (say it was retried meanwhile) nothing changes and the
        answer is None.

        Raises:
            JobNotFound: no such job. ServiceError (409): the job is running (cancel it first).
        """
        with self._write() as conn:
            row = conn.execute(sa.select(jobs.c.state).where(jobs.c.id == job_id)).first()
            if row is None:
                raise JobNotFound(f"no job {job_id!r}")
            where = [jobs.c.id == job_id, jobs.c.state != JobState.RUNNING.value]
            if ended_before is not None:
                where += [jobs.c.state.in_([s.value for s in JobState if s.finished]),
                          jobs.c.finished_at < ended_before]
            res = conn.execute(jobs.delete().where(*where))
            if res.rowcount != 1 and ended_before is not None:
                return None
            if res.rowcount != 1:
                raise ServiceError(f"job {job_id} is running: cancel it, then delete it",
                                   status=409)
            rows = [self._item_dict(r) for r in conn.execute(
                sa.select(items).where(items.c.job_id == job_id))]
            conn.execute(items.delete().where(items.c.job_id == job_id))
        return rows

    def ended_before(self, cutoff: float, limit: int = 100) -> list[str]:
        """Ids of finished jobs that ended before ``cutoff`` (a ``time.time()``), oldest first."""
        finished = [s.value for s in JobState if s.finished]
        with self._read() as conn:
            return [str(r.id) for r in conn.execute(
                sa.select(jobs.c.id).where(jobs.c.state.in_(finished),
                                           jobs.c.finished_at < cutoff)
                .order_by(jobs.c.finished_at).limit(limit))]

    def recover(self) -> list[str]:
        """After a restart: jobs left ``running`` go back to ``queued``; returns their ids."""
        with self._write() as conn:
            ids = [r.id for r in conn.execute(
                sa.select(jobs.c.id).where(jobs.c.state == JobState.RUNNING.value))]
            if ids:
                conn.execute(jobs.update().where(jobs.c.id.in_(ids))
                             .values(state=JobState.QUEUED.value))
        return ids

    def queued_count(self) -> int:
        """Jobs waiting for the runner."""
        with self._read() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(jobs)
                                    .where(jobs.c.state == JobState.QUEUED.value)).scalar_one())
