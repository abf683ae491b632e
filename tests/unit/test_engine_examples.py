"""The tutorial's engine examples run and print what they promise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_example(name: str, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / name), *args],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_primes_both_ways_agree() -> None:
    out = run_example("primes.py", "10000000", "3000")
    counts = {line.split(":")[0]: line.split("found ")[1].split()[0] for line in out.splitlines()}
    # primes between 10,000,000 and 10,003,000, counted by a plain loop here
    expected = sum(
        1 for n in range(10_000_000, 10_003_000)
        if n % 2 and all(n % d for d in range(3, int(n**0.5) + 1, 2))
    )
    assert counts == {"multiprocessing.Pool": str(expected), "corelane.map": str(expected)}


def test_safe_errors_both_ways() -> None:
    out = run_example("safe_errors.py")
    assert out.count("Result: 81") == 2  # 9 * 9, both ways
    assert "Worker error: bad input!" in out
    assert "Worker error on item 5: ValueError('bad input!')" in out
    assert "TaskError for item 5: caused by ValueError('bad input!')" in out
    assert 'safe_errors.py", line' in out  # the worker's file and line are visible
