"""corelane.cpu_count(): affinity and the cgroup CPU quota (v2 ``cpu.max``, v1 CFS files).

Most cases build a small cgroup tree in tmp_path (mountinfo, /proc/self/cgroup and the quota
files) and point the reader at it; one creates a real cgroup v1/v2 group with a quota and runs a
child process in it, skipped where this process may not create cgroups.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import corelane
from corelane.engine import _cpus

AFFINITY = len(os.sched_getaffinity(0))


def _fake_v2(tmp_path: Path, group: str, files: dict[str, str]) -> tuple[str, str]:
    """A cgroup2 mount at tmp_path/cg2; ``files`` maps a group path to its cpu.max text."""
    mount = tmp_path / "cg2"
    for path, text in files.items():
        directory = mount / path.strip("/")
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "cpu.max").write_text(text)
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "22 1 0:21 / /proc rw,nosuid - proc proc rw\n"
        f"35 25 0:30 / {mount} rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw\n"
    )
    cgroup = tmp_path / "cgroup"
    cgroup.write_text(f"0::{group}\n")
    return str(mountinfo), str(cgroup)


def _fake_v1(tmp_path: Path, quota: str, period: str) -> tuple[str, str]:
    mount = tmp_path / "cpu,cpuacct"
    directory = mount / "docker" / "abc"
    directory.mkdir(parents=True)
    (directory / "cpu.cfs_quota_us").write_text(quota + "\n")
    (directory / "cpu.cfs_period_us").write_text(period + "\n")
    (mount / "cpu.cfs_quota_us").write_text("-1\n")
    (mount / "cpu.cfs_period_us").write_text("100000\n")
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        f"40 30 0:35 / {mount} rw,relatime shared:15 - cgroup cgroup rw,cpu,cpuacct\n"
        f"41 30 0:36 / {tmp_path / 'memory'} rw,relatime shared:16 - cgroup cgroup rw,memory\n"
    )
    cgroup = tmp_path / "cgroup"
    cgroup.write_text("5:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/\n")
    return str(mountinfo), str(cgroup)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("50000 100000", 0.5), ("250000 100000", 2.5), ("max 100000", None), ("garbage", None),
     ("0 100000", None)],
)
def test_v2_cpu_max_is_read(tmp_path: Path, text: str, expected: float | None) -> None:
    paths = _fake_v2(tmp_path, "/app", {"/app": text})
    assert _cpus.cgroup_cpu_quota(*paths) == expected


def test_v2_a_parent_limit_binds_the_child(tmp_path: Path) -> None:
    paths = _fake_v2(tmp_path, "/a/b", {"/": "max 100000", "/a": "100000 100000",
                                        "/a/b": "300000 100000"})
    assert _cpus.cgroup_cpu_quota(*paths) == 1.0


def test_v2_group_outside_the_mount_reads_the_mount_root(tmp_path: Path) -> None:
    # In a cgroup namespace the mount's root is the container's own group.
    paths = _fake_v2(tmp_path, "/", {"/": "150000 100000"})
    assert _cpus.cgroup_cpu_quota(*paths) == 1.5


@pytest.mark.parametrize(("quota", "period", "expected"),
                         [("150000", "100000", 1.5), ("-1", "100000", None)])
def test_v1_cfs_files_are_read(tmp_path: Path, quota: str, period: str,
                               expected: float | None) -> None:
    assert _cpus.cgroup_cpu_quota(*_fake_v1(tmp_path, quota, period)) == expected


def test_missing_files_mean_no_limit(tmp_path: Path) -> None:
    assert _cpus.cgroup_cpu_quota(str(tmp_path / "nope"), str(tmp_path / "nope")) is None


def _point_reader_at(monkeypatch: pytest.MonkeyPatch, paths: tuple[str, str]) -> None:
    monkeypatch.setattr(_cpus, "MOUNTINFO", paths[0])
    monkeypatch.setattr(_cpus, "PROC_CGROUP", paths[1])


def test_cpu_count_is_the_smaller_of_affinity_and_quota(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _point_reader_at(monkeypatch, _fake_v2(tmp_path, "/app", {"/app": "50000 100000"}))
    assert corelane.cpu_count() == 1  # half a CPU still needs one worker
    (tmp_path / "cg2" / "app" / "cpu.max").write_text("6400000 100000")
    assert corelane.cpu_count() == AFFINITY  # a quota above the affinity mask changes nothing


def test_pool_default_size_follows_the_quota(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _point_reader_at(monkeypatch, _fake_v2(tmp_path, "/app", {"/app": "100000 100000"}))
    with corelane.Pool() as pool:
        assert pool.workers == 1
        assert pool.submit(pow, 2, 10).result(timeout=30) == 1024


def test_cpu_count_without_quota_is_the_affinity_mask() -> None:
    if _cpus.cgroup_cpu_quota() is None:
        assert corelane.cpu_count() == AFFINITY
    else:
        assert 1 <= corelane.cpu_count() <= AFFINITY


_CHILD = "import corelane; print(corelane.cpu_count(), corelane.Pool(start_method='fork').workers)"


def _real_cpu_group(name: str) -> tuple[Path, str, str] | None:
    """A new cgroup with a 1-CPU quota: (its directory, quota file, text), or None if refused."""
    candidates = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        tail = right.split()
        if tail and tail[0] == "cgroup" and len(tail) >= 3 and "cpu" in tail[2].split(","):
            candidates.append((Path(left.split()[4]), "cpu.cfs_quota_us", "100000"))
        elif tail and tail[0] == "cgroup2":
            candidates.append((Path(left.split()[4]), "cpu.max", "100000 100000"))
    for mount, quota_file, text in candidates:
        directory = mount / name
        try:
            directory.mkdir()
        except OSError:
            continue
        try:
            if quota_file == "cpu.cfs_quota_us":
                (directory / "cpu.cfs_period_us").write_text("100000")
            (directory / quota_file).write_text(text)
            return directory, quota_file, text
        except OSError:
            directory.rmdir()
    return None


def test_a_real_cgroup_quota_sizes_the_pool() -> None:
    if AFFINITY < 2:
        pytest.skip("needs 2 CPUs to tell a 1-CPU quota from the affinity mask")
    made = _real_cpu_group(f"corelane-test-{os.getpid()}")
    if made is None:
        pytest.skip("not permitted to create a cgroup with a CPU quota here")
    directory, _, _ = made
    try:
        # The shell joins the group, then becomes the Python child: only it runs under the quota.
        script = f'echo $$ > "{directory}/cgroup.procs" && exec "{sys.executable}" -c "{_CHILD}"'
        done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=60)
        if done.returncode != 0 and "cgroup.procs" in done.stderr:
            pytest.skip(f"cannot move a process into the cgroup: {done.stderr.strip()}")
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["1", "1"]
    finally:
        directory.rmdir()
