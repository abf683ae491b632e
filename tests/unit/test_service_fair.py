"""FairQueue: round-robin between jobs, a per-job cap, retries at the back (runners/fair.py)."""

from __future__ import annotations

import pytest

from corelane.service.runners.fair import FairQueue, job_cap


def drain(fair: FairQueue, settle: bool = True) -> list[str]:
    order = []
    while (got := fair.take()) is not None:
        order.append(got[1])
        if settle:
            fair.settle(got[0])
    return order


def test_a_small_job_interleaves_with_a_big_one_started_before_it() -> None:
    fair = FairQueue()
    fair.add_job("big", [f"b{i}" for i in range(6)])
    assert [fair.take(), fair.take()] == [("big", "b0"), ("big", "b1")]
    fair.add_job("small", ["s0"])
    # The next free slot goes to the small job, not to the big one's third image.
    assert fair.take() == ("small", "s0")
    assert drain(fair) == ["b2", "b3", "b4", "b5"]


def test_round_robin_over_three_jobs() -> None:
    fair = FairQueue()
    for job in "abc":
        fair.add_job(job, [f"{job}{i}" for i in range(3 if job != "b" else 1)])
    assert drain(fair) == ["a0", "b0", "c0", "a1", "c1", "a2", "c2"]


def test_the_cap_bounds_one_jobs_items_out_and_settling_frees_a_place() -> None:
    fair = FairQueue(cap=2)
    fair.add_job("big", ["b0", "b1", "b2"])
    assert [fair.take(), fair.take(), fair.take()] == [("big", "b0"), ("big", "b1"), None]
    assert fair.out("big") == 2 and fair.pending("big") == 1
    fair.settle("big")
    assert fair.take() == ("big", "b2")
    assert fair.total_out() == 2


def test_a_retry_goes_to_the_back_of_its_jobs_line_and_leaves_the_out_count() -> None:
    fair = FairQueue(cap=1)
    fair.add_job("j", ["x", "y"])
    assert fair.take() == ("j", "x")
    fair.put_back("j", "x")
    assert fair.out("j") == 0
    assert drain(fair) == ["y", "x"]
    assert fair.idle("j")


def test_clear_keeps_the_items_out_and_drop_forgets_the_job() -> None:
    fair = FairQueue()
    fair.add_job("j", ["x", "y", "z"])
    fair.take()
    assert fair.clear("j") == ["y", "z"]
    assert not fair.idle("j") and fair.take() is None
    fair.settle("j")
    assert fair.idle("j")
    assert fair.drop("j") == [] and "j" not in fair and len(fair) == 0
    fair.settle("j")  # a late result of a dropped job changes nothing
    assert fair.drop("j") == []


def test_job_cap_from_the_configuration() -> None:
    assert job_cap(0, 8) is None  # no cap but the runner's own slots
    assert job_cap(3, 8) == 3
    assert job_cap(16, 8) == 8
    with pytest.raises(ValueError, match="cap must be >= 1"):
        FairQueue(cap=0)
