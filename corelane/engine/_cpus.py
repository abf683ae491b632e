"""How many CPUs this process may really use: affinity mask and cgroup CPU quota.

``os.cpu_count()`` counts the machine's CPUs. A process pinned with ``taskset`` may use fewer
(its affinity mask), and a container limited with ``docker run --cpus=2`` or a Kubernetes CPU
limit gets a CFS quota: it may run on every CPU, but only for ``quota / period`` CPU-seconds per
second. Sizing a pool to the machine in such a container starts, say, 64 workers that share two
CPUs' worth of time, each throttled in turn. :func:`cpu_count` is the smaller of the two limits.

The quota lives in the cgroup file system, located through ``/proc/self/mountinfo`` (not a fixed
``/sys/fs/cgroup``: hybrid hosts mount cgroup v2 at ``/sys/fs/cgroup/unified``):

- cgroup v2: ``cpu.max`` holds ``"<quota> <period>"`` or ``"max <period>"``;
- cgroup v1: ``cpu.cfs_quota_us`` (``-1`` for none) and ``cpu.cfs_period_us`` in the ``cpu``
  controller's hierarchy.

A limit set on a parent group binds its children too, so the directories from this process's
group up to the mount point are all read and the tightest quota wins. Nothing here raises: an
unreadable or odd file counts as "no limit".
"""

from __future__ import annotations

import math
import os
from pathlib import Path

__all__ = ["cgroup_cpu_quota", "cpu_count"]

# Where the kernel describes this process; module attributes so that a test can point them at a
# faked tree (tests/unit/test_engine_cpus.py).
MOUNTINFO = "/proc/self/mountinfo"
PROC_CGROUP = "/proc/self/cgroup"


def cpu_count() -> int:
    """Return how many CPUs this process can keep busy: affinity and cgroup quota, at least 1.

    Returns:
        ``min(len(os.sched_getaffinity(0)), ceil(cgroup quota / period))``; without an affinity
        API (not Linux), ``os.cpu_count()``; without a quota, the affinity count alone.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    quota = cgroup_cpu_quota()
    if quota is not None:
        # Round up, as loky and the JVM do: 1.5 CPUs' worth keeps two workers mostly busy.
        cpus = min(cpus, math.ceil(quota))
    return max(cpus, 1)


def cgroup_cpu_quota(mountinfo: str | None = None, proc_cgroup: str | None = None) -> float | None:
    """Return the tightest CPU quota (in CPUs, e.g. 1.5) on this process's cgroups, or None.

    Args:
        mountinfo: path of a ``/proc/<pid>/mountinfo`` file (default: this process's).
        proc_cgroup: path of a ``/proc/<pid>/cgroup`` file (default: this process's).
    """
    try:
        mounts = Path(mountinfo or MOUNTINFO).read_text()
        groups = Path(proc_cgroup or PROC_CGROUP).read_text()
    except OSError:
        return None
    quotas: list[float] = []
    for version, mount_root, mount_point, group in _cpu_groups(mounts, groups):
        for directory in _ancestors(mount_root, mount_point, group):
            quota = _quota_v2(directory) if version == 2 else _quota_v1(directory)
            if quota is not None:
                quotas.append(quota)
    return min(quotas) if quotas else None


def _cpu_groups(mounts: str, groups: str) -> list[tuple[int, str, Path, str]]:
    """(cgroup version, mount root, mount point, this process's group) for each CPU hierarchy."""
    v2_group = None
    v1_group = None
    for line in groups.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":
            v2_group = path
        elif "cpu" in controllers.split(","):
            v1_group = path
    found: list[tuple[int, str, Path, str]] = []
    for line in mounts.splitlines():
        # "36 35 0:31 / /sys/fs/cgroup/cpu rw,relatime shared:9 - cgroup cgroup rw,cpu"
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or len(tail) < 1:
            continue
        root, point = _unescape(fields[3]), Path(_unescape(fields[4]))
        if tail[0] == "cgroup2" and v2_group is not None:
            found.append((2, root, point, v2_group))
        elif (tail[0] == "cgroup" and v1_group is not None and len(tail) >= 3
              and "cpu" in tail[2].split(",")):
            found.append((1, root, point, v1_group))
    return found


def _unescape(field: str) -> str:
    """mountinfo writes spaces, tabs, newlines and backslashes as octal escapes (``\\040``)."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def _ancestors(mount_root: str, mount_point: Path, group: str) -> list[Path]:
    """Directories from the process's group up to the mount point, innermost first."""
    relative = os.path.relpath(group, mount_root) if group.startswith(mount_root) else "."
    if relative.startswith(".."):
        relative = "."  # the group is outside what is mounted here (a cgroup namespace)
    parts = [p for p in Path(relative).parts if p not in (".", "/")]
    return [mount_point.joinpath(*parts[:n]) for n in range(len(parts), -1, -1)]


def _quota_v2(directory: Path) -> float | None:
    try:
        fields = (directory / "cpu.max").read_text().split()
        if len(fields) != 2 or fields[0] == "max":
            return None
        quota, period = int(fields[0]), int(fields[1])
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


def _quota_v1(directory: Path) -> float | None:
    try:
        quota = int((directory / "cpu.cfs_quota_us").read_text())
        period = int((directory / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None
