"""A* on a 4-connected grid: pure, picklable functions, fast enough to run hundreds per second.

A grid is a 2-D NumPy array, nonzero where a cell is blocked. For speed the search runs on a
:class:`PreparedGrid`: the grid as ``bytes`` with a blocked border around it, so a cell's four
neighbours are ``i - 1, i + 1, i - width, i + width`` with no bounds checks, and the open set is
a heap of plain ints (f, then h, then the cell packed into one number; ints compare much faster
than tuples). Cells are addressed by flat index ``row * width + col`` of the *unpadded* grid.

Workers get the grid once, through :func:`install_grid` as the pool's initializer, and then
receive only ``(start, goal)`` per request (:func:`plan`).
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from dataclasses import dataclass
from heapq import heappop, heappush

import numpy as np
import numpy.typing as npt

from corelane.engine import worker_state

Path = list[int]


@dataclass(frozen=True)
class PreparedGrid:
    """A grid ready for :func:`astar`: padded, flattened to bytes (1 = blocked).

    Attributes:
        width: columns of the original grid.
        height: rows of the original grid.
        blocked: ``(height + 2) * (width + 2)`` bytes, the grid inside a blocked border.
    """

    width: int
    height: int
    blocked: bytes

    @classmethod
    def from_array(cls, grid: npt.ArrayLike) -> PreparedGrid:
        """Prepare a 2-D array (nonzero = blocked) for searching."""
        arr = np.asarray(grid)
        if arr.ndim != 2:
            raise ValueError(f"a grid is 2-D, got shape {arr.shape}")
        height, width = arr.shape
        padded = np.ones((height + 2, width + 2), dtype=np.uint8)
        padded[1:-1, 1:-1] = arr != 0
        return cls(width, height, padded.tobytes())

    def free(self, cell: int) -> bool:
        """Whether ``cell`` (an unpadded flat index) is inside the grid and not blocked."""
        if not 0 <= cell < self.width * self.height:
            return False
        return not self.blocked[self._pad(cell)]

    def _pad(self, cell: int) -> int:
        row, col = divmod(cell, self.width)
        return (row + 1) * (self.width + 2) + col + 1


def astar(grid: PreparedGrid | npt.ArrayLike, start: int, goal: int) -> Path | None:
    """Find a shortest 4-connected path from ``start`` to ``goal``.

    Args:
        grid: a PreparedGrid, or a 2-D array (nonzero = blocked), prepared on the fly.
        start: flat index (``row * width + col``) of the first cell.
        goal: flat index of the last cell.

    Returns:
        The cells of a shortest path, ``start`` and ``goal`` included, or None when ``goal``
        cannot be reached (or either end is blocked).
    """
    g = grid if isinstance(grid, PreparedGrid) else PreparedGrid.from_array(grid)
    if not (g.free(start) and g.free(goal)):
        return None
    if start == goal:
        return [start]
    wp = g.width + 2
    s, t = g._pad(start), g._pad(goal)
    found = _search(g.blocked, wp, s, t)
    if found is None:
        return None
    return [(p // wp - 1) * g.width + p % wp - 1 for p in found]


def _search(blocked: bytes, wp: int, s: int, t: int) -> list[int] | None:
    """A* over padded flat indices; returns the padded path or None. The hot loop."""
    tr, tc = divmod(t, wp)
    cell_bits = len(blocked).bit_length()
    h_bits = (len(blocked) // wp + wp).bit_length()
    cell_mask = (1 << cell_bits) - 1
    f_shift = cell_bits + h_bits
    closed = bytearray(blocked)  # blocked cells count as closed: one lookup instead of two
    dist = {s: 0}
    parent = {s: s}
    sr, sc = divmod(s, wp)
    h0 = abs(sr - tr) + abs(sc - tc)
    heap = [(h0 << f_shift) | (h0 << cell_bits) | s]
    steps = (-1, 1, -wp, wp)
    while heap:
        cur = heappop(heap) & cell_mask
        if cur == t:
            path = [t]
            while cur != s:
                cur = parent[cur]
                path.append(cur)
            path.reverse()
            return path
        if closed[cur]:
            continue
        closed[cur] = 1
        ng = dist[cur] + 1
        for step in steps:
            nb = cur + step
            if closed[nb]:
                continue
            old = dist.get(nb)
            if old is not None and old <= ng:
                continue
            dist[nb] = ng
            parent[nb] = cur
            r, c = divmod(nb, wp)
            h = (r - tr if r > tr else tr - r) + (c - tc if c > tc else tc - c)
            heappush(heap, ((ng + h) << f_shift) | (h << cell_bits) | nb)
    return None


def components(grid: PreparedGrid | npt.ArrayLike) -> npt.NDArray[np.int32]:
    """Label the 4-connected regions of free cells (0, 1, …); blocked cells get -1.

    Two cells are mutually reachable exactly when they carry the same label.
    """
    g = grid if isinstance(grid, PreparedGrid) else PreparedGrid.from_array(grid)
    wp = g.width + 2
    labels = [-1] * len(g.blocked)
    blocked = g.blocked
    steps = (-1, 1, -wp, wp)
    label = 0
    for seed in range(len(blocked)):
        if blocked[seed] or labels[seed] >= 0:
            continue
        labels[seed] = label
        todo = deque([seed])
        while todo:
            cur = todo.popleft()
            for step in steps:
                nb = cur + step
                if not blocked[nb] and labels[nb] < 0:
                    labels[nb] = label
                    todo.append(nb)
        label += 1
    out = np.array(labels, dtype=np.int32).reshape(g.height + 2, wp)
    return np.ascontiguousarray(out[1:-1, 1:-1])


def make_grid(size: int = 256, *, seed: int = 0, density: float = 0.18, walls: int | None = None
              ) -> npt.NDArray[np.uint8]:
    """A square test map: scattered rocks plus long walls with doorways (1 = blocked).

    The walls make straight-line guesses wrong, so A* has real work to do; the doorways keep
    most of the map connected.
    """
    rng = np.random.default_rng(seed)
    grid = (rng.random((size, size)) < density).astype(np.uint8)
    n_walls = max(2, size // 16) if walls is None else walls
    for _ in range(n_walls):
        length = int(rng.integers(size // 4, size * 3 // 4 + 1))
        fixed = int(rng.integers(0, size))
        begin = int(rng.integers(0, max(1, size - length)))
        end = min(size, begin + length)
        if rng.random() < 0.5:
            grid[fixed, begin:end] = 1
            for door in rng.integers(begin, end, size=max(1, length // 24)):
                grid[fixed, int(door)] = 0
        else:
            grid[begin:end, fixed] = 1
            for door in rng.integers(begin, end, size=max(1, length // 24)):
                grid[int(door), fixed] = 0
    return grid


def path_is_valid(grid: PreparedGrid, path: Path, start: int, goal: int) -> bool:
    """Whether ``path`` walks from ``start`` to ``goal`` over free, 4-adjacent cells."""
    if not path or path[0] != start or path[-1] != goal:
        return False
    w = grid.width
    for a, b in zip(path, path[1:], strict=False):
        if not grid.free(b):
            return False
        vertical = abs(a - b) == w
        horizontal = abs(a - b) == 1 and a // w == b // w  # not wrapping around a row end
        if not (vertical or horizontal):
            return False
    return grid.free(path[0])


# ---------------------------------------------------------------------- in the workers

def install_grid(grid: PreparedGrid, nice: int = 0) -> None:
    """Pool initializer: keep ``grid`` in this worker for :func:`plan`.

    Args:
        grid: the map every request searches.
        nice: raise this worker's niceness by this much, so that on a busy machine the game's
            frame loop wins the CPU over background planning (0 = leave it).
    """
    worker_state()["grid"] = grid
    if nice:
        # Not permitted here? Planning still works, just at normal priority.
        with contextlib.suppress(OSError):
            os.nice(nice)


def plan(start: int, goal: int) -> Path | None:
    """Task run in a worker: A* on the grid :func:`install_grid` stored there."""
    return astar(worker_state()["grid"], start, goal)
