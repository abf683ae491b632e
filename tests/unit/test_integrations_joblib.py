"""The "corelane" joblib backend: real joblib and scikit-learn calls, real SIGKILLed workers.

Scores are compared with joblib's default (loky) backend, run in a child process; workers that die are real processes
killed by SIGKILL from inside a scikit-learn fit.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from multiprocessing import forkserver
from pathlib import Path
from typing import Any

import joblib
import psutil
import pytest
from joblib_tasks import (
    KillingClassifier,
    fail_on,
    nested_backend,
    sleep_or_fail,
    sleep_then_touch,
    square,
    thread_limits,
    whoami,
)
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score

import corelane
import corelane.integrations.joblib as cj

X, Y = make_classification(n_samples=240, n_features=8, random_state=0)


@pytest.fixture(autouse=True)
def _stop_pools() -> Iterator[None]:
    """Stop the workers the backend keeps for reuse, before the suite's leak check runs."""
    yield
    cj.shutdown()


_REFERENCE = """
import json
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score
X, Y = make_classification(n_samples=240, n_features=8, random_state=0)
cv = cross_val_score(LogisticRegression(max_iter=500), X, Y, cv=4, n_jobs=2)
grid = GridSearchCV(LogisticRegression(max_iter=500), {"C": [0.01, 0.1, 1.0, 10.0]}, cv=3,
                    n_jobs=2).fit(X, Y)
print(json.dumps({"cv": cv.tolist(), "best": grid.best_params_,
                  "mean": grid.cv_results_["mean_test_score"].tolist()}))
"""


