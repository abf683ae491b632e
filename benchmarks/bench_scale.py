"""Scale-out benchmark: the same photo job on the local runner and on Celery workers over Redis.

Both runs use this machine and the same number of worker processes, so the ratio is the overhead
of going distributed (broker round trips, a store write per item from another process, pub/sub).
Then a fault soak: repeated jobs with a random `corelane worker` SIGKILLed mid-job, counting lost
and duplicated items.

    python benchmarks/bench_scale.py [--quick]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import imaging_samples as samples  # noqa: E402
from scale_fixtures import WorkerProcess, wait_for  # noqa: E402
from servers import start_redis  # noqa: E402
from service_fixtures import ServerProcess  # noqa: E402

from benchmarks._report import machine, table, write_section  # noqa: E402
from corelane.engine._startmethod import available_cpus  # noqa: E402
from corelane.service.store import Store  # noqa: E402

WORKERS = available_cpus()


def finished_job(server: ServerProcess, job_id: str, timeout: float = 300) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        job = server.get(f"/api/jobs/{job_id}")
        return job if job["state"] in ("done", "failed", "cancelled") else None

    return dict(wait_for(done, timeout, f"job {job_id}", 0.05))


def run_job(server: ServerProcess, files: dict[str, bytes]) -> tuple[float, dict[str, Any]]:
    """Submit, wait; return the store's start-to-finish time and the job."""
    job = server.post_files(files)
    final = finished_job(server, job["id"])
    return final["finished_at"] - final["started_at"], final


def throughput(files: dict[str, bytes], repeat: int) -> list[list[str]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        local = ServerProcess(Path(tmp, "local"), workers=WORKERS).start()
        try:
            run_job(local, dict(list(files.items())[:2]))  # warm the pool
            local_s = statistics.median(run_job(local, files)[0] for _ in range(repeat))
            single = [run_job(local, {"one.jpg": files[next(iter(files))]})[0] for _ in range(5)]
        finally:
            local.stop()
        redis = start_redis()
        data = Path(tmp, "celery")
        web = ServerProcess(data, env={"CORELANE_BROKER_URL": redis.url}).start()
        worker = WorkerProcess(redis.url, data, "bench", concurrency=WORKERS)
        try:
            run_job(web, dict(list(files.items())[:2]))
            celery_s = statistics.median(run_job(web, files)[0] for _ in range(repeat))
            single_c = [run_job(web, {"one.jpg": files[next(iter(files))]})[0] for _ in range(5)]
        finally:
            worker.stop()
            web.stop()
            redis.stop()
    n = len(files)
    rows.append(["local runner (engine, in the web process)", f"{local_s:.2f}", f"{n / local_s:.1f}",
                 "1.00", f"{statistics.median(single) * 1000:.0f}"])
    rows.append([f"Celery runner (1 `corelane worker`, concurrency {WORKERS}, Redis)",
                 f"{celery_s:.2f}", f"{n / celery_s:.1f}", f"{local_s / celery_s:.2f}",
                 f"{statistics.median(single_c) * 1000:.0f}"])
    return rows


def soak(runs: int) -> list[str]:
    """Jobs with a random worker SIGKILLed mid-job: items lost or duplicated, over ``runs``."""
    lost = duplicated = completed = 0
    times = []
    rng = random.Random(7)
    files = {f"p{i}.jpg": samples.photo_jpeg(1600, 1200, seed=i) for i in range(16)}
    with tempfile.TemporaryDirectory() as tmp:
        redis = start_redis()
        data = Path(tmp, "data")
        web = ServerProcess(data, env={"CORELANE_BROKER_URL": redis.url,
                                       "CORELANE_VISIBILITY_TIMEOUT": "2"}).start()
        workers = [WorkerProcess(redis.url, data, f"w{i}", visibility_timeout=2) for i in range(2)]
        store = Store(f"sqlite:///{data / 'corelane.db'}")
        try:
            for run in range(runs):
                job = web.post_files(files)
                time.sleep(rng.uniform(0.1, 0.8))
                victim = rng.randrange(len(workers))
                workers[victim].kill()
                workers[victim] = WorkerProcess(redis.url, data, f"w{victim}-{run}",
                                                visibility_timeout=2)
                final = finished_job(web, job["id"], timeout=120)
                times.append(final["finished_at"] - final["started_at"])
                items = store.list_items(job["id"])
                lost += sum(1 for i in items if i["state"] != "done")
                keys = [o["key"] for i in items for o in (i["outputs"] or {}).values()]
                duplicated += len(keys) - len(set(keys))
                completed += final["state"] == "done" and final["done"] == len(files)
        finally:
            store.close()
            for w in workers:
                w.stop()
            web.stop()
            redis.stop()
    return [f"{runs} jobs x {len(files)} photos, one of 2 workers SIGKILLed at random in each",
            f"{completed}/{runs} jobs completed", f"{lost} lost, {duplicated} duplicated",
            f"{statistics.median(times):.1f} s median per job (visibility timeout 2 s)"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n, size = (12, (2000, 1500)) if args.quick else (40, (4000, 3000))
    files = {f"photo-{i}.jpg": samples.photo_jpeg(*size, seed=i) for i in range(n)}
    repeat = 1 if args.quick else 3
    rows = throughput(files, repeat)
    head = ["runner", "job s (median)", "images/s", "ratio to local", "1-image job ms (median)"]
    text = (f"## Scale-out: local runner vs Celery workers\n\nMachine: {machine()}. "
            f"{n} photos of {size[0]}x{size[1]} (12 MP when full), sizes 1024/512/128 WebP + "
            f"features, {WORKERS} worker processes either way; job time from the store's "
            f"start to finish, median of {repeat}.\n\n" + table(head, rows))
    print(text, flush=True)
    runs = 5 if args.quick else 20
    result = soak(runs)
    text += "\n\n### Fault soak\n\n" + "\n".join(f"- {line}" for line in result)
    print("\n".join(result))
    write_section("scale", text)


if __name__ == "__main__":
    main()
