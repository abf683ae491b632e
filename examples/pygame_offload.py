"""The tutorial's Pygame offload sketch, made complete and correct, then the same with corelane.

A few units wander a small map; whenever one arrives it asks for a path to a new random spot.
The A* search runs in worker processes so the frame loop never waits for it.

Part 1 is the tutorial's pattern by hand: a request queue, a result queue, one QUIT sentinel
*per worker*, results drained with ``get_nowait`` once per frame, and at exit the result queue
drained before joining (a process that put items on a queue cannot be joined until they are
read). Part 2 is the same game loop on :class:`corelane.Offloader`, which also survives a worker
that dies and cleans up on close.

    python examples/pygame_offload.py              # headless, 120 frames per part
    python examples/pygame_offload.py --window     # watch it (needs a display)
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import queue
import random
import time
from enum import Enum
from heapq import heappop, heappush
from multiprocessing import Process, Queue
from typing import TYPE_CHECKING

import corelane

if TYPE_CHECKING:
    import pygame

W, H, CELL, UNITS = 48, 32, 12, 8


def make_map(seed: int = 1) -> list[str]:
    """'#' is a wall, '.' is floor; a border and scattered walls."""
    rng = random.Random(seed)
    rows = []
    for y in range(H):
        rows.append("".join(
            "#" if x in (0, W - 1) or y in (0, H - 1) or rng.random() < 0.22 else "."
            for x in range(W)
        ))
    return rows


GRID = make_map()
FLOOR = [(x, y) for y in range(H) for x in range(W) if GRID[y][x] == "."]


def compute_path(start: tuple[int, int], goal: tuple[int, int]) -> list[tuple[int, int]] | None:
    """A* with the Manhattan distance, 4 directions; None when the goal cannot be reached."""
    open_heap = [(0, start)]
    came_from = {start: start}
    cost = {start: 0}
    while open_heap:
        _, cur = heappop(open_heap)
        if cur == goal:
            path = [cur]
            while cur != start:
                cur = came_from[cur]
                path.append(cur)
            return path[::-1]
        x, y = cur
        for nxt in ((x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)):
            if GRID[nxt[1]][nxt[0]] == "#":
                continue
            new_cost = cost[cur] + 1
            if new_cost < cost.get(nxt, 1 << 30):
                cost[nxt] = new_cost
                came_from[nxt] = cur
                heappush(open_heap, (new_cost + abs(goal[0] - nxt[0]) + abs(goal[1] - nxt[1]), nxt))
    return None


# ---------------------------------------------------------------------- part 1: by hand

class Msg(Enum):
    """What travels on the request queue besides requests (no magic strings)."""

    QUIT = "quit"


def pathfinder_task(request_q: Queue, result_q: Queue) -> None:
    """Worker: answer requests until the QUIT sentinel arrives."""
    while True:
        req = request_q.get()
        if req is Msg.QUIT:  # Enum members unpickle as the same object
            break
        unit, start, goal = req
        result_q.put((unit, compute_path(start, goal)))


class Units:
    """Where each unit is, the path it follows, and whether it waits for one."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.pos = [self.rng.choice(FLOOR) for _ in range(UNITS)]
        self.path: list[list[tuple[int, int]]] = [[] for _ in range(UNITS)]
        self.waiting = [False] * UNITS
        self.received = 0

    def requests(self) -> list[tuple[int, tuple[int, int], tuple[int, int]]]:
        out = []
        for u in range(UNITS):
            if not self.waiting[u] and not self.path[u]:
                self.waiting[u] = True
                out.append((u, self.pos[u], self.rng.choice(FLOOR)))
        return out

    def arrive(self, unit: int, path: list[tuple[int, int]] | None) -> None:
        self.waiting[unit] = False
        self.received += 1
        self.path[unit] = (path or [])[1:]

    def step(self) -> None:
        for u in range(UNITS):
            if self.path[u]:
                self.pos[u] = self.path[u].pop(0)


def draw(screen: pygame.Surface, units: Units, title: str) -> None:
    import pygame

    screen.fill((25, 25, 30))
    for y, row in enumerate(GRID):
        for x, ch in enumerate(row):
            if ch == "#":
                screen.fill((80, 80, 95), (x * CELL, y * CELL, CELL, CELL))
    for u, (x, y) in enumerate(units.pos):
        colour = (240, 240, 240) if units.waiting[u] else (230, 90, 70)
        pygame.draw.circle(screen, colour, (x * CELL + CELL // 2, y * CELL + CELL // 2), CELL // 2)
    pygame.display.set_caption(title)
    pygame.display.flip()


def by_hand(frames: int, workers: int) -> None:
    import pygame

    pygame.display.init()
    screen = pygame.display.set_mode((W * CELL, H * CELL))
    clock = pygame.time.Clock()
    request_q: Queue = Queue()
    result_q: Queue = Queue()
    procs = [Process(target=pathfinder_task, args=(request_q, result_q)) for _ in range(workers)]
    for p in procs:
        p.start()
    units = Units(seed=2)
    try:
        for _ in range(frames):
            for event in pygame.event.get():
                if event.type == pygame.QUIT:
                    return
            for req in units.requests():
                request_q.put(req)  # returns at once
            while True:  # poll: take what is ready, never wait
                try:
                    unit, path = result_q.get_nowait()
                except queue.Empty:
                    break
                units.arrive(unit, path)
            units.step()
            draw(screen, units, "multiprocessing queues")
            clock.tick(60)
    finally:
        for _ in procs:
            request_q.put(Msg.QUIT)  # one sentinel per worker
        deadline = time.monotonic() + 5
        while any(p.is_alive() for p in procs) and time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):  # drain, or a worker blocked on a
                result_q.get(timeout=0.05)  # full pipe never exits
        for p in procs:
            p.join(1)
            if p.is_alive():
                p.terminate()
                p.join(1)
        stopped = not any(p.is_alive() for p in procs)
        request_q.close()
        result_q.close()
        pygame.display.quit()
        print(f"queues: {frames} frames, {units.received} paths received, "
              f"workers stopped: {stopped}")


# ---------------------------------------------------------------------- part 2: corelane

def with_offloader(frames: int, workers: int) -> None:
    import pygame

    pygame.display.init()
    screen = pygame.display.set_mode((W * CELL, H * CELL))
    clock = pygame.time.Clock()
    units = Units(seed=2)
    failures = 0
    with corelane.Offloader(workers) as offloader:  # close() terminates the workers
        for _ in range(frames):
            if any(event.type == pygame.QUIT for event in pygame.event.get()):
                break
            for unit, start, goal in units.requests():
                offloader.submit(unit, compute_path, start, goal)  # returns at once
            for outcome in offloader.poll():  # never waits
                if isinstance(outcome, corelane.Failure):
                    failures += 1
                    units.arrive(outcome.item, None)  # e.g. WorkerDied: ask again later
                else:
                    unit, path = outcome
                    units.arrive(unit, path)
            units.step()
            draw(screen, units, "corelane.Offloader")
            clock.tick(60)
    pygame.display.quit()
    stopped = not multiprocessing.active_children()
    print(f"offloader: {frames} frames, {units.received} paths received, {failures} failures, "
          f"workers stopped: {stopped}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--window", action="store_true", help="show a window (needs a display)")
    args = parser.parse_args()
    if not args.window:
        os.environ["SDL_VIDEODRIVER"] = "dummy"
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    by_hand(args.frames, args.workers)
    with_offloader(args.frames, args.workers)
