"""A joblib backend: scikit-learn's ``n_jobs`` and any ``joblib.Parallel`` on a corelane Pool.

::

    import corelane.integrations.joblib          # registers the "corelane" backend
    with joblib.parallel_config(backend="corelane", n_jobs=4):
        scores = cross_val_score(model, X, y, cv=5, n_jobs=4)

Why: with joblib's default (loky) backend one dead worker (the out-of-memory killer, a segfault
in a C extension) ends the whole call with ``TerminatedWorkerError``, three hours into a grid
search. Here a batch whose worker died is run again on a fresh worker, up to ``max_retries``
times; a batch that keeps killing its worker fails with :class:`corelane.WorkerDied`, naming the
signal, and joblib stops the call as it does for any failed task.

::

    joblib.Parallel (caller thread)        this backend                      corelane Pool
    -------------------------------        ------------                      -------------
    cuts batches (auto-sized from   -->    submit(batch, callback):  --> pool.submit(_run_batch)
    their measured duration)               a Future joblib waits on          one worker runs it
                                           <-- attempt done (pool thread):
    callback: result, next batch   <--     WorkerDied and retries left? submit again
                                           else settle joblib's Future

Workers are reused across ``Parallel`` calls with the same size and thread limits, as loky's
are, and stopped by :func:`shutdown` or at exit. They start with ``forkserver`` by default: a
forked child of a process that has used GNU OpenMP (bundled with scikit-learn's wheels) can hang
in its first parallel region; pass ``start_method="fork"`` to trade that safety for speed.

Differences from loky worth knowing: large NumPy arguments are pickled, not memory-mapped; the
retry means a batch can run more than once (at-least-once, as everywhere in corelane).
"""

from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import Future
from typing import Any

import joblib
from joblib.parallel import (
    AutoBatchingMixin,
    FallbackToBackend,
    ParallelBackendBase,
    SequentialBackend,
    ThreadingBackend,
)

from corelane.engine import Pool
from corelane.engine._cpus import cpu_count
from corelane.errors import Broken, Cancelled, Closed, WorkerDied

__all__ = ["BACKEND_NAME", "CorelaneBackend", "register", "shutdown"]

BACKEND_NAME = "corelane"
MAX_RETRIES = 2  # re-runs of a batch whose worker died; one death is bad luck, three a pattern
# Thread-pool sizes of native libraries, read by them when they load (as loky sets them).
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                "VECLIB_MAXIMUM_THREADS", "NUMBA_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def register() -> None:
    """Register the ``"corelane"`` joblib backend (importing this module already does)."""
    joblib.register_parallel_backend(BACKEND_NAME, CorelaneBackend)


def shutdown() -> None:
    """Stop the reused worker pools that no ``Parallel`` call is using (at exit this is automatic)."""
    with _registry_lock:
        idle = [key for key, shared in _registry.items() if shared.users == 0]
        pools = [_registry.pop(key).pool for key in idle]
    for pool in pools:
        pool.close()


# ---------------------------------------------------------------------------- shared pools

_Key = tuple[int, str, tuple[tuple[str, str], ...], int | None]


class _Shared:
    """A pool reused by successive Parallel calls; ``users``: backends configured on it now."""

    __slots__ = ("pool", "users")

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.users = 0


_registry: dict[_Key, _Shared] = {}
_registry_lock = threading.Lock()


def _new_pool(key: _Key) -> Pool:
    workers, start_method, env, threads = key
    return Pool(workers, initializer=_init_worker, initargs=(dict(env), threads),
                start_method=start_method)


def _acquire(key: _Key, *, reuse: bool) -> _Shared:
    if not reuse:
        private = _Shared(_new_pool(key))  # never in the registry
        private.users = 1
        return private
    retired: list[Pool] = []
    with _registry_lock:
        shared = _registry.get(key)
        if shared is None:
            shared = _registry[key] = _Shared(_new_pool(key))
        shared.users += 1
        # An idle pool of another shape would only hold processes: loky keeps one executor too.
        for other in [k for k, s in _registry.items() if s.users == 0]:
            retired.append(_registry.pop(other).pool)
    for pool in retired:
        pool.close()
    return shared


