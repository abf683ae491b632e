"""The pathfinding scene without pygame: the map, the agents, their goals, and two planners.

The game (``pathfinding_game``) draws this and feeds it input; tests and the benchmark drive it
directly. An agent that needs a path stands still until its path arrives, so every path starts
where the agent stands and stays valid while it walks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol, cast

import numpy as np

from corelane.demos.pathfinding import (
    Path,
    PreparedGrid,
    astar,
    components,
    install_grid,
    make_grid,
    path_is_valid,
    plan,
)
from corelane.engine import Failure
from corelane.integrations.pygame import Offloader

WORKER_NICE = 10  # planning workers yield the CPU to the frame loop on a busy machine
MAX_RETRIES = 3  # a request that fails (worker died …) is asked again this many times


@dataclass
class SceneConfig:
    """What the scene looks like; the same config and seed give the same scene."""

    size: int = 256
    agents: int = 300
    goals: int = 5
    seed: int = 0


@dataclass
class Counters:
    """What happened in a run, for the HUD and the report."""

    requests: int = 0
    solved: int = 0  # paths received
    unreachable: int = 0  # answers "no path"
    failures: int = 0  # Failures from the workers
    results_at: list[float] = field(default_factory=list)  # perf_counter of recent results
    latency_s: list[float] = field(default_factory=list)  # request -> answer applied, per answer


class Scene:
    """Agents on a grid walking to one of a few shared goals, re-planning when a goal moves."""

    def __init__(self, config: SceneConfig) -> None:
        self.config = config
        self.grid = make_grid(config.size, seed=config.seed)
        self.prepared = PreparedGrid.from_array(self.grid)
        self.labels = components(self.prepared).ravel()
        self.rng = np.random.default_rng(config.seed + 1)
        free_labels = self.labels[self.labels >= 0]
        self.main_label = int(np.bincount(free_labels).argmax())
        self.main_cells = np.flatnonzero(self.labels == self.main_label)
        free = np.flatnonzero(self.labels >= 0)
        self.goals: list[int] = [int(c) for c in self.rng.choice(self.main_cells, config.goals)]
        self.pos: list[int] = [int(c) for c in self.rng.choice(free, config.agents)]
        self.goal_of: list[int] = [i % config.goals for i in range(config.agents)]
        self.path: list[Path | None] = [None] * config.agents
        self.step: list[int] = [0] * config.agents
        self.asked: list[tuple[int, int] | None] = [None] * config.agents  # (start, goal) in flight
        self.asked_at: list[float] = [0.0] * config.agents
        self.retries: list[int] = [0] * config.agents
        self.needs_plan: set[int] = set(range(config.agents))
        self.counters = Counters()

    # ------------------------------------------------------------------ world changes

    def goal_cell(self, agent: int) -> int:
        return self.goals[self.goal_of[agent]]

    def reachable(self, agent: int) -> bool:
        """Whether the agent's goal lies in the same connected region as the agent."""
        return bool(self.labels[self.pos[agent]] == self.labels[self.goal_cell(agent)])

    def move_goal(self, goal: int, cell: int) -> bool:
        """Move goal number ``goal`` to ``cell`` (if free); its agents re-plan. True if moved."""
        if not self.prepared.free(cell) or cell == self.goals[goal]:
            return False
        self.goals[goal] = cell
        self.needs_plan.update(a for a, g in enumerate(self.goal_of) if g == goal)
        return True

    def random_goal_cell(self) -> int:
        return int(self.rng.choice(self.main_cells))

    def nearest_goal(self, cell: int) -> int:
        r, c = divmod(cell, self.config.size)
        dists = [abs(r - g // self.config.size) + abs(c - g % self.config.size) for g in self.goals]
        return int(np.argmin(dists))

    # ------------------------------------------------------------------ planning

    def take_requests(self, now: float) -> list[tuple[int, int, int]]:
        """The (agent, start, goal) requests to send now; those agents wait for their path."""
        out = []
        for agent in sorted(self.needs_plan):
            start, goal = self.pos[agent], self.goal_cell(agent)
            self.asked[agent] = (start, goal)
            self.asked_at[agent] = now
            self.path[agent] = None
            out.append((agent, start, goal))
        self.needs_plan.clear()
        self.counters.requests += len(out)
        return out

    def apply(self, agent: int, path: Path | None, now: float) -> None:
        """Take a planner's answer for ``agent``; answers to questions no longer asked are ignored."""
        asked = self.asked[agent]
        if asked is None:
            return
        if path is not None and (path[0] != asked[0] or path[-1] != asked[1]):
            return  # an answer to an older question (e.g. from before a mode switch)
        self.asked[agent] = None
        self.retries[agent] = 0
        self.path[agent] = path
        self.step[agent] = 0
        self.counters.results_at.append(now)
        self.counters.latency_s.append(now - self.asked_at[agent])
        if path is None:
            self.counters.unreachable += 1
        else:
            self.counters.solved += 1

    def failed(self, agent: int) -> None:
        """A request failed in a worker: ask again (a few times), then give up on that agent."""
        self.counters.failures += 1
        if self.asked[agent] is None:
            return
        self.asked[agent] = None
        self.retries[agent] += 1
        if self.retries[agent] <= MAX_RETRIES:
            self.needs_plan.add(agent)

    def advance(self) -> None:
        """Every agent with a path moves one cell along it."""
        for agent, path in enumerate(self.path):
            if path is not None and self.step[agent] < len(path) - 1:
                self.step[agent] += 1
                self.pos[agent] = path[self.step[agent]]

    @property
    def waiting(self) -> int:
        return sum(1 for a in self.asked if a is not None) + len(self.needs_plan)

    def problems(self) -> list[str]:
        """Agents whose state is wrong: a reachable goal without a valid path to it, or a path
        where there should be none. Empty once every answer has arrived and been applied."""
        out = []
        for agent in range(self.config.agents):
            path, goal = self.path[agent], self.goal_cell(agent)
            if self.asked[agent] is not None or agent in self.needs_plan:
                out.append(f"agent {agent}: still waiting for a path")
            elif self.reachable(agent):
                if path is None:
                    out.append(f"agent {agent}: goal {goal} reachable but no path")
                elif not path_is_valid(self.prepared, path, path[0], goal):
                    out.append(f"agent {agent}: invalid path to {goal}")
                elif path[self.step[agent]] != self.pos[agent]:
                    out.append(f"agent {agent}: not on its path")
            elif path is not None:
                out.append(f"agent {agent}: has a path to an unreachable goal")
        return out


# ---------------------------------------------------------------------- planners

class Planner(Protocol):
    mode: str

    def request(self, agent: int, start: int, goal: int) -> None: ...
    def poll(self) -> list[tuple[int, Path | None] | Failure]: ...
    def forget(self, agent: int) -> None: ...
    @property
    def pending(self) -> int: ...
    def close(self) -> None: ...


class InlinePlanner:
    """Plans on the calling thread, right away: what a game does without corelane."""

    mode = "inline"

    def __init__(self, grid: PreparedGrid) -> None:
        self.grid = grid
        self._done: list[tuple[int, Path | None] | Failure] = []

    def request(self, agent: int, start: int, goal: int) -> None:
        self._done.append((agent, astar(self.grid, start, goal)))

    def poll(self) -> list[tuple[int, Path | None] | Failure]:
        done, self._done = self._done, []
        return done

    def forget(self, agent: int) -> None:
        pass

    @property
    def pending(self) -> int:
        return 0

    def close(self) -> None:
        self._done.clear()


class OffloadPlanner:
    """Plans in worker processes through an Offloader; the grid is installed once per worker."""

    mode = "offload"

    def __init__(self, grid: PreparedGrid, workers: int | None = None, max_pending: int = 4096
                 ) -> None:
        self.offloader = Offloader(
            workers, latest_wins=True, max_pending=max_pending,
            initializer=install_grid, initargs=(grid, WORKER_NICE),
        )

    def request(self, agent: int, start: int, goal: int) -> None:
        self.offloader.submit(agent, plan, start, goal)

    def poll(self) -> list[tuple[int, Path | None] | Failure]:
        return cast("list[tuple[int, Path | None] | Failure]", self.offloader.poll())

    def forget(self, agent: int) -> None:
        self.offloader.cancel(agent)

    @property
    def pending(self) -> int:
        return self.offloader.pending

    def close(self) -> None:
        self.offloader.close()


def make_planner(mode: str, grid: PreparedGrid, workers: int | None = None) -> Planner:
    """An ``inline`` or ``offload`` planner for ``grid``."""
    if mode == "inline":
        return InlinePlanner(grid)
    if mode == "offload":
        return OffloadPlanner(grid, workers)
    raise ValueError(f"mode is 'inline' or 'offload', got {mode!r}")


def step_planning(scene: Scene, planner: Planner, now: float) -> None:
    """One frame's planning: apply finished answers, then send the new questions."""
    for outcome in planner.poll():
        if isinstance(outcome, Failure):
            scene.failed(int(outcome.item))
        else:
            agent, path = outcome
            scene.apply(agent, path, now)
    for agent, start, goal in scene.take_requests(now):
        planner.request(agent, start, goal)
    if planner.mode == "inline":  # answered already: apply them in this same frame
        done = time.perf_counter()
        for outcome in planner.poll():
            if not isinstance(outcome, Failure):
                scene.apply(outcome[0], outcome[1], done)
