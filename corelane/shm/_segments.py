"""Shared-memory segments: create, attach (without tracker registration), lock and unlink.

Every corelane shared object lives in one POSIX shared-memory segment named ``corelane_<pid>_<hex>``
(the same kind of segment :class:`multiprocessing.shared_memory.SharedMemory` makes; it can attach
to ours by name). One process owns each segment: the one that created it.

::

    owner process                             resource tracker            any other process
    -------------                             ----------------            -----------------
    create(): shm_open(O_CREAT|O_EXCL),  -->  register(name)              attach(name): shm_open,
      ftruncate, mmap                                                        mmap, NO registration
    release() / `with` end / exit / GC   -->  unregister(name)            (never unlinks)
      shm_unlink, exactly once
    SIGKILLed                                 unlinks what is still registered when every
                                              holder of its pipe is gone

Why attaching does not register: on Python < 3.13 ``SharedMemory(name)`` registers the segment with
the resource tracker even when it only attaches (bpo-38119 / gh-82300). The tracker process is
shared by a parent and all its children under every start method, so an attacher that registered
and later unregistered would erase the owner's registration (a SIGKILLed owner would then leak),
and one that registered without unregistering gets "leaked shared_memory" warnings or an unlink
behind the owner's back. So attaching maps the segment with ``shm_open`` + ``mmap`` directly.

Mappings are never closed by hand: NumPy arrays export the mmap's buffer, and closing it under
them would raise ``BufferError`` (the classic "cannot close exported pointers exist"). A mapping
goes away when the last object using it is garbage collected; unlinking only removes the name.

Locks (for counters and values) are ``flock`` on a descriptor of the segment, opened per process
(flock belongs to an open file description, so a forked child must open its own) and paired with
a thread lock (threads of one process share the description). The kernel drops a flock when its
holder dies, so a worker SIGKILLed inside a critical section cannot wedge the others.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import mmap
import os
import secrets
import threading
import time
import weakref
from multiprocessing import resource_tracker
from typing import Any

try:
    import _posixshmem
except ImportError as exc:  # pragma: no cover - Windows
    raise ImportError("corelane.shm needs POSIX shared memory (Linux or macOS)") from exc

from corelane.errors import Closed

PREFIX = "corelane_"
LOCK_TIMEOUT = 30.0  # s a process waits for a segment lock before giving up (TimeoutError)
_MODE = 0o600  # only this user may attach

# Segments mapped in this process, by name: an attach of a name already mapped here (including
# the owner's own segment coming back from a worker) reuses the mapping.
_mapped: weakref.WeakValueDictionary[str, Segment] = weakref.WeakValueDictionary()
_mapped_lock = threading.Lock()


class _ProcessLock:
    """The per-process half of a segment lock: a thread lock plus this process's own flock fd."""

    __slots__ = ("fd", "thread_lock", "depth", "data")

    def __init__(self) -> None:
        self.fd = -1
        self.thread_lock = threading.RLock()
        self.depth = 0  # re-entrant depth of this process's hold
        self.data: dict[str, Any] = {}  # per-process state of the object living here (a slot...)


class Segment:
    """One shared-memory segment mapped into this process.

    Attributes:
        name: the segment's name (without the leading slash).
        size: its size in bytes.
        buf: the writable mmap of its bytes.
        owner: True in the process that created it (and only there).
    """

    __slots__ = ("name", "size", "buf", "owner", "_finalizer", "_plock", "__weakref__")

    def __init__(self, name: str, size: int, buf: mmap.mmap, owner: bool) -> None:
        self.name = name
        self.size = size
        self.buf = buf
        self.owner = owner
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._plock: _ProcessLock | None = None

    @property
    def released(self) -> bool:
        """True once the owner unlinked the name (in the owner process)."""
        return self._finalizer is not None and not self._finalizer.alive

    def release(self) -> None:
        """Unlink the segment if this process owns it (idempotent); a no-op elsewhere.

        The memory stays valid here until the last array using it is collected; no new process
        can attach once the name is gone.
        """
        if self._finalizer is not None:
            self._finalizer()

    # ------------------------------------------------------------------ locking

    def process_state(self) -> dict[str, Any]:
        """A dict private to this process (reset in a forked child) for per-process bookkeeping."""
        return self._process_lock().data

    def _process_lock(self) -> _ProcessLock:
        plock = self._plock
        if plock is None:
            plock = self._plock = _ProcessLock()
        return plock

    def acquire(self, timeout: float = LOCK_TIMEOUT) -> None:
        """Take the segment's cross-process lock (re-entrant within a thread).

        Raises:
            TimeoutError: another process (or thread) held it for ``timeout`` seconds.
            corelane.errors.Closed: the owner unlinked the segment before this process opened it.
        """
        plock = self._process_lock()
        if not plock.thread_lock.acquire(timeout=timeout):
            raise TimeoutError(f"shared segment {self.name}: lock not acquired in {timeout:g} s")
        try:
            if plock.depth == 0:
                _flock(self._lock_fd(plock), self.name, timeout)
        except BaseException:
            plock.thread_lock.release()
            raise
        plock.depth += 1

    def release_lock(self) -> None:
        """Release one level of :meth:`acquire`."""
        plock = self._process_lock()
        plock.depth -= 1
        if plock.depth == 0:
            fcntl.flock(plock.fd, fcntl.LOCK_UN)
        plock.thread_lock.release()

    def lock(self) -> SegmentLock:
        """The segment's lock as a reusable context manager."""
        return SegmentLock(self)

    def _lock_fd(self, plock: _ProcessLock) -> int:
        if plock.fd < 0:
            try:
                plock.fd = _posixshmem.shm_open("/" + self.name, os.O_RDWR, mode=_MODE)
            except FileNotFoundError:
                raise Closed(f"shared segment {self.name} was closed by its owner") from None
        return plock.fd

    def _after_fork_in_child(self) -> None:
        # The inherited fd shares the parent's open file description (and so its flock): drop it,
        # and forget the parent's per-process state (its counter slot, its thread lock's state).
        plock = self._plock
        if plock is not None and plock.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(plock.fd)
        self._plock = None
        self.owner = False
        self._finalizer = None

    def __del__(self) -> None:
        plock = self._plock
        if plock is not None and plock.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(plock.fd)

    def __repr__(self) -> str:
        role = "owner" if self.owner else "attached"
        return f"<Segment {self.name} {self.size} bytes {role}>"


