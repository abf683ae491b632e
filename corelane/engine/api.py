"""One-call parallel maps: a temporary Pool for a single run, closed when the run ends."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from corelane.engine._protocol import Mode
from corelane.engine.pool import Errors, Pool, _collect, _flatten
from corelane.progress import Sink

if TYPE_CHECKING:
    from corelane.engine.cluster import ClusterPool


def _run(
    fn: Callable[[Any], Any],
    iterable: Iterable[Any],
    ordered: bool,
    eager: bool,
    workers: int | None,
    chunksize: int | None,
    progress: bool | Sink,
    timeout: float | None,
    errors: Errors,
    initializer: Callable[..., Any] | None,
    initargs: tuple[Any, ...],
    start_method: str | None,
    cluster: Any = None,
) -> Iterator[Any]:
    pool: Pool | ClusterPool
    if cluster is not None:  # a Dask cluster instead of local workers (imports Dask)
        from corelane.engine.cluster import ClusterPool

        pool = ClusterPool(cluster)
    else:
        pool = Pool(workers, initializer=initializer, initargs=initargs,
                    start_method=start_method)
    try:
        return pool._start(fn, iterable, Mode.ONE, ordered, chunksize, progress, timeout, errors,
                           "task", eager=eager, owned=True)
    except BaseException:
        pool.terminate()
        raise


def map(
    fn: Callable[[Any], Any],
    iterable: Iterable[Any],
    *,
    workers: int | None = None,
    chunksize: int | None = None,
    ordered: bool = True,
    progress: bool | Sink = False,
    timeout: float | None = None,
    errors: Errors = "raise",
    initializer: Callable[..., Any] | None = None,
    initargs: tuple[Any, ...] = (),
    start_method: str | None = None,
    cluster: Any = None,
) -> list[Any]:
    """Apply ``fn`` to every item on all cores and return the list of results.

    See :meth:`corelane.Pool.map` for the options; ``workers``, ``initializer``, ``initargs`` and
    ``start_method`` configure the temporary pool; ``workers=0`` runs inline, for debugging.
    ``cluster="tcp://HOST:8786"`` (or a ``distributed.Client``) runs on a Dask cluster instead
    (see :class:`corelane.engine.cluster.ClusterPool`; the pool options do not apply there).
    The input is read whole (as ``list()`` would); results return as soon as they are in, and
    the pool's workers exit in the background.
    """
    runs = _run(fn, iterable, ordered, True, workers, chunksize, progress, timeout, errors,
                initializer, initargs, start_method, cluster)
    return _collect(runs)


def imap(
    fn: Callable[[Any], Any],
    iterable: Iterable[Any],
    *,
    workers: int | None = None,
    chunksize: int | None = None,
    progress: bool | Sink = False,
    timeout: float | None = None,
    errors: Errors = "raise",
    initializer: Callable[..., Any] | None = None,
    initargs: tuple[Any, ...] = (),
    start_method: str | None = None,
    cluster: Any = None,
) -> Iterator[Any]:
    """Lazy, ordered parallel map; the pool lives as long as the iterator."""
    return _flatten(_run(fn, iterable, True, False, workers, chunksize, progress, timeout, errors,
                initializer, initargs, start_method, cluster))


def imap_unordered(
    fn: Callable[[Any], Any],
    iterable: Iterable[Any],
    *,
    workers: int | None = None,
    chunksize: int | None = None,
    progress: bool | Sink = False,
    timeout: float | None = None,
    errors: Errors = "raise",
    initializer: Callable[..., Any] | None = None,
    initargs: tuple[Any, ...] = (),
    start_method: str | None = None,
    cluster: Any = None,
) -> Iterator[Any]:
    """Lazy parallel map yielding results as they finish."""
    return _flatten(_run(fn, iterable, False, False, workers, chunksize, progress, timeout, errors,
                initializer, initargs, start_method, cluster))