def _release(shared: _Shared, *, stop: bool, kill: bool = False) -> None:
    """Stop using ``shared``; ``stop``: close its pool too, ``kill``: terminate it now."""
    with _registry_lock:
        shared.users -= 1
        if stop or kill:
            for key, value in list(_registry.items()):
                if value is shared:
                    del _registry[key]
    if kill:
        shared.pool.terminate()
    elif stop:
        shared.pool.close()


def _init_worker(env: dict[str, str], threads: int | None) -> None:
    """Cap native thread pools in a worker, so n_jobs workers do not each start every CPU's worth."""
    os.environ.update(env)
    if threads is None:
        return
    # Under fork, libraries the parent already loaded have read their variables: set them live.
    with contextlib.suppress(ImportError):
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=threads)  # not a `with`: the limit holds for the worker's life


def _run_batch(batch: Any) -> Any:
    """What a worker runs: one joblib batch (a module function, so the pool caches it once)."""
    return batch()


# ---------------------------------------------------------------------------- the backend


class _Task:
    """One batch: the Future joblib waits on, and the pool Future of its current attempt."""

    __slots__ = ("batch", "outer", "attempt", "deaths")

    def __init__(self, batch: Any) -> None:
        self.batch = batch
        self.outer: Future[Any] = Future()
        self.outer.set_running_or_notify_cancel()  # settled only by us
        self.attempt: Future[Any] | None = None
        self.deaths = 0


