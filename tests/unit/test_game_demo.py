"""The pathfinding demo: headless runs give every agent with a reachable goal a valid path,
input moves goals and toggles modes, the CLI reports both modes, and the window really draws
(a screenshot under Xvfb, kept in test-artifacts/)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

os.environ["SDL_VIDEODRIVER"] = "dummy"
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

from corelane.demos._scene import Scene, SceneConfig  # noqa: E402
from corelane.demos.pathfinding_game import GOAL_COLOURS, Game, run_scene  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
SMALL = SceneConfig(size=48, agents=60, goals=3, seed=7)


@pytest.mark.parametrize("mode", ["inline", "offload"])
def test_headless_run_gives_every_reachable_agent_a_valid_path(mode: str) -> None:
    result = run_scene(SMALL, mode, frames=40, workers=1, fps=0, move_every=10, settle_s=20.0)
    assert len(result.frame_ms) == 40
    assert result.problems == []
    assert result.failures == 0
    # the first plans, then the agents of each moved goal (frames 10, 20, 30) asked again
    assert result.requests == SMALL.agents + 3 * SMALL.agents // SMALL.goals
    # every agent got at least its latest answer (older ones may have been superseded)
    assert SMALL.agents <= result.solved + result.unreachable <= result.requests
    assert result.solved >= SMALL.agents // 2


def test_click_moves_the_nearest_goal_and_toggle_switches_planner() -> None:
    import pygame

    scene = Scene(SMALL)
    game = Game(scene, "offload", workers=1, fps=0)
    try:
        game.frame()
        assert game.settle(20.0)
        target = int(scene.main_cells[len(scene.main_cells) // 2])
        goal = scene.nearest_goal(target)
        row, col = divmod(target, SMALL.size)
        pygame.event.post(pygame.event.Event(
            pygame.MOUSEBUTTONDOWN, pos=(col * game.cell + 1, row * game.cell + 1), button=1))
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_m))
        game.frame()
        assert scene.goals[goal] == target
        assert game.planner.mode == "inline"
        assert game.settle(20.0)
        assert scene.problems() == []
        for agent in range(SMALL.agents):
            path = scene.path[agent]
            if scene.goal_of[agent] == goal and scene.reachable(agent):
                assert path is not None and path[-1] == target
    finally:
        game.close()


def test_cli_headless_reports_both_modes_and_checks_paths() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "corelane", "demo", "pathfinding", "--headless", "--frames", "30",
         "--agents", "40", "--grid", "40", "--workers", "1", "--fps", "0", "--check"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[0]: line.split() for line in proc.stdout.splitlines()
            if line.startswith(("inline ", "offload "))}
    assert set(rows) == {"inline", "offload"}
    for row in rows.values():
        p50, p95, p99 = (float(x) for x in row[1:4])
        assert 0 < p50 <= p95 <= p99
        assert int(row[5]) > 0  # paths solved
    assert proc.stdout.count("check passed") == 2


def _start_xvfb() -> tuple[subprocess.Popen[bytes], str]:
    """Xvfb on a display it picks itself (-displayfd), so parallel runs never collide."""
    read_fd, write_fd = os.pipe()
    xvfb = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1024x900x24", "-nolisten", "tcp"],
        pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    with os.fdopen(read_fd) as fh:
        number = fh.readline().strip()  # written once the server accepts clients
    if not number:
        xvfb.kill()
        xvfb.wait(5)
        pytest.fail("Xvfb did not start")
    return xvfb, f":{number}"


def test_window_screenshot_under_xvfb() -> None:
    if shutil.which("Xvfb") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("Xvfb is required under CI (apt-get install -y xvfb)")
        pytest.skip("Xvfb not installed")
    from PIL import ImageGrab

    xvfb, display = _start_xvfb()
    demo = None
    try:
        env = {k: v for k, v in os.environ.items() if k != "SDL_VIDEODRIVER"}
        env["DISPLAY"] = display
        demo = subprocess.Popen(
            [sys.executable, "-m", "corelane", "demo", "pathfinding", "--frames", "75",
             "--grid", "128", "--agents", "120", "--workers", "1", "--move-every", "20"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
        )
        assert demo.stdout is not None
        deadline = time.monotonic() + 30
        line = ""
        while "window shown" not in line and time.monotonic() < deadline:
            line = demo.stdout.readline()
            if not line and demo.poll() is not None:
                break
        assert "window shown" in line, demo.stderr.read() if demo.stderr else ""
        image = ImageGrab.grab(xdisplay=display)
        ARTIFACTS.mkdir(exist_ok=True)
        image.save(ARTIFACTS / "pathfinding_window.png")
        out, err = demo.communicate(timeout=30)
        assert demo.returncode == 0, err
        assert "frames, last mode offload" in out
    finally:
        if demo is not None and demo.poll() is None:
            demo.kill()
            demo.wait(5)
        xvfb.terminate()
        xvfb.wait(5)
    pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
    colours = {tuple(int(v) for v in p) for p in np.unique(pixels, axis=0)}
    assert len(colours) > 10, "the screenshot is (nearly) blank"
    assert (pixels.std(axis=0) > 10).all()
    for goal_colour in GOAL_COLOURS[:5]:  # every goal marker is on screen
        assert goal_colour in colours
