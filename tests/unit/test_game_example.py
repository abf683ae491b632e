"""examples/pygame_offload.py runs headless both ways and stops its workers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_pygame_offload_example_runs_both_ways() -> None:
    env = dict(os.environ, SDL_VIDEODRIVER="dummy")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "pygame_offload.py"), "--frames", "90"],
        capture_output=True, text=True, timeout=60, cwd=ROOT, env=env,
    )
    assert proc.returncode == 0, proc.stderr
    lines = {line.split(":")[0]: line for line in proc.stdout.splitlines() if ":" in line}
    assert set(lines) >= {"queues", "offloader"}
    for name in ("queues", "offloader"):
        line = lines[name]
        received = int(line.split(", ")[1].split()[0])
        assert received >= 8, line  # every unit got at least its first path
        assert line.endswith("workers stopped: True"), line
    assert "0 failures" in lines["offloader"]
