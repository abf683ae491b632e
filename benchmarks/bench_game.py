"""Game benchmark: frame times of the pathfinding demo with A* inline vs offloaded to workers.

The same scripted scene in both modes: 300 agents on a 256x256 map, frames capped at 60 FPS,
headless (SDL dummy driver, so the drawing still happens, into memory). All agents plan at the
start; then a goal moves every ``move_every`` frames and its agents re-plan. Frame time is the
work of one frame (input, planning or polling, moving, drawing), without the wait for the cap.
The target: offloaded p99 < 16.7 ms, a frame every 60th of a second.

    python benchmarks/bench_game.py [--quick] [--frames 600] [--workers W]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ["SDL_VIDEODRIVER"] = "dummy"
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

from benchmarks._report import machine, table, write_section  # noqa: E402
from corelane.demos._scene import SceneConfig  # noqa: E402
from corelane.demos.pathfinding_game import RunResult, run_scene  # noqa: E402
from corelane.integrations.pygame import _default_workers  # noqa: E402

TARGET_MS = 1000 / 60


def row(label: str, r: RunResult, seconds: float) -> list[object]:
    p50, p95, p99 = r.percentiles()
    frames = np.asarray(r.frame_ms)
    missed = int((frames > TARGET_MS).sum())
    lat = np.asarray(r.latency_s or [0.0]) * 1000
    return [
        label, f"{p50:.1f}", f"{p95:.1f}", f"{p99:.1f}", f"{frames.max():.0f}",
        f"{missed} ({100 * missed / len(frames):.1f}%)",
        r.solved, f"{r.solved / seconds:.0f}",
        f"{np.percentile(lat, 50):.0f} / {np.percentile(lat, 95):.0f}",
        "yes" if p99 < TARGET_MS else "no",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="120 frames, 100 agents")
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    frames = 120 if args.quick else args.frames
    agents = 100 if args.quick else 300
    workers = args.workers or _default_workers()
    config = SceneConfig(size=256, agents=agents, goals=5, seed=0)
    scenarios = [(30, "a goal moves every 0.5 s (60 agents re-plan)"),
                 (6, "a goal moves every 0.1 s (every agent re-plans twice a second)")]
    rows = []
    for move_every, what in scenarios:
        for mode in ("inline", "offload"):
            print(f"running {mode}, move every {move_every} frames ...", flush=True)
            t0 = time.perf_counter()
            result = run_scene(config, mode, frames=frames, workers=workers, fps=60,
                               move_every=move_every)
            seconds = time.perf_counter() - t0
            label = f"{'**offloaded**' if mode == 'offload' else 'inline'}, {what}"
            rows.append(row(label, result, seconds))
            print("  ", rows[-1], flush=True)
    headers = ["mode, scene", "p50 ms", "p95 ms", "p99 ms", "max ms", "frames > 16.7 ms",
               "paths solved", "paths/s (wall)", "answer wait p50 / p95 ms", "p99 < 16.7 ms"]
    text = (
        f"## Game loop: pathfinding demo, A* inline vs offloaded\n\n"
        f"Machine: {machine()}; {workers} planning worker(s) (CPUs minus one, niceness +10); "
        f"{agents} agents on a 256x256 map, {frames} frames capped at 60 FPS, headless; "
        f"{time.strftime('%Y-%m-%d')}. `python benchmarks/bench_game.py`; the same scene "
        f"runs in a window with `corelane demo pathfinding`.\n\n"
        + table(headers, rows)
        + "\n\nFrame time is one frame's work without the wait for the 60 FPS cap. Inline, a "
        "frame that plans blocks for every path it needs; offloaded, it only submits requests "
        "and applies the answers that are ready, and agents stand still until theirs arrives "
        "(*answer wait*: request to path applied). With latest-wins, a request superseded by a "
        "newer one for the same agent is dropped, so the heavier scene solves fewer, fresher "
        "paths rather than falling behind.\n"
    )
    write_section("game", text)
    print(text)


if __name__ == "__main__":
    main()