@pytest.fixture(scope="module")
def loky_reference() -> dict[str, Any]:
    """The same calls on joblib's default backend (loky), in a child process: loky keeps its
    workers and a resource tracker alive after a call, which this suite would count as leaks."""
    done = subprocess.run([sys.executable, "-c", _REFERENCE], capture_output=True, text=True,
                          timeout=120, check=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _workers_alive() -> list[psutil.Process]:
    """Our descendants (forkserver workers included) but the helpers kept on purpose."""
    server = forkserver._forkserver._forkserver_pid  # type: ignore[attr-defined]
    alive = []
    for p in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            helper = p.pid == server or "resource_tracker" in " ".join(p.cmdline())
            if not helper and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(p)
    return alive


def test_importing_registers_the_backend() -> None:
    from joblib.parallel import BACKENDS

    assert BACKENDS["corelane"] is cj.CorelaneBackend


def test_parallel_returns_results_in_order() -> None:
    with joblib.parallel_config(backend="corelane", n_jobs=2):
        out = joblib.Parallel()(joblib.delayed(square)(i) for i in range(500))
    assert out == [i * i for i in range(500)]


def test_a_task_error_raises_the_tasks_own_exception() -> None:
    with joblib.parallel_config(backend="corelane", n_jobs=2), \
            pytest.raises(ValueError, match="bad input 7") as info:
        joblib.Parallel()(joblib.delayed(fail_on)(i, 7) for i in range(20))
    assert isinstance(info.value.__cause__, corelane.errors.RemoteTraceback)
    assert "fail_on" in info.value.__cause__.text  # the worker's file and line


def test_a_failure_stops_the_calls_running_batches_and_the_pool_goes_on() -> None:
    start = time.monotonic()
    with joblib.parallel_config(backend="corelane", n_jobs=2):
        with pytest.raises(RuntimeError, match="item 0 fails"):
            joblib.Parallel(batch_size=1)(joblib.delayed(sleep_or_fail)(i) for i in range(4))
        # The 20 s batches were killed, not left to run: the next call has both workers now.
        assert joblib.Parallel()(joblib.delayed(square)(i) for i in range(10)) == [
            i * i for i in range(10)]
    assert time.monotonic() - start < 15


def test_workers_are_reused_across_calls_unless_reuse_is_off() -> None:
    with joblib.parallel_config(backend="corelane", n_jobs=2):
        first = set(joblib.Parallel()(joblib.delayed(whoami)(i) for i in range(50)))
        second = set(joblib.Parallel()(joblib.delayed(whoami)(i) for i in range(50)))
    assert first and second <= first  # the same processes, never new ones
    with joblib.parallel_config(backend="corelane", n_jobs=2, reuse=False):
        third = set(joblib.Parallel()(joblib.delayed(whoami)(i) for i in range(50)))
    assert not third & first
    assert not any(psutil.pid_exists(pid) for pid in third)  # stopped at the end of the call


def test_n_jobs_sizing() -> None:
    backend = cj.CorelaneBackend()
    assert backend.effective_n_jobs(-1) == corelane.cpu_count()
    assert backend.effective_n_jobs(3) == 3
    with pytest.raises(ValueError, match="n_jobs == 0"):
        backend.effective_n_jobs(0)
    # n_jobs=1 runs in this process, like joblib's own backends.
    with joblib.parallel_config(backend="corelane", n_jobs=1):
        assert joblib.Parallel()(joblib.delayed(whoami)(i) for i in range(2)) == [os.getpid()] * 2


def test_nested_calls_use_threads_and_inner_threads_are_capped() -> None:
    with joblib.parallel_config(backend="corelane", n_jobs=2, inner_max_num_threads=1):
        nested = joblib.Parallel()(joblib.delayed(nested_backend)(i) for i in range(2))
        limits = joblib.Parallel()(joblib.delayed(thread_limits)(i) for i in range(2))
    assert nested == ["ThreadingBackend"] * 2
    assert all(env == "1" and counts == {1} for env, counts in limits)


def test_cross_val_score_matches_the_default_backend(loky_reference: dict[str, Any]) -> None:
    with joblib.parallel_config(backend="corelane"):
        got = cross_val_score(LogisticRegression(max_iter=500), X, Y, cv=4, n_jobs=2)
    assert got.tolist() == loky_reference["cv"]


def test_grid_search_matches_the_default_backend(loky_reference: dict[str, Any]) -> None:
    grid = {"C": [0.01, 0.1, 1.0, 10.0]}
    with joblib.parallel_config(backend="corelane", n_jobs=2):
        got = GridSearchCV(LogisticRegression(max_iter=500), grid, cv=3).fit(X, Y)
    assert got.best_params_ == loky_reference["best"]
    assert got.cv_results_["mean_test_score"].tolist() == loky_reference["mean"]


def test_a_fit_that_kills_its_worker_once_completes_after_a_retry(tmp_path: Path) -> None:
    marker = tmp_path / "killed-once"
    model = KillingClassifier(str(marker), "once", os.getpid())
    with joblib.parallel_config(backend="corelane"):
        got = cross_val_score(model, X, Y, cv=4, n_jobs=2)
    assert marker.exists()  # a worker really died
    assert got.tolist() == cross_val_score(LogisticRegression(max_iter=500), X, Y, cv=4).tolist()


def test_a_fit_that_always_kills_fails_with_worker_died_and_leaves_no_process() -> None:
    model = KillingClassifier("", "always", os.getpid())
    start = time.monotonic()
    with joblib.parallel_config(backend="corelane", max_retries=2), \
            pytest.raises(corelane.WorkerDied) as info:
        cross_val_score(model, X, Y, cv=3, n_jobs=2)
    assert info.value.signal == signal.SIGKILL
    assert "SIGKILL" in str(info.value)
    assert any("ran 3 times" in note for note in info.value.__notes__)
    assert time.monotonic() - start < 30
    # The abort stopped the call's other batches; the reused pool goes with shutdown(), and
    # nothing of it outlives that (the suite's leak check looks again after the test).
    cj.shutdown()
    deadline = time.monotonic() + 5
    while _workers_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _workers_alive() == []


def test_a_retry_launched_after_an_abort_does_not_run(tmp_path: Path) -> None:
    # A batch's worker died and the pool thread decided to retry it just as joblib aborted the
    # call: the abort dropped the task, and the retry must not then run on its own.
    backend = cj.CorelaneBackend(reuse=False)
    backend.configure(n_jobs=2)
    try:
        ran = tmp_path / "ran"
        task = cj._Task(functools.partial(sleep_then_touch, str(ran), 0.5))  # not in the call
        backend._launch(task)
        assert isinstance(task.outer.exception(timeout=30), corelane.Cancelled)
        time.sleep(1.0)
        assert not ran.exists()
    finally:
        backend.terminate()


def test_max_retries_zero_fails_on_the_first_death(tmp_path: Path) -> None:
    model = KillingClassifier(str(tmp_path / "m"), "once", os.getpid())
    with joblib.parallel_config(backend="corelane", max_retries=0), \
            pytest.raises(corelane.WorkerDied):
        cross_val_score(model, X, Y, cv=3, n_jobs=2)
    with pytest.raises(ValueError, match="max_retries"):
        cj.CorelaneBackend(max_retries=-1)
