"""Shared helpers for the benchmarks: timing, the ceiling row, and writing docs/benchmarks.md.

Each benchmark script owns one section of ``docs/benchmarks.md``, fenced by
``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->``; running it replaces that section only.
"""

from __future__ import annotations

import os
import platform
import re
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
OUT = ROOT / "benchmarks" / "out"


def machine() -> str:
    """One line naming the machine, for the heading of each table."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, {platform.system()}"


def median_time(fn: Callable[[], object], repeat: int = 3) -> float:
    """Median wall time of ``fn()`` over ``repeat`` runs, in seconds."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def interleaved_samples(fns: dict[str, Callable[[], object]], rounds: int = 5) -> dict[str, list[float]]:
    """Wall time of each ``fn()`` in each of ``rounds`` rounds, the rows taking turns in each
    round (so a noisy minute on a shared machine hits every row, not one); every other round
    runs them in reverse order, so no row always follows the same neighbour."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for k in range(rounds):
        order = list(fns.items())
        for name, fn in order if k % 2 == 0 else reversed(order):
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def interleaved(fns: dict[str, Callable[[], object]], rounds: int = 5) -> dict[str, float]:
    """Median wall time of each ``fn()`` over ``rounds`` interleaved rounds."""
    return {name: statistics.median(ts) for name, ts in interleaved_samples(fns, rounds).items()}


def paired_ratio(base: list[float], other: list[float]) -> str:
    """``base / other`` round by round (both ran in the same round, so a noisy minute cancels
    out): the median and the range, as text."""
    ratios = sorted(b / o for b, o in zip(base, other, strict=True))
    return (f"{statistics.median(ratios):.3f}x (range {ratios[0]:.3f}-{ratios[-1]:.3f}, "
            f"{sum(r >= 1 for r in ratios)} of {len(ratios)} rounds >= 1)")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(lines)


def write_section(name: str, markdown: str) -> None:
    """Replace (or append) the section ``name`` of docs/benchmarks.md."""
    DOC.parent.mkdir(parents=True, exist_ok=True)
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n\nWritten by `make bench`.\n"
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{start}\n{markdown.rstrip()}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _m: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    DOC.write_text(text)
