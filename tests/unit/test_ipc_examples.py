"""The tutorial's IPC examples, corrected, run as scripts and print what they promise."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_example(name: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / name)],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    assert "resource_tracker" not in proc.stderr and "leaked" not in proc.stderr, proc.stderr
    return proc.stdout


def test_producer_consumer() -> None:
    out = run_example("producer_consumer.py")
    assert out.count("consumer received DONE") == 3  # every consumer stopped: none left hanging
    assert "by hand: 20 results, correct=True" in out
    assert "pipeline: 20 results, in order=True" in out
    assert "two stages: 20 results, correct=True" in out


def test_shared_counter_both_ways_exact() -> None:
    out = run_example("shared_counter.py")
    assert "Manager: counter should be 2000; actual 2000; exact=True" in out
    assert "SharedCounter: counter should be 1000000; actual 1000000; exact=True" in out
    rates = [float(r.replace(",", "")) for r in re.findall(r"([\d,]+) increments/s", out)]
    assert len(rates) == 2 and all(r > 0 for r in rates)


def test_shared_numpy_both_ways() -> None:
    out = run_example("shared_numpy.py")
    assert out.count("First 5 elements: [0. 2. 4. 6. 8.]") == 2  # doubled in place, both ways
    assert "Last element: 19999998.0" in out
    size = int(re.search(r"each half travels as (\d+) bytes", out).group(1))  # type: ignore[union-attr]
    assert size < 500
