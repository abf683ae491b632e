"""Issue 12, points 10-13: the ``corelane`` command as a person meets it, run as a real
subprocess: Ctrl-C in ``corelane images`` (SIGINT to its process group, as a terminal sends it),
FAILED lines that do not run into the bar, a missing input path, and the help texts."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import imaging_samples as samples
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _corelane(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "corelane", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def _group_gone(pgid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    return False


def test_ctrl_c_prints_one_line_and_exits_130(tmp_path: Path) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for i in range(12):
        (src / f"p{i:02d}.jpg").write_bytes(samples.photo_jpeg(1600, 1200, seed=i))
    proc = subprocess.Popen(
        [sys.executable, "-m", "corelane", "images", str(src), "--out", str(out), "--workers",
         "1", "--sizes", "1024,512", "--quiet"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        # Three images written: interrupt mid-batch. (At two, a loaded machine could deliver
        # the interrupt before the parent had taken in the first result: "0 of 12 done".)
        while len(list(out.glob("*.webp"))) < 6:
            assert proc.poll() is None and time.monotonic() < deadline, proc.returncode
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, stderr
    assert stdout == ""
    [line] = stderr.splitlines()
    match = re.fullmatch(rf"interrupted: (\d+) of 12 done, outputs so far in {re.escape(str(out))}",
                         line)
    assert match, line
    done = int(match.group(1))
    assert 1 <= done < 12
    # The outputs of the images counted as done are all there, complete.
    assert len([p for p in out.iterdir() if not p.name.startswith(".")]) >= 2 * done
    assert _group_gone(proc.pid), "a worker outlived the interrupted command"


def _run_with_stderr(args: list[str], tty: bool) -> tuple[int, str, str]:
    """Run ``corelane`` with stderr a pipe, or a pseudo-terminal as in an interactive shell."""
    cmd = [sys.executable, "-m", "corelane", *args]
    if not tty:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
        return proc.returncode, proc.stdout, proc.stderr
    import pty

    master, slave = pty.openpty()
    import fcntl
    import struct
    import termios

    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))  # 100 columns
    child = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=slave, text=True)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    stdout = child.stdout.read() if child.stdout else ""
    child.wait(60)
    if child.stdout:
        child.stdout.close()
    return child.returncode, stdout, b"".join(chunks).decode().replace("\r\n", "\n")


@pytest.mark.parametrize("tty", [False, True], ids=["piped", "terminal"])
def test_failed_lines_do_not_run_into_the_progress_bar(tmp_path: Path, tty: bool) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        (src / f"ok{i}.jpg").write_bytes(samples.photo_jpeg(400, 300, seed=i))
    for name in ("bad1.jpg", "bad2.jpg"):
        (src / name).write_bytes(samples.text_file())
    code, stdout, stderr = _run_with_stderr(
        ["images", str(src), "--out", str(tmp_path / "out"), "--workers", "2", "--sizes", "64"],
        tty)  # the bar on
    assert code == 1
    failed_lines = [line for line in stderr.split("\n") if "FAILED" in line]
    assert len(failed_lines) == 2, stderr
    for line in failed_lines:
        # What a terminal shows is the text after the last carriage return; before it the bar
        # was wiped (spaces only, or tqdm's erase-line escape), so FAILED starts its own line.
        *before, shown = line.split("\r")
        assert shown.startswith("FAILED ") and "not an image" in shown, repr(line)
        assert not before or before[-1].replace("\x1b[A", "").strip() == "", repr(line)
    assert "processed 3 of 5 images (2 failed)" in stdout


def test_a_missing_input_says_so_exits_2_and_creates_nothing(tmp_path: Path) -> None:
    good = tmp_path / "a.jpg"
    good.write_bytes(samples.photo_jpeg(64, 48))
    out = tmp_path / "out"
    proc = _corelane("images", str(good), str(tmp_path / "nope.jpg"), "--out", str(out))
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"corelane images: {tmp_path / 'nope.jpg'}: no such file or directory",
        "corelane images: nothing was processed"]
    assert proc.stdout == "" and not out.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = _corelane("images", str(empty), "--out", str(out))
    assert proc.returncode == 2 and "no image file in" in proc.stderr and not out.exists()


def test_help_version_and_defaults() -> None:
    top = _corelane("--help")
    assert top.returncode == 0
    assert "``" not in top.stdout and "hands them to one command module" not in top.stdout
    assert "corelane COMMAND --help" in top.stdout
    for name in ("serve", "images", "demo"):
        assert re.search(rf"^\s+{name}\s+\S", top.stdout, re.M), name
    version = _corelane("--version")
    from corelane import __version__

    assert version.returncode == 0 and version.stdout.strip() == f"corelane {__version__}"
    images = _corelane("images", "--help").stdout
    flat = " ".join(images.split())
    assert "(default: 1024,512,128)" in flat and "(default: webp)" in flat
    assert "(default: 85)" in flat and "(default: None)" not in flat
    serve = " ".join(_corelane("serve", "--help").stdout.split())
    assert "--allowed-host NAME" in serve and "--keep-days DAYS" in serve
    assert "(default 8000)" in serve and "(default: None)" not in serve
