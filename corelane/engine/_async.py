"""asyncio front ends for a Pool: ``await asubmit(...)`` and ``async for r in aimap(...)``.

::

    event loop thread                          pool manager thread           workers
    -----------------                          -------------------           -------
    asubmit / aimap: pool.submit(fn, item) --> a job per item  -------->    run it
    (pickles the item, never waits)
    awaits an asyncio future  <-- call_soon_threadsafe <-- Future done  <--  result
                                  (the loop's self-pipe)   (callback)

Nothing here blocks the event loop and no thread waits on its behalf: a pool Future's done
callback (run by the manager thread) hands the outcome over with ``loop.call_soon_threadsafe``
(``asyncio.wrap_future`` for a single call). The loop only pays for pickling each item when it
submits it, and for one wake-up per result.

Cancellation: cancelling the task that awaits ``asubmit``, or closing an ``aimap`` early
(``aclose()``, leaving ``async with contextlib.aclosing(aimap(...))``, a cancelled consumer; a bare
``break`` closes it only when the generator is garbage-collected), cancels every item still
waiting in the pool. An item already handed to a worker (running, or queued there behind a short
one) runs to its end and its result is dropped: the Pool has no way yet to stop a running submit.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable, Iterable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, TypeVar

from corelane.errors import RemoteTraceback, TaskError, TaskTimeout, WorkerDied

if TYPE_CHECKING:
    from corelane.engine.pool import Pool

__all__ = ["aimap", "asubmit"]

T = TypeVar("T")

WINDOW_PER_WORKER = 16  # items in flight per worker by default: more hides the per-item round
#                        trip, fewer bounds memory and what a cancellation leaves running


async def asubmit(pool: Pool, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run ``fn(*args, **kwargs)`` in a worker of ``pool`` and await its result.

    Cancelling the awaiting task cancels the call while it still waits in the pool.

    Raises:
        The task's own exception (the worker's traceback as its ``__cause__``), as
        ``Pool.submit`` Futures do; WorkerDied when the worker running it died.
    """
    future = pool.submit(fn, *args, **kwargs)
    return await asyncio.wrap_future(future)


async def aimap(
    pool: Pool,
    fn: Callable[[Any], T],
    iterable: Iterable[Any] | AsyncIterable[Any],
    *,
    window: int | None = None,
    ordered: bool = True,
) -> AsyncGenerator[T, None]:
    """Apply ``fn`` to every item on ``pool``'s workers; yield the results as they come.

    Args:
        pool: the pool to run on.
        fn: a function of one argument.
        iterable: the inputs, a plain or an async iterable; read only as results are consumed.
        window: items submitted but not yet yielded, at most (default: 16 per worker).
        ordered: results in input order (default, like ``imap``), or in completion order.

    Raises:
        TaskError / WorkerDied: for the first failed item, its ``index`` the item's position in
            the input; the items still queued are cancelled.
    """
    limit = window if window is not None else WINDOW_PER_WORKER * pool.workers
    if limit < 1:
        raise ValueError(f"window must be >= 1, got {limit}")
    loop = asyncio.get_running_loop()
    finished: deque[int] = deque()  # indices whose futures are done, in completion order
    wakeup: asyncio.Future[None] | None = None
    inflight: dict[int, tuple[Any, Future[Any]]] = {}

    def on_done(index: int) -> None:  # in the loop thread, via call_soon_threadsafe
        nonlocal wakeup
        finished.append(index)
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    def submit(index: int, item: Any) -> None:
        future = pool.submit(fn, item)
        inflight[index] = (item, future)
        future.add_done_callback(lambda _: loop.call_soon_threadsafe(on_done, index))

    items = _aiter(iterable)
    exhausted = False
    submitted = yielded = 0
    ready: dict[int, Any] = {}  # ordered mode: results that came before their turn
    try:
        while True:
            while not exhausted and submitted - yielded < limit:
                try:
                    item = await anext(items)
                except StopAsyncIteration:
                    exhausted = True
                    break
                submit(submitted, item)
                submitted += 1
            if exhausted and yielded == submitted:
                return
            while not finished:
                wakeup = loop.create_future()
                await wakeup
            while finished:
                index = finished.popleft()
                item, future = inflight.pop(index)
                value = _outcome(index, item, future)
                if not ordered:
                    yielded += 1
                    yield value
                else:
                    ready[index] = value
            while ordered and yielded in ready:
                value = ready.pop(yielded)
                yielded += 1
                yield value
    finally:
        for _, future in inflight.values():
            future.cancel()  # only the items not yet on a worker
        close = getattr(items, "aclose", None)
        if close is not None:
            await close()


async def _aiter(iterable: Iterable[Any] | AsyncIterable[Any]) -> AsyncIterator[Any]:
    """One async iterator over a plain or an async iterable."""
    if isinstance(iterable, AsyncIterable):
        async for item in iterable:
            yield item
    else:
        for item in iterable:
            yield item


def _outcome(index: int, item: Any, future: Future[Any]) -> Any:
    """The item's result, or its error as ``imap`` gives it, with the item's own index.

    ``submit`` Futures raise the task's own exception (worker traceback as ``__cause__``), as
    the Executor API does; a run of items raises TaskError(index, item) like ``imap``.
    """
    error = future.exception()
    if error is None:
        return future.result()
    if isinstance(error.__cause__, RemoteTraceback):  # the task raised it
        raise TaskError(index, item, error, error.__cause__.text)
    if isinstance(error, WorkerDied):
        raise WorkerDied(index, error.pid, error.exitcode)
    if isinstance(error, TaskTimeout):
        raise TaskTimeout(index, error.timeout, error.pid)
    raise error
