"""A* returns shortest valid paths (checked against a plain BFS), and reachability is right."""

from __future__ import annotations

import pickle
from collections import deque

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from corelane.demos.pathfinding import (
    PreparedGrid,
    astar,
    components,
    make_grid,
    path_is_valid,
)


def bfs_length(grid: np.ndarray, start: int, goal: int) -> int | None:
    """Cells on a shortest 4-connected path (start and goal included), by breadth-first search."""
    h, w = grid.shape
    flat = grid.ravel()
    if flat[start] or flat[goal]:
        return None
    dist = {start: 1}
    todo = deque([start])
    while todo:
        cur = todo.popleft()
        if cur == goal:
            return dist[cur]
        r, c = divmod(cur, w)
        for nr, nc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
            nb = nr * w + nc
            if 0 <= nr < h and 0 <= nc < w and not flat[nb] and nb not in dist:
                dist[nb] = dist[cur] + 1
                todo.append(nb)
    return None


@st.composite
def grids_and_ends(draw: st.DrawFn) -> tuple[np.ndarray, int, int]:
    h = draw(st.integers(1, 14))
    w = draw(st.integers(1, 14))
    density = draw(st.sampled_from([0.0, 0.15, 0.3, 0.45]))
    seed = draw(st.integers(0, 2**32 - 1))
    grid = (np.random.default_rng(seed).random((h, w)) < density).astype(np.uint8)
    start = draw(st.integers(0, h * w - 1))
    goal = draw(st.integers(0, h * w - 1))
    return grid, start, goal


@settings(max_examples=300, deadline=None)
@given(grids_and_ends())
def test_astar_is_optimal_and_valid(case: tuple[np.ndarray, int, int]) -> None:
    grid, start, goal = case
    prepared = PreparedGrid.from_array(grid)
    path = astar(prepared, start, goal)
    expected = bfs_length(grid, start, goal)
    if expected is None:
        assert path is None
    else:
        assert path is not None
        assert len(path) == expected
        assert path_is_valid(prepared, path, start, goal)


@settings(max_examples=100, deadline=None)
@given(grids_and_ends())
def test_components_agree_with_reachability(case: tuple[np.ndarray, int, int]) -> None:
    grid, start, goal = case
    labels = components(grid).ravel()
    reachable = bfs_length(grid, start, goal) is not None
    if grid.ravel()[start] or grid.ravel()[goal]:
        assert not reachable and (labels[start] == -1 or labels[goal] == -1)
    else:
        assert (labels[start] == labels[goal]) == reachable


def test_astar_on_the_demo_map_matches_bfs() -> None:
    grid = make_grid(64, seed=3)
    prepared = PreparedGrid.from_array(grid)
    rng = np.random.default_rng(0)
    free = np.flatnonzero(grid.ravel() == 0)
    for start, goal in rng.choice(free, (25, 2)):
        path = astar(prepared, int(start), int(goal))
        expected = bfs_length(grid, int(start), int(goal))
        assert (path is None) == (expected is None)
        if path is not None:
            assert len(path) == expected
            assert path_is_valid(prepared, path, int(start), int(goal))


def test_path_is_valid_rejects_bad_paths() -> None:
    grid = np.zeros((3, 3), dtype=np.uint8)
    grid[1, 1] = 1
    g = PreparedGrid.from_array(grid)
    assert path_is_valid(g, [0, 1, 2], 0, 2)
    assert not path_is_valid(g, [0, 2], 0, 2)  # a jump
    assert not path_is_valid(g, [1, 4, 7], 1, 7)  # through the wall
    assert not path_is_valid(g, [2, 3], 2, 3)  # wraps from the row's end to the next row
    assert not path_is_valid(g, [0, 1], 0, 2)  # does not reach the goal


def test_blocked_ends_and_trivial_path() -> None:
    grid = np.array([[0, 1], [0, 0]], dtype=np.uint8)
    assert astar(grid, 1, 0) is None
    assert astar(grid, 0, 1) is None
    assert astar(grid, 3, 3) == [3]
    assert astar(grid, 0, 3) == [0, 2, 3]


def test_prepared_grid_pickles() -> None:
    g = PreparedGrid.from_array(make_grid(32, seed=1))
    assert pickle.loads(pickle.dumps(g)) == g