class CorelaneBackend(AutoBatchingMixin, ParallelBackendBase):
    """joblib's retrieve-callback backend protocol over a corelane Pool.

    Select it with ``joblib.parallel_config(backend="corelane", n_jobs=N, **options)``, where
    the options are this constructor's keyword arguments.

    Args:
        max_retries: how many times a batch whose worker died is run again before it fails with
            WorkerDied (0: never).
        start_method: "forkserver" (default, see the module docstring), "fork" or "spawn".
        reuse: keep the workers for the next Parallel call (default, like loky); False stops
            them at the end of each call.
        nesting_level, inner_max_num_threads: set by joblib; ``inner_max_num_threads`` caps the
            threads of OpenMP/BLAS inside each worker (default: CPUs // workers).
    """

    supports_retrieve_callback = True
    supports_inner_max_num_threads = True
    uses_threads = False
    supports_sharedmem = False

    def __init__(
        self,
        nesting_level: int | None = None,
        inner_max_num_threads: int | None = None,
        *,
        max_retries: int = MAX_RETRIES,
        start_method: str = "forkserver",
        reuse: bool = True,
        **backend_kwargs: Any,
    ) -> None:
        super().__init__(nesting_level=nesting_level,
                         inner_max_num_threads=inner_max_num_threads, **backend_kwargs)
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        self.max_retries = max_retries
        self.start_method = start_method
        self.reuse = reuse
        self.parallel: Any = None
        self._shared: _Shared | None = None
        self._n_jobs = 1
        self._tasks: set[_Task] = set()
        self._lock = threading.Lock()
        self._aborting = False

    # -------------------------------------------------------------- sizing and lifecycle

    def effective_n_jobs(self, n_jobs: int | None) -> int:
        """Workers a call with ``n_jobs`` gets: negative counts back from corelane.cpu_count()."""
        if n_jobs == 0:
            raise ValueError("n_jobs == 0 in Parallel has no meaning")
        if n_jobs is None:
            return 1
        if n_jobs < 0:
            return max(cpu_count() + 1 + n_jobs, 1)
        return n_jobs

    def configure(
        self, n_jobs: int | None = 1, parallel: Any = None, prefer: str | None = None,
        require: str | None = None, **backend_kwargs: Any,
    ) -> int:
        """Attach to a (possibly reused) pool of ``effective_n_jobs(n_jobs)`` workers."""
        n = self.effective_n_jobs(n_jobs)
        if n == 1:  # one worker is no parallelism: run in this process, as joblib's own do
            raise FallbackToBackend(SequentialBackend(nesting_level=self.nesting_level))
        self.parallel = parallel
        self._n_jobs = n
        self._aborting = False
        if self._shared is None:
            self._shared = _acquire(self._key(), reuse=self.reuse)
        return n

    def _key(self) -> _Key:
        env = self._prepare_worker_env(self._n_jobs)
        threads = self.inner_max_num_threads or max(cpu_count() // self._n_jobs, 1)
        return (self._n_jobs, self.start_method, tuple(sorted(env.items())), threads)

    def _prepare_worker_env(self, n_jobs: int) -> dict[str, str]:
        """Thread-count variables for workers: explicit limit, the parent's, or CPUs // n_jobs."""
        default = str(self.inner_max_num_threads or max(cpu_count() // n_jobs, 1))
        if self.inner_max_num_threads is not None:
            return dict.fromkeys(_THREAD_VARS, default)
        return {var: os.environ.get(var, default) for var in _THREAD_VARS}

    def terminate(self) -> None:
        """End of a Parallel call: let go of the pool (kept for the next call unless reuse=False)."""
        if self._shared is not None:
            _release(self._shared, stop=not self.reuse)
            self._shared = None
        self.reset_batch_stats()

    def abort_everything(self, ensure_ready: bool = True) -> None:
        """A task failed: cancel this call's other batches, running ones included.

        A running batch is stopped with ``Pool.cancel(force=True)``: its worker is killed and
        replaced, so a reused pool (perhaps serving another Parallel call) stays whole.
        """
        self._aborting = True
        with self._lock:
            tasks = list(self._tasks)
            self._tasks.clear()
        shared = self._shared
        for task in tasks:
            if task.attempt is not None and shared is not None:
                shared.pool.cancel(task.attempt, force=True)
        if not ensure_ready:
            return  # joblib's terminate() follows and lets go of the pool
        self._aborting = False

    def get_nested_backend(self) -> tuple[Any, int | None]:
        """Backend for Parallel calls made inside a task: threads one level down, then none.

        The pool already fills every CPU it was given; more processes below it would only
        oversubscribe them.
        """
        level = (self.nesting_level or 0) + 1
        if level > 1:
            return SequentialBackend(nesting_level=level), None
        return ThreadingBackend(nesting_level=level), None

    # -------------------------------------------------------------- running batches

    def submit(self, func: Any, callback: Any = None) -> Future[Any]:
        """Run one batch on the pool; ``callback(future)`` fires once it has its final outcome."""
        task = _Task(func)
        if callback is not None:
            task.outer.add_done_callback(callback)
        with self._lock:
            self._tasks.add(task)
        self._launch(task)
        return task.outer

    def retrieve_result_callback(self, out: Future[Any]) -> Any:
        """The batch's results, or its error: the task's own exception (worker traceback as
        ``__cause__``, as loky gives it), or WorkerDied / NotPicklable from corelane."""
        return out.result()

    def _launch(self, task: _Task) -> None:
        shared = self._shared
        try:
            if shared is None or self._aborting:
                raise Cancelled("the joblib call was aborted before this batch started")
            try:
                attempt = shared.pool.submit(_run_batch, task.batch)
            except (Broken, Closed):
                # The reused pool is gone (terminated by an abort of another call): a new one.
                _release(shared, stop=True, kill=True)
                self._shared = shared = _acquire(self._key(), reuse=self.reuse)
                attempt = shared.pool.submit(_run_batch, task.batch)
        except BaseException as exc:  # noqa: BLE001 - whatever it is, joblib must hear of it
            self._settle(task, exc, None)
            return
        with self._lock:  # abort_everything() either sees this attempt or dropped the task first
            task.attempt = attempt
            dropped = task not in self._tasks
        if dropped:  # a retry launched while the call was being aborted
            shared.pool.cancel(attempt, force=True)
        attempt.add_done_callback(lambda done: self._attempt_done(task, done))

    def _attempt_done(self, task: _Task, done: Future[Any]) -> None:
        """Runs in the pool's manager thread: retry a death, or settle joblib's Future."""
        if done.cancelled():
            self._settle(task, Cancelled("the batch was cancelled before it started"), None)
            return
        error = done.exception()
        with self._lock:
            live = task in self._tasks  # not dropped by an abort
        if isinstance(error, WorkerDied) and task.deaths < self.max_retries and live:
            task.deaths += 1
            self._launch(task)
            return
        if isinstance(error, WorkerDied):
            error.add_note(
                f"The joblib batch ran {task.deaths + 1} times and killed its worker each time"
                f" (max_retries={self.max_retries}); joblib stops the call."
            )
        self._settle(task, error, None if error else done.result())

    def _settle(self, task: _Task, error: BaseException | None, value: Any) -> None:
        with self._lock:
            self._tasks.discard(task)
        task.batch = None  # its arguments may be large
        if error is not None:
            task.outer.set_exception(error)
        else:
            task.outer.set_result(value)


register()
