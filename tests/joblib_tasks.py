"""Module-level tasks and a test estimator for the joblib backend tests (importable by workers)."""

from __future__ import annotations

import os
import signal
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression


def square(x: int) -> int:
    return x * x


def fail_on(x: int, bad: int) -> int:
    if x == bad:
        raise ValueError(f"bad input {x}")
    return x


def whoami(_: int) -> int:
    return os.getpid()


def nested_backend(_: int) -> str:
    """The backend a Parallel call inside a task gets."""
    from joblib.parallel import get_active_backend

    return type(get_active_backend()[0]).__name__


def thread_limits(_: int) -> tuple[str | None, set[int]]:
    """OMP_NUM_THREADS and the thread counts of the BLAS/OpenMP libraries loaded here."""
    from threadpoolctl import threadpool_info

    np.dot(np.ones((4, 4)), np.ones((4, 4)))  # make sure a BLAS is loaded
    return os.environ.get("OMP_NUM_THREADS"), {i["num_threads"] for i in threadpool_info()}


class KillingClassifier(ClassifierMixin, BaseEstimator):
    """A logistic regression whose fit SIGKILLs its own worker process.

    ``mode="once"``: the first fit to create ``marker`` kills its process, every other fit (the
    retry included) runs normally. ``mode="always"``: every fit outside ``parent_pid`` kills.
    The parent process itself is never killed (a sequential fallback would run fits there).
    """

    def __init__(self, marker: str = "", mode: str = "once", parent_pid: int = 0,
                 C: float = 1.0) -> None:
        self.marker = marker
        self.mode = mode
        self.parent_pid = parent_pid
        self.C = C

    def fit(self, X: Any, y: Any) -> KillingClassifier:
        if os.getpid() != self.parent_pid and self._should_die():
            os.kill(os.getpid(), signal.SIGKILL)
        self.model_ = LogisticRegression(C=self.C, max_iter=500).fit(X, y)
        self.classes_ = self.model_.classes_
        return self

    def _should_die(self) -> bool:
        if self.mode == "always":
            return True
        try:
            os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return False
        return True

    def predict(self, X: Any) -> Any:
        return self.model_.predict(X)


def sleep_or_fail(x: int) -> int:
    """Item 0 fails after 0.3 s (once the others are running); the others run for 20 s."""
    import time

    if x == 0:
        time.sleep(0.3)
        raise RuntimeError("item 0 fails")
    time.sleep(20)
    return x


def sleep_then_touch(path: str, seconds: float) -> None:
    """Leave a file after ``seconds``: proof that a batch ran to its end."""
    import time

    time.sleep(seconds)
    open(path, "w").close()
