"""Imaging benchmark: which library resizes 12 MP JPEGs fastest, and images/s of a 40-photo job.

Part 1 (one process, one library thread): per-image time to decode a 12 MP photo-like JPEG and
fit it to 1024 px, and to produce 1024/512/128, for plain Pillow, Pillow ``thumbnail()``, Pillow
with ``draft`` (shrink-on-load), pyvips ``thumbnail``, OpenCV ``IMREAD_REDUCED_*``; then the
encoders and the NumPy features.

Part 2: images/s of the whole job (read, decode, 3 sizes, WebP, features, write) on 40 photos:
a plain single-process Pillow loop, corelane with 1 worker and with all workers, and the
ceiling (the same per-image function over plain processes in balanced blocks, nothing returned).

    python benchmarks/bench_imaging.py [--quick]

The photos are generated into a temp dir at start (tests/imaging_samples.py). Part 2 runs first,
before OpenCV and pyvips are imported, so no library thread pool exists when workers fork.
"""

from __future__ import annotations

import argparse
import datetime
import io
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("VIPS_CONCURRENCY", "1")  # one library thread (read when pyvips loads)

import numpy as np  # noqa: E402
from PIL import Image, ImageOps  # noqa: E402

import corelane  # noqa: E402
from benchmarks._report import machine, median_time, table, write_section  # noqa: E402
from corelane.commands.images import _Task, process_file  # noqa: E402
from corelane.imaging import ImageLimits, ProcessOptions, process_image  # noqa: E402
from corelane.imaging import features as feat  # noqa: E402
from corelane.imaging.ops import fit  # noqa: E402
from tests import imaging_samples as samples  # noqa: E402

WORKERS = os.cpu_count() or 2
SIZES = (1024, 512, 128)
W, H = 4000, 3000  # 12 MP
CTX = mp.get_context("fork")


# ---------------------------------------------------------------- photos


def make_photo(args: tuple[int, str]) -> str:
    seed, path = args
    Path(path).write_bytes(samples.photo_jpeg(W, H, seed=seed, quality=90))
    return path


def generate(folder: Path, count: int, distinct: int) -> list[Path]:
    """``count`` files, ``distinct`` different pictures (copies under other names beyond that)."""
    originals = corelane.map(make_photo, [(s, str(folder / f"photo{s:02d}.jpg")) for s in range(distinct)])
    paths = [Path(p) for p in originals]
    for i in range(distinct, count):
        dst = folder / f"photo{i:02d}.jpg"
        dst.write_bytes(paths[i % distinct].read_bytes())
        paths.append(dst)
    return paths


# ---------------------------------------------------------------- part 2: the job


def plain_pillow_job(path: Path, out: Path) -> None:
    """What a straightforward script does: full decode, LANCZOS per size, Pillow's defaults."""
    with Image.open(path) as src:
        im = ImageOps.exif_transpose(src).convert("RGB")
    for edge in SIZES:
        small = im.resize(fit(im.width, im.height, edge), Image.Resampling.LANCZOS)
        small.save(out / f"{path.stem}_{edge}.webp", "WEBP", quality=85)


def _ceiling_worker(tasks: list[_Task]) -> None:
    for task in tasks:
        process_file(task)


