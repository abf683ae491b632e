"""``corelane images``: resize a batch of image files on all cores, with a progress bar.

    corelane images photos/ extra.png --out thumbs [--sizes 1024,512,128 --format webp
                    --quality 85 --crops 1:1,16:9 --resize fast|quality
                    --features features.jsonl --workers N --cluster ADDRESS]

Each worker reads its file, runs :func:`corelane.imaging.process_image` and writes the outputs
itself (``<stem>_<size>.<ext>``, the stem sanitized and made unique), so only a small summary
crosses back to this process. A bad input is reported and counted; the others still run; the
exit status is 1 when any input failed. Directories are walked for image-like file names; a file
named on the command line is always tried (its format is read from its content either way).

Exit status: 0 all done, 1 some image failed, 2 bad usage (an input path that does not exist,
no image found, a malformed option: nothing is created), 130 interrupted (Ctrl-C; the outputs
written so far stay, the line printed says how many).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Extensions picked up when walking a directory (files named explicitly are always tried).
WALK_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"}
)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``corelane images``."""
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or directories")
    parser.add_argument("--out", required=True, metavar="DIR", help="directory for the outputs")
    parser.add_argument("--sizes", default="1024,512,128", help="long-edge sizes, comma-separated")
    parser.add_argument("--format", default="webp",
                        choices=["webp", "jpeg", "jpg", "png", "avif"], help="output format")
    parser.add_argument("--quality", type=int, default=85,
                        help="1..100 for WebP, JPEG and AVIF (PNG is lossless)")
    parser.add_argument("--crops", default="", metavar="W:H,...",
                        help="also fixed-aspect crops around the focal point (faces first), "
                             "e.g. 1:1,16:9, one per size: <stem>_16x9_<size>.<ext>")
    parser.add_argument("--resize", default="fast", choices=["fast", "quality"],
                        help="resize filter: fast (box) or quality (Lanczos on the last step, "
                             "slower)")
    parser.add_argument(
        "--features", metavar="FILE", help="also compute features, one JSON line per image"
    )
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    parser.add_argument("--cluster", metavar="ADDRESS", default=None,
                        help="run on a Dask cluster (tcp://HOST:8786) instead of local cores; "
                             "inputs and --out must be paths every worker can reach")
    parser.add_argument(
        "--max-pixels", type=int, default=None, help="pixel cap per image (default 89,478,485)"
    )
    parser.add_argument(
        "--max-bytes", type=int, default=None, help="byte cap per input file (default 50 MiB)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def safe_stem(path: str | os.PathLike[str]) -> str:
    """A file-name stem safe on any file system: ASCII letters, digits, ``._-`` only."""
    stem = Path(path).stem
    ascii_stem = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode()
    cleaned = _UNSAFE.sub("_", ascii_stem).strip("._-")[:80]
    return cleaned or "image"


def unique_stems(paths: list[Path]) -> list[str]:
    """Safe stems for ``paths``, suffixed ``-2``, ``-3`` ... where they would collide."""
    seen: dict[str, int] = {}
    stems = []
    for path in paths:
        stem = safe_stem(path)
        key = stem.lower()  # case-insensitive file systems collide too
        seen[key] = seen.get(key, 0) + 1
        stems.append(stem if seen[key] == 1 else f"{stem}-{seen[key]}")
    return stems


def collect_inputs(inputs: list[str]) -> tuple[list[Path], list[str]]:
    """Expand directories (sorted, recursive); return (files, missing inputs)."""
    files: list[Path] = []
    missing: list[str] = []
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            for root, dirs, names in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for fname in sorted(names):
                    if not fname.startswith(".") and Path(fname).suffix.lower() in WALK_EXTENSIONS:
                        files.append(Path(root) / fname)
        elif path.is_file():
            files.append(path)
        else:
            missing.append(name)
    return files, missing


@dataclass(frozen=True)
class _Task:
    path: str
    stem: str
    out: str
    options: Any  # ProcessOptions
    limits: Any  # ImageLimits


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def process_file(task: _Task) -> dict[str, Any]:
    """Worker side: read, process, write outputs; return a small JSON-able summary."""
    from corelane.errors import BadImage
    from corelane.imaging import process_image

    size = os.path.getsize(task.path)
    if size > task.limits.max_bytes:
        raise BadImage(f"input is {size:,} bytes, over the {task.limits.max_bytes:,}-byte limit")
    with open(task.path, "rb") as fh:
        data = fh.read()
    result = process_image(data, task.options, task.limits)
    out = Path(task.out)
    written: dict[str, str] = {}
    for edge in task.options.sizes:
        name = f"{task.stem}_{edge}.{result.extension}"
        _write(out / name, result.outputs[edge])
        written[str(edge)] = name
    crops: dict[str, dict[str, str]] = {}
    for label, by_size in result.crops.items():
        tag = label.replace(":", "x")  # no colons in file names (Windows, macOS Finder)
        crops[label] = {}
        for edge in task.options.sizes:
            name = f"{task.stem}_{tag}_{edge}.{result.extension}"
            _write(out / name, by_size[edge])
            crops[label][str(edge)] = name
    return {
        "input": task.path,
        "outputs": written,
        "crops": crops,
        "focal": result.focal,
        "width": result.width,
        "height": result.height,
        "format": result.format,
        "features": result.features,
    }


def _reason(failure: Any) -> str:
    exc = failure.exception
    cause = getattr(exc, "exception", None) or exc.__cause__
    if cause is not None:
        if isinstance(cause, OSError):
            return f"cannot read the file: {cause.strerror or cause}"
        return str(cause)
    return str(exc).split("\n\n", 1)[0]


def run(args: argparse.Namespace) -> int:
    """Process every input; print a summary; 0 if all succeeded, 1 if any failed, 2 on bad usage."""
    from corelane.imaging import ImageLimits, ProcessOptions
    from corelane.imaging.options import parse_crops

    try:
        options = ProcessOptions(
            sizes=args.sizes, format=args.format, quality=args.quality,
            features=args.features is not None, crops=parse_crops(args.crops),
            resize=args.resize,
        )
        limit_args = {"max_pixels": args.max_pixels, "max_bytes": args.max_bytes}
        limits = ImageLimits(**{k: v for k, v in limit_args.items() if v is not None})
        if args.workers is not None and args.workers < 1:
            raise ValueError(f"--workers must be at least 1, got {args.workers}")
    except ValueError as exc:
        print(f"corelane images: {exc}", file=sys.stderr)
        return 2

    files, missing = collect_inputs(args.inputs)
    if missing:
        for name in missing:
            print(f"corelane images: {name}: no such file or directory", file=sys.stderr)
        print("corelane images: nothing was processed", file=sys.stderr)
        return 2
    if not files:
        print(f"corelane images: no image file in {' '.join(args.inputs)} (looked for "
              f"{', '.join(sorted(WALK_EXTENSIONS))})", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tasks = [
        _Task(str(path), stem, str(out), options, limits)
        for path, stem in zip(files, unique_stems(files), strict=True)
    ]
    return _process(tasks, out, args)


def _process(tasks: list[_Task], out: Path, args: argparse.Namespace) -> int:
    from tqdm import tqdm

    import corelane

    started = time.perf_counter()
    done = failed = 0
    try:
        results = corelane.imap_unordered(process_file, tasks, workers=args.workers,
                                          progress=not args.quiet, errors="return",
                                          cluster=args.cluster)
    except (corelane.errors.Broken, ImportError) as exc:  # no cluster there, or no Dask here
        print(f"corelane images: {exc}", file=sys.stderr)
        return 2
    features_fh = open(args.features, "w", encoding="utf-8") if args.features else None  # noqa: SIM115
    try:
        for item in results:
            if isinstance(item, corelane.Failure):
                failed += 1
                # Through the bar, so the line does not run into it (a TTY or a pipe alike).
                tqdm.write(f"FAILED {item.item.path}: {_reason(item)}", file=sys.stderr)
                continue
            done += 1
            if features_fh is not None:
                record = {k: item[k] for k in ("input", "outputs")} | (item["features"] or {})
                if item["crops"]:
                    record["crops"] = item["crops"]
                features_fh.write(json.dumps(record) + "\n")
    except KeyboardInterrupt:
        _stop(results)
        for bar in list(getattr(tqdm, "_instances", ())):
            bar.close()
        print(f"interrupted: {done} of {len(tasks)} done, outputs so far in {out}",
              file=sys.stderr, flush=True)
        return 130
    finally:
        if features_fh is not None:
            features_fh.close()
    elapsed = time.perf_counter() - started
    rate = done / elapsed if elapsed > 0 else 0.0
    print(
        f"processed {done} of {len(tasks)} images ({failed} failed) in {elapsed:.1f} s, "
        f"{rate:.1f} images/s; outputs in {out}"
    )
    return 1 if failed else 0


def _stop(results: Any) -> None:
    """Close the run (its workers stop); a second Ctrl-C meanwhile does not abort the cleanup."""
    import signal

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        close = getattr(results, "close", None)
        if close is not None:
            close()
    finally:
        signal.signal(signal.SIGINT, previous)
