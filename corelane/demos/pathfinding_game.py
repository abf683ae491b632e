"""The pathfinding demo: a Pygame frame loop whose A* runs inline or in corelane workers.

Hundreds of agents walk to a few coloured goals on a large map. Click to move the nearest goal
there: its agents re-plan. ``M`` (or Tab) toggles planning on the frame loop (inline: the game
freezes while it plans) against planning through :class:`corelane.Offloader` (the frame rate
holds; agents wait a moment for their paths). ``R`` scatters every goal, ``Esc`` quits. The HUD
shows FPS, frame time, pending requests and results per second.

Headless (``SDL_VIDEODRIVER=dummy``) the same loop runs a scripted scene (a goal moves every
``move_every`` frames) and reports frame-time percentiles; see :func:`run_scene`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from corelane.demos._scene import (
    Planner,
    Scene,
    SceneConfig,
    make_planner,
    step_planning,
)

if TYPE_CHECKING:
    import pygame

HUD_HEIGHT = 44
WINDOW_TARGET = 768  # pixels the map is scaled towards
GOAL_COLOURS = [(230, 57, 70), (42, 157, 143), (233, 196, 106), (69, 123, 157), (244, 162, 97),
                (155, 93, 229), (0, 187, 249), (241, 91, 181)]
BG, WALL, TEXT = (28, 30, 36), (66, 70, 84), (235, 235, 235)


@dataclass
class RunResult:
    """What one run measured."""

    mode: str
    frame_ms: list[float]
    solved: int
    unreachable: int
    failures: int
    requests: int
    latency_s: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def percentiles(self) -> tuple[float, float, float]:
        """Frame time p50, p95, p99 in milliseconds."""
        p = np.percentile(np.asarray(self.frame_ms or [0.0]), [50, 95, 99])
        return float(p[0]), float(p[1]), float(p[2])


SETTLE_PAUSE_S = 0.002  # pause between settle frames (a 500 FPS cap)


class Game:
    """The window, the loop and the HUD around a :class:`Scene` and a planner."""

    def __init__(self, scene: Scene, mode: str = "offload", workers: int | None = None,
                 fps: int = 60) -> None:
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        import pygame

        self.pg = pygame
        self.scene = scene
        self.fps = fps
        self.workers = workers
        size = scene.config.size
        self.cell = max(1, WINDOW_TARGET // size)
        self.map_px = size * self.cell
        pygame.display.init()
        pygame.font.init()
        pygame.display.set_caption("corelane: pathfinding demo")
        self.screen = pygame.display.set_mode((self.map_px, self.map_px + HUD_HEIGHT))
        self.font = pygame.font.Font(None, 20)
        self.background = self._draw_map()
        self.clock = pygame.time.Clock()
        self.planners: dict[str, Planner] = {}
        self.planner = self._planner(mode)
        self.frame_ms: list[float] = []
        self.recent_ms: list[float] = []
        self.moves = 0  # scripted goal moves so far

    # ------------------------------------------------------------------ setup

    def _draw_map(self) -> pygame.Surface:
        pg = self.pg
        rgb = np.empty((*self.scene.grid.shape, 3), dtype=np.uint8)
        rgb[:] = BG
        rgb[self.scene.grid != 0] = WALL
        surf = pg.surfarray.make_surface(rgb.transpose(1, 0, 2))  # surfarray is (x, y)
        return pg.transform.scale(surf, (self.map_px, self.map_px)).convert()

    def _planner(self, mode: str) -> Planner:
        if mode not in self.planners:
            self.planners[mode] = make_planner(mode, self.scene.prepared, self.workers)
        return self.planners[mode]

    def toggle_mode(self) -> None:
        """Switch inline <-> offload; agents waiting on the old planner ask the new one."""
        old = self.planner
        self.planner = self._planner("inline" if old.mode == "offload" else "offload")
        for agent, asked in enumerate(self.scene.asked):
            if asked is not None:
                old.forget(agent)
                self.scene.needs_plan.add(agent)

    # ------------------------------------------------------------------ the loop

    def frame(self, script_move: bool = False) -> bool:
        """Run one frame; False when the player asked to quit."""
        pg, scene = self.pg, self.scene
        t0 = time.perf_counter()
        for event in pg.event.get():
            if event.type == pg.QUIT or (event.type == pg.KEYDOWN and event.key in (pg.K_ESCAPE, pg.K_q)):
                return False
            if event.type == pg.KEYDOWN and event.key in (pg.K_m, pg.K_TAB):
                self.toggle_mode()
            elif event.type == pg.KEYDOWN and event.key == pg.K_r:
                for g in range(len(scene.goals)):
                    scene.move_goal(g, scene.random_goal_cell())
            elif event.type == pg.MOUSEBUTTONDOWN and event.pos[1] < self.map_px:
                cell = (event.pos[1] // self.cell) * scene.config.size + event.pos[0] // self.cell
                scene.move_goal(scene.nearest_goal(cell), cell)
        if script_move:
            scene.move_goal(self.moves % len(scene.goals), scene.random_goal_cell())
            self.moves += 1
        step_planning(scene, self.planner, t0)
        scene.advance()
        self._draw(t0)
        pg.display.flip()
        ms = (time.perf_counter() - t0) * 1000.0
        self.frame_ms.append(ms)
        self.recent_ms = (self.recent_ms + [ms])[-30:]
        if self.fps:
            self.clock.tick(self.fps)
        else:
            self.clock.tick()
        return True

    def _draw(self, now: float) -> None:
        pg, scene, cell = self.pg, self.scene, self.cell
        screen = self.screen
        screen.blit(self.background, (0, 0))
        size = scene.config.size
        dot, off = cell + 2, 1  # a little larger than a cell, so agents stand out from rocks
        for agent, p in enumerate(scene.pos):
            colour = GOAL_COLOURS[scene.goal_of[agent] % len(GOAL_COLOURS)]
            if scene.asked[agent] is not None:
                colour = TEXT  # waiting for its path
            screen.fill(colour, (p % size * cell - off, p // size * cell - off, dot, dot))
        for g, p in enumerate(scene.goals):
            centre = (p % size * cell + cell // 2, p // size * cell + cell // 2)
            pg.draw.circle(screen, GOAL_COLOURS[g % len(GOAL_COLOURS)], centre, 3 * cell + 3)
            pg.draw.circle(screen, TEXT, centre, 3 * cell + 3, 2)
        self._draw_hud(now)

    def _draw_hud(self, now: float) -> None:
        counters = self.scene.counters
        recent = counters.results_at
        while recent and recent[0] < now - 1.0:
            recent.pop(0)
        ms = self.recent_ms
        lines = [
            f"mode {self.planner.mode.upper()} (M toggles)   FPS {self.clock.get_fps():5.1f}   "
            f"frame {np.mean(ms) if ms else 0:5.1f} ms (max {max(ms) if ms else 0:5.1f})",
            f"pending {self.planner.pending:4d}   results/s {len(recent):4d}   "
            f"solved {counters.solved}   no path {counters.unreachable}   failed {counters.failures}"
            "   click: move goal, R: scatter",
        ]
        y = self.map_px + 4
        self.screen.fill(BG, (0, self.map_px, self.map_px, HUD_HEIGHT))
        for line in lines:
            self.screen.blit(self.font.render(line, True, TEXT), (6, y))
            y += 19

    def settle(self, timeout: float) -> bool:
        """Keep running frames (unrecorded) until no agent waits for a path; True if it got there."""
        deadline = time.monotonic() + timeout
        recorded = list(self.frame_ms)
        try:
            while self.scene.waiting and time.monotonic() < deadline:
                self.frame()
                # Yield the GIL between frames: a loop that never blocks starves the pool's
                # manager thread (CPython's convoy effect), and answers then crawl in.
                time.sleep(SETTLE_PAUSE_S)
        finally:
            self.frame_ms = recorded
        return not self.scene.waiting

    def screenshot(self, path: str) -> None:
        """Save what the window shows now."""
        self.pg.image.save(self.screen, path)

    def close(self) -> None:
        """Stop the planners' workers and the display."""
        for planner in self.planners.values():
            planner.close()
        self.planners.clear()
        self.pg.display.quit()


