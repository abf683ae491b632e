"""The crash table: every fault at every stage an item passes through, under every start method.

Modelled on CPython's test_concurrent_futures deadlock matrix and loky's crash cases. Each case
runs through ``submit`` and through ``map(errors="return")`` with one bad item among 64, and
asserts exactly which item or future fails and with which error, that every other result comes
back, and that the next call on the same pool works.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import Any

import psutil
import pytest

import corelane
from corelane import Failure, NotPicklable, WorkerDied
from tests.conftest import START_METHODS
from tests.crash_tasks import (
    DEATHS,
    FAULTS,
    PARENT_STAGES,
    WORKER_STAGES,
    Bomb,
    Injected,
    crash_call,
    slow_value,
)

BAD = 37
N = 64
CASES = [(stage, fault) for stage in WORKER_STAGES for fault in FAULTS] + [
    (stage, fault) for stage in PARENT_STAGES for fault in ("systemexit", "exception")
]
SIGNALS = {"segfault": signal.SIGSEGV, "sigkill": signal.SIGKILL}
EXIT_CODES = {"os_exit": 3, "libc_exit": 4}

pytestmark = pytest.mark.allow_leaks  # the pool outlives each case; the fixture checks at its end


@pytest.fixture(scope="module", params=START_METHODS)
def pool(request: pytest.FixtureRequest) -> Iterator[corelane.Pool]:
    with corelane.Pool(2, start_method=request.param) as p:
        yield p
        pids = list(p.pids)
    for pid in pids:  # closed: every worker, replacements included, has exited
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def expected(stage: str, fault: str) -> tuple[type[BaseException], ...] | None:
    """The error the bad item must fail with (None: it must succeed)."""
    if stage == "free_arg":
        return None  # its result was sent before the fault: nothing to fail
    if fault in DEATHS:
        return (WorkerDied,)
    if stage == "call":
        return (Injected,) if fault == "exception" else (SystemExit,)
    return (NotPicklable,)


def check_error(error: BaseException, stage: str, fault: str) -> None:
    want = expected(stage, fault)
    assert want is not None and isinstance(error, want), (stage, fault, repr(error))
    if isinstance(error, WorkerDied):
        if fault in SIGNALS:
            assert error.signal == SIGNALS[fault]
        else:
            assert error.exitcode == EXIT_CODES[fault]


def still_works(pool: corelane.Pool) -> None:
    assert list(pool.map(crash_call, range(10))) == list(range(10))
    assert pool.submit(crash_call, 5).result(timeout=30) == 5


@pytest.mark.parametrize(("stage", "fault"), CASES)
def test_submit(pool: corelane.Pool, stage: str, fault: str) -> None:
    bomb = Bomb(BAD, stage, fault)
    if stage == "pickle_arg":
        with pytest.raises(NotPicklable):
            pool.submit(crash_call, bomb)
    else:
        neighbours = [pool.submit(crash_call, i) for i in range(8)]
        future = pool.submit(crash_call, bomb)
        more = [pool.submit(crash_call, i) for i in range(8, 16)]
        error = future.exception(timeout=60)
        if expected(stage, fault) is None:
            assert error is None and future.result() == BAD
        else:
            assert error is not None
            check_error(error, stage, fault)
        assert [f.result(timeout=60) for f in neighbours + more] == list(range(16))
    still_works(pool)


@pytest.mark.parametrize(("stage", "fault"), CASES)
def test_map_one_bad_item_among_64(pool: corelane.Pool, stage: str, fault: str) -> None:
    items: list[Any] = list(range(N))
    items[BAD] = Bomb(BAD, stage, fault)
    out = list(pool.map(crash_call, items, errors="return"))
    assert len(out) == N
    good = [x for i, x in enumerate(out) if i != BAD]
    assert good == [i for i in range(N) if i != BAD], [x for x in good if isinstance(x, Failure)]
    if expected(stage, fault) is None:
        assert out[BAD] == BAD
    else:
        assert isinstance(out[BAD], Failure) and out[BAD].index == BAD
        check_error(out[BAD].exception, stage, fault)
    still_works(pool)


@pytest.mark.parametrize("fault", ["exception", "systemexit"])
def test_done_callback_that_raises_fails_nothing(pool: corelane.Pool, fault: str) -> None:
    def callback(_: Any) -> None:
        if fault == "systemexit":
            raise SystemExit(7)
        raise Injected("callback")

    future = pool.submit(slow_value, 3)
    future.add_done_callback(callback)  # before it completes: runs on the pool's thread
    assert future.result(timeout=30) == 3
    still_works(pool)


@pytest.mark.parametrize("fault", sorted(DEATHS))
def test_imap_ordered_yields_every_earlier_result_before_the_failure(
    pool: corelane.Pool, fault: str
) -> None:
    items: list[Any] = list(range(N))
    items[BAD] = Bomb(BAD, "call", fault)
    got: list[int] = []
    with pytest.raises(WorkerDied) as info:
        for value in pool.imap(crash_call, items, chunksize=4):
            got.append(value)
    assert got == list(range(BAD)) and info.value.index == BAD
    still_works(pool)
