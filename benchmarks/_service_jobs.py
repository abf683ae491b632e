"""The service benchmark's job measures (benchmarks/bench_service.py runs them):

- fairness: a 1-image job submitted behind a running 400-image job, on 2 workers (issue 14.6);
- upload cost: the web process's CPU per 100 MB uploaded, through a real gunicorn, and the
  multipart readers side by side in one process (the choice, issue 14.7);
- end to end: the service (upload included) against ``corelane images`` on the same photos.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks._report import ROOT

Server = tuple[subprocess.Popen[bytes], int]


# What Chromium's FormData sends (the page uploads this way): "----WebKitFormBoundary" and 16
# random letters and digits. curl's and urllib3's are as long (40 and 32 characters). The reader's
# scan for the delimiter is faster the longer it is, so a short made-up boundary would overstate
# its cost (14 characters: ~2x the scan's CPU).
BOUNDARY = "----WebKitFormBoundary7MA4YWxkTrZu0gW"


def multipart(files: dict[str, bytes], **fields: str) -> tuple[bytes, str]:
    boundary = BOUNDARY
    body = b"".join(
        (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{n}\"\r\n"
         "Content-Type: application/octet-stream\r\n\r\n").encode() + data + b"\r\n"
        for n, data in files.items())
    body += b"".join(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n"
                     f"{v}\r\n".encode() for k, v in fields.items())
    body += f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def _call(port: int, method: str, path: str, body: bytes | None = None,
          ctype: str | None = None) -> Any:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": ctype} if ctype else {})
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def _post(port: int, files: dict[str, bytes]) -> dict[str, Any]:
    body, ctype = multipart(files)
    return dict(_call(port, "POST", "/api/jobs", body, ctype))


def _wait(port: int, job_id: str, states: tuple[str, ...] = ("done", "failed", "cancelled"),
          timeout: float = 600.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = dict(_call(port, "GET", f"/api/jobs/{job_id}"))
        if job["state"] in states or time.monotonic() > deadline:
            return job
        # Gently: the times come from the server's own stamps (finished_at), and every poll
        # costs the service CPU that its workers would use (2 cores here).
        time.sleep(0.1)


def fairness(start: Callable[..., Server], photo: bytes, n_big: int = 400,
             tries: int = 3) -> dict[str, Any]:
    """Post a 1-image job ``tries`` times while an ``n_big``-image job runs on 2 workers; each
    one's time from the POST to its ``finished_at``, and the big job's images done meanwhile."""
    proc, port = start(workers=2)
    try:
        big = _post(port, {f"big{i:03d}.jpg": photo for i in range(n_big)})
        _wait(port, big["id"], ("running",))
        times, overtaken = [], []
        for k in range(tries):
            while _call(port, "GET", f"/api/jobs/{big['id']}")["done"] < 4 * (k + 1):
                time.sleep(0.02)
            before = _call(port, "GET", f"/api/jobs/{big['id']}")["done"]
            t0 = time.time()
            small = _post(port, {f"small{k}.jpg": photo})
            done = _wait(port, small["id"])
            assert done["state"] == "done", done
            times.append(done["finished_at"] - t0)
            overtaken.append(_call(port, "GET", f"/api/jobs/{big['id']}")["done"] - before)
        left = _call(port, "GET", f"/api/jobs/{big['id']}")
        assert left["state"] == "running", "the big job ended before the measures"
        _call(port, "POST", f"/api/jobs/{big['id']}/cancel")
        return {"times": times, "big_done_meanwhile": overtaken, "big_total": n_big}
    finally:
        stop(proc)


def _web_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and its children, to the nanosecond where Linux
    says it (each thread's schedstat; psutil's times tick in 10 ms, ~0.02 s per 100 MB here)."""
    import psutil

    procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    total = 0.0
    for proc in procs:
        try:
            for tid in os.listdir(f"/proc/{proc.pid}/task"):
                with open(f"/proc/{proc.pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0]) / 1e9
        except (OSError, ValueError, IndexError):
            total += sum(proc.cpu_times()[:2])
    return total


def upload_cost(start: Callable[..., Server], files: dict[str, bytes], rounds: int = 7,
                places: dict[str, Path | None] | None = None) -> dict[str, Any]:
    """CPU of the web process (gunicorn and the app; no runner, so nothing else runs) per
    100 MB uploaded, and the upload's wall time per 100 MB: one server per data-dir place
    (``None``: the benchmark's temp folder), their rounds interleaved; medians."""
    body, ctype = multipart(files)
    places = places or {"default": None}
    servers = {name: start(workers=1, run_jobs=False, data_dir=where)
               for name, where in places.items()}
    try:
        cpu: dict[str, list[float]] = {name: [] for name in servers}
        wall: dict[str, list[float]] = {name: [] for name in servers}
        for _proc, port in servers.values():  # one upload each first: imports, the fan-out
            _call(port, "POST", "/api/jobs", body, ctype)
        for _ in range(rounds):
            for name, (proc, port) in servers.items():
                before = _web_cpu(proc.pid)
                t0 = time.perf_counter()
                _call(port, "POST", "/api/jobs", body, ctype)
                wall[name].append(time.perf_counter() - t0)
                cpu[name].append(_web_cpu(proc.pid) - before)
        per = 1e8 / len(body)
        return {"mb": len(body) / 1e6, "rounds": rounds,
                "cpu_per_100mb": {k: statistics.median(v) * per for k, v in cpu.items()},
                "cpu_min_per_100mb": {k: min(v) * per for k, v in cpu.items()},
                "wall_per_100mb": {k: statistics.median(v) * per for k, v in wall.items()}}
    finally:
        for proc, _port in servers.values():
            stop(proc)


def parser_choice(files: dict[str, bytes], rounds: int = 5) -> list[tuple[str, float]]:
    """Each candidate reads the same body from memory and writes the files to disk: CPU seconds
    per 100 MB (best of ``rounds``). The sockets are left out: the same for every candidate."""
    from werkzeug.formparser import MultiPartParser
    from werkzeug.wrappers import Request

    from corelane.service._multipart import BUFFER_BYTES, read_multipart

    body, ctype = multipart(files)
    boundary = ctype.split("boundary=")[1].encode()
    root = Path(tempfile.mkdtemp(prefix="corelane-parse-", dir=ROOT / "benchmarks"))
    count = [0]

    def fresh(suffix: str = "") -> Path:
        count[0] += 1
        return root / f"f{count[0]}{suffix}"

    def before() -> None:  # the old path: spooled by werkzeug, read back, written again
        env = {"REQUEST_METHOD": "POST", "CONTENT_TYPE": ctype, "CONTENT_LENGTH": str(len(body)),
               "wsgi.input": io.BytesIO(body)}
        for f in Request(env).files.getlist("files"):
            data = f.stream.read()
            tmp = fresh(".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, fresh())

    def factory(*_args: Any, **_kw: Any) -> Any:
        return open(fresh(), "wb+")  # noqa: SIM115 (werkzeug keeps it)

    def werkzeug(buffer: int) -> Callable[[], None]:
        def run() -> None:
            MultiPartParser(stream_factory=factory, buffer_size=buffer).parse(
                io.BytesIO(body), boundary, len(body))
        return run

    def ours() -> None:
        stream = io.BytesIO(body)
        _, parts = read_multipart(stream.readinto, boundary, lambda _n, _f: open(fresh(), "wb"),  # noqa: SIM115
                                  max_field_bytes=500_000, max_parts=2000)
        for _name, _filename, sink in parts:
            sink.close()

    def floor() -> None:  # no parsing at all: only the writes every reader must make
        for data in files.values():
            with open(fresh(), "wb") as f:
                f.write(data)

    candidates: dict[str, Callable[[], None]] = {
        "(floor: the files written, no parsing)": floor,
        "before: werkzeug (spooled temp file), read back, written again": before,
        "werkzeug, stream_factory to the final file, 64 KiB reads": werkzeug(64 * 1024),
        "werkzeug, stream_factory, 1 MiB reads": werkzeug(1 << 20),
        f"ours (corelane/service/_multipart.py), {BUFFER_BYTES >> 10} KiB reads": ours,
    }
    try:
        from streaming_form_data import StreamingFormDataParser
        from streaming_form_data.targets import BaseTarget

        class _Files(BaseTarget):
            def on_start(self) -> None:
                self.f = open(fresh(), "wb")  # noqa: SIM115

            def on_data_received(self, chunk: bytes) -> None:
                self.f.write(chunk)

            def on_finish(self) -> None:
                self.f.close()

        def sfd() -> None:
            parser = StreamingFormDataParser(headers={"Content-Type": ctype})
            parser.register("files", _Files())
            stream = io.BytesIO(body)
            while chunk := stream.read(64 * 1024):
                parser.data_received(chunk)

        candidates["streaming-form-data 2.x (Cython), 64 KiB reads"] = sfd
    except ImportError:
        pass
    out = []
    try:
        for name, fn in candidates.items():
            best = float("inf")
            for _ in range(rounds):
                t = time.process_time()
                fn()
                best = min(best, time.process_time() - t)
                shutil.rmtree(root)
                root.mkdir()
            out.append((name, best * 1e8 / len(body)))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return out


def end_to_end(start: Callable[..., Server], files: dict[str, bytes], workers: int,
               rounds: int = 2) -> dict[str, Any]:
    """``corelane images`` on the files (the whole command) against the service (POST with the
    files, to the job's ``finished_at``) on a running server; best of ``rounds`` each, the two
    alternating so both see the same machine."""
    tmp = Path(tempfile.mkdtemp(prefix="corelane-e2e-", dir=ROOT / "benchmarks"))
    src = tmp / "in"
    src.mkdir()
    for name, data in files.items():
        (src / name).write_bytes(data)
    proc, port = start(workers=workers)
    try:
        # A server is long-lived: every worker has run an image (imports, the face model) before.
        first = next(iter(files.values()))
        _wait(port, _post(port, {f"warm{i}.jpg": first for i in range(2 * workers)})["id"])
        cli, cli_inner, service = [], [], []
        for k in range(rounds):
            out = tmp / f"out{k}"
            t0 = time.perf_counter()
            said = subprocess.run(
                [sys.executable, "-m", "corelane", "images", str(src), "--out", str(out),
                 "--workers", str(workers), "--features", str(tmp / f"f{k}.jsonl"), "--quiet"],
                cwd=ROOT, check=True, capture_output=True, text=True).stdout
            cli.append(time.perf_counter() - t0)
            # "processed 40 of 40 images (0 failed) in 3.1 s, ...": its own clock, after start-up
            cli_inner.append(float(said.split(" in ", 1)[1].split(" s", 1)[0]))
            t0 = time.time()
            job = _wait(port, _post(port, files)["id"])
            assert job["state"] == "done" and job["done"] == len(files), job
            service.append(job["finished_at"] - t0)
        return {"n": len(files), "cli_s": min(cli), "cli_inner_s": min(cli_inner),
                "service_s": min(service), "ratio": min(cli) / min(service),
                "ratio_inner": min(cli_inner) / min(service)}
    finally:
        stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
