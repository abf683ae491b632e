"""SharedArray: zero-copy across processes, handles instead of data, views stay shared."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import corelane
from corelane import SharedArray, share
from corelane.errors import Closed
from tests.ipc_tasks import double_in_place, fill, sum_range


def test_worker_write_is_seen_by_parent(start_method: str) -> None:
    with share(np.arange(1000, dtype=np.float64)) as arr:
        names = corelane.map(double_in_place, [arr], workers=1, start_method=start_method)
        assert names == [arr.name]
        np.testing.assert_array_equal(arr, np.arange(1000) * 2.0)


def test_slices_travel_as_handles_into_a_running_pool(start_method: str) -> None:
    # The pool's workers exist before the array does.
    with corelane.Pool(2, start_method=start_method) as pool, SharedArray.zeros((4, 250)) as arr:
        flags = list(pool.map(fill, [(arr[i], float(i + 1)) for i in range(4)], chunksize=1))
        assert flags == [True] * 4  # each worker saw a shared, attached (not owned) view
        assert arr.sum() == 250 * (1 + 2 + 3 + 4)
        halves = list(pool.map(sum_range, [(arr.ravel(), 0, 500), (arr.ravel(), 500, 1000)]))
        assert halves == [250 * 3.0, 250 * 7.0]


def test_handle_is_small_whatever_the_size() -> None:
    with SharedArray.empty((1000, 1000)) as arr:  # 8 MB
        assert len(pickle.dumps(arr)) < 300
        assert len(pickle.dumps(arr[::3, 10:20])) < 300


@pytest.mark.parametrize(
    "view",
    [lambda a: a[3:17:2], lambda a: a[::-1], lambda a: a.reshape(4, 5).T, lambda a: a[5]],
    ids=["step", "reversed", "transposed", "scalar-row"],
)
def test_views_round_trip_to_the_same_memory(view: object) -> None:
    with share(np.arange(20, dtype=np.int64)) as arr:
        v = view(arr)  # type: ignore[operator]
        back = pickle.loads(pickle.dumps(v))
        np.testing.assert_array_equal(back, v)
        if isinstance(back, SharedArray) and back.ndim:
            back[...] = -1
            assert (np.asarray(v) == -1).all()


def test_new_arrays_are_private_and_pickle_by_value() -> None:
    with share(np.ones(10)) as arr:
        doubled = arr * 2
        assert type(doubled) is np.ndarray
        assert type(arr.sum()) is np.float64
        copy = arr.copy()
        assert not getattr(copy, "is_shared", False)
        back = pickle.loads(pickle.dumps(copy))
        back[0] = 5
        assert arr[0] == 1


def test_close_unlinks_and_forbids_sending() -> None:
    arr = SharedArray.full((10,), 3, dtype=np.int32)
    assert arr.is_owner and arr.is_shared
    arr.close()
    arr.close()  # idempotent
    assert not arr.is_shared
    assert int(arr.sum()) == 30  # still readable in the owner
    with pytest.raises(Closed):
        pickle.dumps(arr)


def test_attach_after_close_fails_clearly() -> None:
    arr = SharedArray.zeros(4)
    data = pickle.dumps(arr)
    arr.close()
    del arr
    with pytest.raises(Closed, match="closed"):
        pickle.loads(data)


def test_share_returns_shared_input_as_is_and_refuses_objects() -> None:
    with SharedArray.zeros(3) as arr:
        assert share(arr) is arr
    with pytest.raises(TypeError, match="Manager"):
        SharedArray.empty(3, dtype=object)


def test_zero_size_array() -> None:
    with SharedArray.empty((0, 3)) as arr:
        back = pickle.loads(pickle.dumps(arr))
        assert back.shape == (0, 3)
