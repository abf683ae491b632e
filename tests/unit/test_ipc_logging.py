"""Process-aware logging: worker records reach the parent's handlers, tagged, in order per worker."""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

import corelane
from corelane.ipc.logging import configure_worker, forward_worker_logs
from tests.ipc_tasks import log_and_return, log_exception

LOGGER = "corelane.test.worker"


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def captured() -> Iterator[Capture]:
    handler = Capture()
    logger = logging.getLogger(LOGGER)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def test_pool_log_level_forwards_tagged_records_in_order(
    start_method: str, captured: Capture
) -> None:
    with corelane.Pool(2, start_method=start_method, log_level=logging.INFO) as pool:
        assert list(pool.map(log_and_return, range(30), chunksize=3)) == list(range(30))
    records = captured.records
    assert len(records) == 60  # two INFO records per item; DEBUG is below the level
    by_pid: dict[int, list[str]] = defaultdict(list)
    for r in records:
        assert r.process != os.getpid() and r.processName.startswith("corelane-worker-")
        assert r.getMessage().startswith(f"[{r.processName} pid {r.process}] item ")
        by_pid[r.process].append(r.getMessage().split("] ", 1)[1])
    for messages in by_pid.values():  # each worker's records arrive in the order it logged them
        items = [int(m.split()[1]) for m in messages]
        assert items == sorted(items)
        assert [m.split()[2] for m in messages] == ["first", "second"] * (len(messages) // 2)


def test_debug_level_and_exception_text(captured: Capture) -> None:
    with corelane.Pool(1, log_level="DEBUG") as pool:
        list(pool.map(log_and_return, [1]))
        list(pool.map(log_exception, [7]))
    messages = [r.getMessage() for r in captured.records]
    assert any(m.endswith("item 1 debug") for m in messages)
    (failed,) = [m for m in messages if "item 7 failed" in m]
    assert "KeyError: 'missing 7'" in failed and "Traceback" in failed


def test_no_record_is_written_twice_under_fork(tmp_path: Path) -> None:
    # Forked workers inherit the parent's root handlers; they must not write through them.
    path = tmp_path / "log.txt"
    handler = logging.FileHandler(path)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with corelane.Pool(2, start_method="fork", log_level=logging.INFO) as pool:
            list(pool.map(log_and_return, range(10)))
    finally:
        root.removeHandler(handler)
        handler.close()
    lines = path.read_text().splitlines()
    assert len(lines) == 20, lines


def test_forward_worker_logs_for_plain_multiprocessing(
    start_method: str, captured: Capture
) -> None:
    ctx = mp.get_context(start_method)
    logs = forward_worker_logs(logging.INFO, ctx=ctx)
    with logs, ctx.Pool(2, initializer=logs.initializer, initargs=logs.initargs) as pool:
        assert list(pool.map(log_and_return, range(5))) == list(range(5))
        pool.close()
        pool.join()
    assert len(captured.records) == 10
    assert all("pid" in r.getMessage() and r.process != os.getpid() for r in captured.records)
    assert logs.initializer is configure_worker