def run_scene(config: SceneConfig, mode: str, *, frames: int, workers: int | None = None,
              fps: int = 60, move_every: int = 30, headless: bool = True,
              settle_s: float = 0.0, screenshot: str | None = None) -> RunResult:
    """Run the scripted scene for ``frames`` frames in one mode and measure it.

    Args:
        config: the scene (the same config and seed give the same map, agents and goal moves).
        mode: "inline" or "offload".
        frames: frames to record.
        workers: planning processes for "offload".
        fps: frame cap (0 = as fast as possible); frame time excludes the wait for the cap.
        move_every: move one goal every this many frames (0 = never).
        headless: use SDL's dummy video driver (no window).
        settle_s: afterwards, run up to this many unrecorded frames until every agent has its
            answer, then check every agent's path (``problems``).
        screenshot: save the last frame to this file.
    """
    if headless:
        os.environ["SDL_VIDEODRIVER"] = "dummy"
    scene = Scene(config)
    game = Game(scene, mode, workers, fps)
    try:
        for i in range(frames):
            script = move_every > 0 and i > 0 and i % move_every == 0
            if not game.frame(script_move=script):
                break
        problems: list[str] = []
        if settle_s > 0:
            game.settle(settle_s)
            problems = scene.problems()
        if screenshot:
            game.screenshot(screenshot)
        c = scene.counters
        return RunResult(mode, game.frame_ms, c.solved, c.unreachable, c.failures, c.requests,
                         c.latency_s, problems)
    finally:
        game.close()


def play(config: SceneConfig, mode: str = "offload", workers: int | None = None, fps: int = 60,
         move_every: int = 120, frames: int | None = None) -> RunResult:
    """Open the window and play until the player quits (or ``frames`` have run)."""
    scene = Scene(config)
    game = Game(scene, mode, workers, fps)
    try:
        i = 0
        while frames is None or i < frames:
            script = move_every > 0 and i > 0 and i % move_every == 0
            if not game.frame(script_move=script):
                break
            i += 1
            if i == 10:
                print(f"window shown {game.map_px}x{game.map_px + HUD_HEIGHT}", flush=True)
        c = scene.counters
        return RunResult(game.planner.mode, game.frame_ms, c.solved, c.unreachable, c.failures,
                         c.requests, c.latency_s)
    finally:
        game.close()