def ceiling(tasks: list[_Task], n: int) -> None:
    blocks = [tasks[k * len(tasks) // n : (k + 1) * len(tasks) // n] for k in range(n)]
    procs = [CTX.Process(target=_ceiling_worker, args=(b,)) for b in blocks]
    for p in procs:
        p.start()
    for p in procs:
        p.join()


timed = median_time  # median wall time of fn() over `repeat` runs


def bench_job(paths: list[Path], out: Path, repeat: int) -> str:
    options = ProcessOptions(sizes=SIZES, format="webp", quality=85, features=True)
    tasks = [_Task(str(p), p.stem, str(out), options, ImageLimits()) for p in paths]
    n = len(paths)
    plain = timed(lambda: [plain_pillow_job(p, out) for p in paths], 1)
    # Interleaved rounds: on a shared machine, load drifts then hit every row alike.
    configs: dict[str, Callable[[], Any]] = {
        "ceil1": lambda: ceiling(tasks, 1),
        "one": lambda: corelane.map(process_file, tasks, workers=1),
        "ceiln": lambda: ceiling(tasks, WORKERS),
        "alln": lambda: corelane.map(process_file, tasks, workers=WORKERS),
    }
    samples_s: dict[str, list[float]] = {k: [] for k in configs}
    for _ in range(repeat):
        for key, fn in configs.items():
            samples_s[key].append(timed(fn, 1))
    ceil1, one, ceiln, alln = (statistics.median(samples_s[k]) for k in configs)
    rows = [
        ["plain Pillow loop (1 process: full decode, LANCZOS, WebP defaults)", plain, None],
        ["ceiling, 1 process (corelane's per-image function, no pool)", ceil1, None],
        ["corelane.map, workers=1", one, ceil1],
        [f"**ceiling, {WORKERS} processes** (hand split, balanced blocks)", ceiln, None],
        [f"corelane.map, workers={WORKERS}", alln, ceiln],
    ]
    body = [
        [name, f"{secs:.2f}", f"{n / secs:.2f}", f"{plain / secs:.2f}x",
         f"{ref / secs:.2f}" if ref else ""]
        for name, secs, ref in rows
    ]
    text = (
        f"### Job: {n} photos of 12 MP (read, decode, 1024/512/128 WebP q85, features, write)\n\n"
        + table(["row", "s", "images/s", "vs plain loop", "ratio to ceiling"], body)
        + f"\n\nPer-core speedup over the plain loop: **{plain / one:.2f}x** (corelane, 1 worker). "
        f"Scaling {WORKERS} workers vs 1: {one / alln:.2f}x "
        f"({one / alln / WORKERS:.0%} parallel efficiency); against the ceiling measured in the "
        f"same run: **{ceiln / alln:.0%}**. Rounds of the four parallel rows are interleaved, "
        "so that load from other processes on a shared machine hits them alike."
    )
    return text


# ---------------------------------------------------------------- part 1: libraries


def _cascade(im: Image.Image, w: int, h: int, edges: tuple[int, ...], resample: Any) -> list[Image.Image]:
    outs = []
    for edge in edges:
        im = im.resize(fit(w, h, edge), resample)
        outs.append(im)
    return outs


def pil_plain(data: bytes, edges: tuple[int, ...]) -> Any:
    im = Image.open(io.BytesIO(data)).convert("RGB")
    return [im.resize(fit(im.width, im.height, e), Image.Resampling.LANCZOS) for e in edges]


def pil_thumbnail(data: bytes, edges: tuple[int, ...]) -> Any:
    im = Image.open(io.BytesIO(data))
    im.thumbnail((edges[0], edges[0]))  # default reducing_gap=2.0
    outs = [im]
    for e in edges[1:]:
        im = im.copy()
        im.thumbnail((e, e))
        outs.append(im)
    return outs


def pil_draft(data: bytes, edges: tuple[int, ...], resample: Any = Image.Resampling.LANCZOS) -> Any:
    im = Image.open(io.BytesIO(data))
    w, h = im.size
    im.draft("RGB", fit(w, h, edges[0]))
    im.load()
    return _cascade(im, w, h, edges, resample)


def pil_draft_box(data: bytes, edges: tuple[int, ...]) -> Any:
    return pil_draft(data, edges, Image.Resampling.BOX)


def vips_thumbnail(data: bytes, edges: tuple[int, ...]) -> Any:
    import pyvips

    im = pyvips.Image.thumbnail_buffer(data, edges[0]).copy_memory()  # decoded once, kept
    outs = [im.write_to_memory()]
    for e in edges[1:]:
        im = im.thumbnail_image(e)
        outs.append(im.write_to_memory())
    return outs


def cv_reduced(data: bytes, edges: tuple[int, ...]) -> Any:
    import cv2

    # Header size from Pillow (cheap), to pick the largest reduction that stays >= the target.
    w, h = Image.open(io.BytesIO(data)).size
    factor = 1
    while factor < 8 and max(w, h) // (factor * 2) >= edges[0]:
        factor *= 2
    flag = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
            8: cv2.IMREAD_REDUCED_COLOR_8}[factor]
    im = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    outs = []
    for e in edges:
        im = cv2.resize(im, fit(w, h, e), interpolation=cv2.INTER_AREA)
        outs.append(im)
    return outs


LIBRARIES: list[tuple[str, Callable[[bytes, tuple[int, ...]], Any]]] = [
    ("plain Pillow (full decode, LANCZOS per size)", pil_plain),
    ("Pillow thumbnail() (default reducing_gap)", pil_thumbnail),
    ("Pillow draft + LANCZOS cascade", pil_draft),
    ("Pillow draft + BOX (area) cascade — **corelane**", pil_draft_box),
    ("pyvips thumbnail_buffer + thumbnail_image", vips_thumbnail),
    ("OpenCV IMREAD_REDUCED_* + INTER_AREA cascade", cv_reduced),
]


def per_image_ms(fn: Callable[[bytes], Any], datas: list[bytes], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        for data in datas:
            t0 = time.perf_counter()
            fn(data)
            times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def bench_libraries(datas: list[bytes], repeat: int) -> str:
    import cv2
    import pyvips

    cv2.setNumThreads(1)
    pyvips.cache_set_max(0)
    rows = []
    for name, fn in LIBRARIES:
        r = repeat if "plain" not in name else 1
        fit_ms = per_image_ms(lambda d, fn=fn: fn(d, SIZES[:1]), datas, r)
        three_ms = per_image_ms(lambda d, fn=fn: fn(d, SIZES), datas, r)
        rows.append([name, f"{fit_ms:.0f}", f"{three_ms:.0f}"])
    text = (
        "### Decode + resize of one 12 MP JPEG (one process, one library thread; ms, median)\n\n"
        + table(["library", "fit 1024 px", "1024 + 512 + 128"], rows)
    )

    # Encoders and features, on the outputs of one photo.
    outs = pil_draft_box(datas[0], SIZES)

    def encode(fmt: str, **kw: Any) -> Callable[[bytes], Any]:
        def run(_: bytes) -> None:
            for im in outs:
                im.save(io.BytesIO(), fmt, **kw)
        return run

    small = np.asarray(outs[1].resize(fit(*outs[1].size, 256), Image.Resampling.BOX))
    opts = ProcessOptions(sizes=SIZES, format="webp", quality=85, features=True)
    enc_rows = [
        ["WebP q85, libwebp method 4 (Pillow's default)", encode("WEBP", quality=85, method=4)],
        ["WebP q85, method 2 — **corelane**", encode("WEBP", quality=85, method=2)],
        ["JPEG q85", encode("JPEG", quality=85)],
        ["NumPy features on the 256 px copy", lambda _: feat.extract(small)],
        ["corelane process_image, whole (3 sizes, WebP, features)",
         lambda d: process_image(d, opts)],
    ]
    sizes = {
        m: sum(len(_save(im, "WEBP", quality=85, method=m)) for im in outs) for m in (4, 2)
    }
    text += "\n\n### Encoding the three outputs, features, and the whole per-image call (ms)\n\n"
    text += table(
        ["step", "ms"],
        [[name, f"{per_image_ms(fn, datas, repeat):.1f}"] for name, fn in enc_rows],
    )
    text += (
        f"\n\nWebP bytes for the three outputs: method 4 {sizes[4]:,}, method 2 {sizes[2]:,} "
        f"({sizes[2] / sizes[4] - 1:+.1%})."
    )
    return text


def _save(im: Image.Image, fmt: str, **kw: Any) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer photos, fewer repeats")
    args = parser.parse_args()
    count, distinct, repeat = (12, 4, 1) if args.quick else (40, 8, 3)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="corelane-bench-img-") as tmp:
        folder, out = Path(tmp) / "in", Path(tmp) / "out"
        folder.mkdir()
        out.mkdir()
        paths = generate(folder, count, distinct)
        mb = sum(p.stat().st_size for p in paths[:distinct]) / distinct / 2**20
        print(f"generated {count} photos ({mb:.1f} MB each) in {time.perf_counter() - started:.0f} s",
              flush=True)
        job = bench_job(paths, out, repeat)
        print(job, flush=True)
        libs = bench_libraries([p.read_bytes() for p in paths[: min(distinct, 4)]], repeat)
        print(libs, flush=True)
    today = datetime.date.today().isoformat()
    text = (
        "## Imaging\n\n"
        f"Machine: {machine()}; {WORKERS} workers; photo-like 12 MP JPEGs (4000x3000, q90, "
        f"~{mb:.1f} MB) generated by tests/imaging_samples.py; medians of {repeat} run(s), {today}. "
        f"Whole benchmark: {time.perf_counter() - started:.0f} s. "
        "Written by `benchmarks/bench_imaging.py`; the choice it supports is explained in "
        "docs/imaging.md.\n\n" + job + "\n\n" + libs
    )
    if args.quick:
        print("(--quick: docs/benchmarks.md left unchanged)")
    else:
        write_section("imaging", text)


if __name__ == "__main__":
    main()