class SegmentLock:
    """``with lock:`` holds a segment's cross-process lock (flock + thread lock; re-entrant)."""

    __slots__ = ("_segment",)

    def __init__(self, segment: Segment) -> None:
        self._segment = segment

    def acquire(self, timeout: float = LOCK_TIMEOUT) -> None:
        self._segment.acquire(timeout)

    def release(self) -> None:
        self._segment.release_lock()

    def __enter__(self) -> SegmentLock:
        self._segment.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self._segment.release_lock()


def _flock(fd: int, name: str, timeout: float) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        pass
    # Contended: poll with a short backoff, so that the wait stays bounded.
    deadline = time.monotonic() + timeout
    pause = 20e-6
    while True:
        time.sleep(pause)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"shared segment {name}: lock held by another process for {timeout:g} s"
                ) from None
            pause = min(pause * 2, 1e-3)


def _unlink_owned(name: str, owner_pid: int) -> None:
    """Unlink ``name`` and drop it from the resource tracker, only in the owner process."""
    if os.getpid() != owner_pid:
        return  # a forked child holding a copy of the owner's object: not ours to unlink
    with contextlib.suppress(FileNotFoundError):
        _posixshmem.shm_unlink("/" + name)
    with contextlib.suppress(Exception):
        resource_tracker.unregister("/" + name, "shared_memory")


def _map(fd: int, size: int) -> mmap.mmap:
    return mmap.mmap(fd, size)


def create(size: int) -> Segment:
    """Create a new zero-filled segment of ``size`` bytes owned by this process.

    The segment is registered with the resource tracker (which unlinks it if this process is
    killed) and unlinked when :meth:`Segment.release` is called, when the Segment is garbage
    collected, or when the interpreter exits, whichever comes first.
    """
    size = max(1, int(size))  # mmap cannot map 0 bytes
    while True:
        name = f"{PREFIX}{os.getpid()}_{secrets.token_hex(5)}"
        try:
            fd = _posixshmem.shm_open("/" + name, os.O_CREAT | os.O_EXCL | os.O_RDWR, mode=_MODE)
            break
        except FileExistsError:
            continue
    try:
        os.ftruncate(fd, size)
        buf = _map(fd, size)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            _posixshmem.shm_unlink("/" + name)
        raise
    os.close(fd)
    # Register before anything else can fail: from here a SIGKILL is cleaned up by the tracker.
    resource_tracker.register("/" + name, "shared_memory")
    seg = Segment(name, size, buf, owner=True)
    seg._finalizer = weakref.finalize(seg, _unlink_owned, name, os.getpid())
    with _mapped_lock:
        _mapped[name] = seg
    return seg


def attach(name: str) -> Segment:
    """Map the existing segment ``name`` in this process, without registering it anywhere.

    Raises:
        corelane.errors.Closed: no such segment (its owner has closed it, or it never existed).
    """
    with _mapped_lock:
        seg = _mapped.get(name)
        if seg is not None:
            return seg
        try:
            fd = _posixshmem.shm_open("/" + name, os.O_RDWR, mode=_MODE)
        except FileNotFoundError:
            raise Closed(
                f"shared segment {name} does not exist: its owner closed it (or exited)"
            ) from None
        try:
            size = os.fstat(fd).st_size
            buf = _map(fd, size)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise Closed(f"shared segment {name} is empty or being created") from None
            raise
        finally:
            os.close(fd)
        seg = Segment(name, size, buf, owner=False)
        _mapped[name] = seg
        return seg


def exists(name: str) -> bool:
    """True while a segment called ``name`` exists on this machine."""
    try:
        fd = _posixshmem.shm_open("/" + name, os.O_RDONLY, mode=_MODE)
    except FileNotFoundError:
        return False
    os.close(fd)
    return True


def _reset_after_fork() -> None:
    global _mapped_lock
    _mapped_lock = threading.Lock()  # another thread may have held it at the fork
    for seg in list(_mapped.values()):
        seg._after_fork_in_child()


os.register_at_fork(after_in_child=_reset_after_fork)
