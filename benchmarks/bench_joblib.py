"""joblib on its default backend (loky) vs ``backend="corelane"``: W1, W3 and a scikit-learn CV.

The same ``joblib.Parallel`` / ``cross_val_score`` calls, only the backend differs. Rounds are
interleaved (loky, corelane, loky, corelane, ...) so that a busy moment of a shared
machine hits every row alike; each row is the median of its rounds, and the ratios come from
the same run. One untimed warm-up call per row first: both backends keep their workers for the
next call, so the rows compare steady state, not process start-up.

    python benchmarks/bench_joblib.py [--quick] [--rounds N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import joblib  # noqa: E402

import corelane  # noqa: E402
import corelane.integrations.joblib as corelane_joblib  # noqa: E402
from benchmarks._report import machine, table, write_section  # noqa: E402
from benchmarks.bench_engine import heavy_tailed, is_prime, w3_costs  # noqa: E402

WORKERS = corelane.cpu_count()

# name -> parallel_config options; the first row is the baseline of the ratios.
BACKENDS: dict[str, dict[str, Any]] = {
    "joblib default (loky)": {"backend": "loky"},
    'backend="corelane"': {"backend": "corelane"},
}


def _parallel(fn: Callable[[Any], Any], items: list[Any]) -> Callable[[], Any]:
    return lambda: joblib.Parallel()(joblib.delayed(fn)(x) for x in items)


def _cross_validation(quick: bool) -> Callable[[], Any]:
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import cross_val_score

    X, y = make_classification(n_samples=1500 if quick else 3000, n_features=30, random_state=0)
    model = RandomForestClassifier(n_estimators=30, random_state=0)
    return lambda: cross_val_score(model, X, y, cv=8, n_jobs=WORKERS)


def interleaved(call: Callable[[], Any], rounds: int) -> dict[str, float]:
    """Median seconds of ``call()`` under each backend, rounds interleaved, after one warm-up."""
    times: dict[str, list[float]] = {name: [] for name in BACKENDS}
    for round_ in range(rounds + 1):
        for name, options in BACKENDS.items():
            with joblib.parallel_config(n_jobs=WORKERS, **options):
                t0 = time.perf_counter()
                call()
                if round_:  # round 0 warms both backends' reusable workers up
                    times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(values) for name, values in times.items()}


def rows(medians: dict[str, float]) -> list[list[str]]:
    base = next(iter(medians.values()))
    return [[name, f"{s:.3f}", f"{base / s:.2f}"] for name, s in medians.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller inputs")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per row (default 5)")
    args = parser.parse_args()
    count = 20_000 if args.quick else 100_000
    workloads = [
        (f"W1 — prime test of {count:,} numbers from 10,000,000",
         _parallel(is_prime, list(range(10_000_000, 10_000_000 + count)))),
        ("W3 — 2,000 tasks with heavy-tailed cost, the expensive eighth last",
         _parallel(heavy_tailed, w3_costs())),
        ("scikit-learn — cross_val_score(RandomForestClassifier(30 trees), cv=8, n_jobs)",
         _cross_validation(args.quick)),
    ]
    parts = [
        "## joblib backends: loky vs corelane\n\n"
        f"Machine: {machine()}; n_jobs={WORKERS}; medians of {args.rounds} interleaved rounds "
        f"after one warm-up, in one session, {time.strftime('%Y-%m-%d')}. `ratio` is loky's time "
        "over the row's: above 1 means faster than loky. Both start their workers without fork "
        "(loky: its own spawn-like method; corelane's backend: forkserver, as a forked child of "
        "a process that used OpenMP can hang).\n"
    ]
    try:
        for title, call in workloads:
            print(f"running {title} ...", flush=True)
            text = f"### {title}\n\n" + table(["backend", "median s", "ratio"],
                                               rows(interleaved(call, args.rounds)))
            parts.append(text)
            print(text, flush=True)
    finally:
        corelane_joblib.shutdown()
    write_section("joblib", "\n\n".join(parts))


if __name__ == "__main__":
    main()
