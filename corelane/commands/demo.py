"""``corelane demo pathfinding``: the Pygame pathfinding demo, in a window or headless.

    corelane demo pathfinding                      # a window: click, M toggles inline/offload
    corelane demo pathfinding --headless --frames 600 --agents 300 --grid 256 --mode both

Headless runs use SDL's dummy video driver, run the same scripted scene in each mode and print
frame-time p50/p95/p99 and the paths solved. ``--check`` then waits for every answer and exits 1
if an agent with a reachable goal lacks a valid path to it.
"""

from __future__ import annotations

import argparse
import os
import sys

DEMOS = ("pathfinding",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``corelane demo``."""
    parser.add_argument("name", choices=DEMOS, help="which demo")
    parser.add_argument("--headless", action="store_true",
                        help="no window (SDL dummy driver); print frame-time percentiles")
    parser.add_argument("--frames", type=int, default=None,
                        help="frames to run (headless default 600; windowed: until closed)")
    parser.add_argument("--agents", type=int, default=300, help="agents (default 300)")
    parser.add_argument("--grid", type=int, default=256, help="map side in cells (default 256)")
    parser.add_argument("--goals", type=int, default=5, help="shared goals (default 5)")
    parser.add_argument("--workers", type=int, default=None,
                        help="planning processes (default: CPUs minus one)")
    parser.add_argument("--mode", choices=["inline", "offload", "both"], default=None,
                        help="where A* runs (headless default: both; windowed: offload)")
    parser.add_argument("--fps", type=int, default=60, help="frame cap, 0 = uncapped (default 60)")
    parser.add_argument("--move-every", type=int, default=None, metavar="N",
                        help="move a goal every N frames (headless default 30, windowed 120)")
    parser.add_argument("--seed", type=int, default=0, help="map and script seed")
    parser.add_argument("--check", action="store_true",
                        help="after the run, wait for every path and verify them all")
    parser.add_argument("--screenshot", metavar="PNG", help="headless: save the last frame")


def run(args: argparse.Namespace) -> int:
    """Run the demo; 0 on success, 1 when ``--check`` found a wrong or missing path."""
    from corelane.demos._scene import SceneConfig
    from corelane.demos.pathfinding_game import play, run_scene

    if args.agents < 1 or args.grid < 8 or args.goals < 1:
        print("need --agents >= 1, --grid >= 8, --goals >= 1", file=sys.stderr)
        return 2
    config = SceneConfig(size=args.grid, agents=args.agents, goals=args.goals, seed=args.seed)
    if not args.headless:
        mode = "offload" if args.mode in (None, "both") else args.mode
        move_every = 120 if args.move_every is None else args.move_every
        result = play(config, mode, args.workers, args.fps, move_every, args.frames)
        p50, p95, p99 = result.percentiles()
        print(f"{len(result.frame_ms)} frames, last mode {result.mode}: frame time p50 {p50:.1f} "
              f"ms, p95 {p95:.1f} ms, p99 {p99:.1f} ms; {result.solved} paths solved")
        return 0

    os.environ["SDL_VIDEODRIVER"] = "dummy"
    modes = ["inline", "offload"] if args.mode in (None, "both") else [args.mode]
    frames = 600 if args.frames is None else args.frames
    move_every = 30 if args.move_every is None else args.move_every
    print(f"pathfinding: {args.agents} agents, {args.grid}x{args.grid} grid, {frames} frames "
          f"at {args.fps or 'uncapped'} fps, a goal moves every {move_every} frames")
    print(f"{'mode':8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8} "
          f"{'solved':>7} {'no path':>8} {'failed':>7}")
    status = 0
    for mode in modes:
        result = run_scene(
            config, mode, frames=frames, workers=args.workers, fps=args.fps,
            move_every=move_every, settle_s=30.0 if args.check else 0.0,
            screenshot=args.screenshot if mode == modes[-1] else None,
        )
        p50, p95, p99 = result.percentiles()
        worst = max(result.frame_ms, default=0.0)
        print(f"{mode:8} {p50:8.1f} {p95:8.1f} {p99:8.1f} {worst:8.1f} "
              f"{result.solved:7d} {result.unreachable:8d} {result.failures:7d}", flush=True)
        if args.check:
            if result.problems:
                status = 1
                print(f"{mode}: {len(result.problems)} agents wrong, e.g. "
                      + "; ".join(result.problems[:5]), file=sys.stderr)
            else:
                print(f"{mode}: check passed: every agent with a reachable goal has a valid path")
    return status
