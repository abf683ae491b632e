"""``corelane images`` end to end, as a real subprocess on generated files (and, for AVIF,
crops and the quality resize, on scikit-image's astronaut photo); bad options exit 2."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from corelane.commands.images import safe_stem, unique_stems
from tests import imaging_samples as samples

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "corelane", "images", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout,
    )


def test_batch_with_a_bad_file_and_a_directory(tmp_path: Path) -> None:
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    (src / "Urlaub día 1.jpg").write_bytes(samples.photo_jpeg(900, 600, orientation=6, make="Acme"))
    (src / "sub" / "logo.png").write_bytes(samples.png_rgba(200, 100))
    (src / "sub" / "notes.jpg").write_bytes(samples.text_file())  # a text file renamed .jpg
    (src / "sub" / "README.md").write_bytes(b"# not picked up when walking\n")
    (src / "<b>..passwd.gif").write_bytes(samples.gif_animated())
    out = tmp_path / "out"
    features = tmp_path / "features.jsonl"

    proc = _cli(str(src), "--out", str(out), "--sizes", "512,64", "--format", "jpeg",
                "--features", str(features), "--workers", "2")

    assert proc.returncode == 1, proc.stderr
    assert "processed 3 of 4 images (1 failed)" in proc.stdout
    assert "notes.jpg: not an image: the content is text" in proc.stderr
    assert "README" not in proc.stderr + proc.stdout
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([
        "Urlaub_dia_1_512.jpg", "Urlaub_dia_1_64.jpg",
        "logo_512.jpg", "logo_64.jpg",
        "b_..passwd_512.jpg", "b_..passwd_64.jpg",
    ])
    photo = Image.open(out / "Urlaub_dia_1_512.jpg")
    assert photo.format == "JPEG" and photo.size == (341, 512)  # orientation 6: portrait
    assert Image.open(out / "logo_64.jpg").size == (64, 32)
    assert Image.open(out / "b_..passwd_512.jpg").size == (160, 120)  # never upscaled

    records = [json.loads(line) for line in features.read_text().splitlines()]
    assert len(records) == 3
    by_name = {Path(r["input"]).name: r for r in records}
    rec = by_name["Urlaub día 1.jpg"]
    assert (rec["width"], rec["height"], rec["format"]) == (600, 900, "JPEG")
    assert rec["outputs"] == {"512": "Urlaub_dia_1_512.jpg", "64": "Urlaub_dia_1_64.jpg"}
    assert rec["exif"]["make"] == "Acme" and len(rec["phash"]) == 16


def test_all_good_exit_zero_and_missing_input_is_a_usage_error(tmp_path: Path) -> None:
    a = tmp_path / "a.webp"
    a.write_bytes(samples.webp(300, 200))
    proc = _cli(str(a), "--out", str(tmp_path / "o"), "--sizes", "100", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "processed 1 of 1 images (0 failed)" in proc.stdout
    out = (tmp_path / "o" / "a_100.webp").read_bytes()
    assert Image.open(io.BytesIO(out)).size == (100, 67)

    proc = _cli(str(a), str(tmp_path / "missing.jpg"), "--out", str(tmp_path / "o"), "--quiet")
    assert proc.returncode == 2  # issue 12: bad usage, nothing processed (tests/unit/test_cli_usage.py)
    assert "missing.jpg: no such file or directory" in proc.stderr


def test_malformed_options_exit_2(tmp_path: Path) -> None:
    proc = _cli("x.jpg", "--out", str(tmp_path), "--sizes", "big")
    assert proc.returncode == 2 and "size 'big' is not a whole number" in proc.stderr
    proc = _cli("x.jpg", "--out", str(tmp_path), "--quality", "0")
    assert proc.returncode == 2 and "quality 0 is out of range" in proc.stderr


def test_safe_and_unique_stems() -> None:
    assert safe_stem("../../etc/passwd") == "passwd"
    assert safe_stem("/x/..jpg") == "image"
    assert safe_stem("Ünïcödé phötö.JPG") == "Unicode_photo"
    assert safe_stem("a<b>:c|d?.png") == "a_b_c_d"
    assert unique_stems([Path("x/A.jpg"), Path("y/a.png"), Path("z/a.gif")]) == ["A", "a-2", "a-3"]


def test_avif_crops_and_quality_resize(tmp_path: Path) -> None:
    src = tmp_path / "astronaut.jpg"
    src.write_bytes(samples.jpeg_from_array(samples.real_photo("astronaut"), quality=90))
    out, features = tmp_path / "out", tmp_path / "features.jsonl"
    proc = _cli(str(src), "--out", str(out), "--sizes", "256,64", "--format", "avif",
                "--quality", "60", "--crops", "1:1,16:9,2:2", "--resize", "quality",
                "--features", str(features), "--workers", "1", "--quiet")
    assert proc.returncode == 0, proc.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(["astronaut_256.avif", "astronaut_64.avif",
                            "astronaut_1x1_256.avif", "astronaut_1x1_64.avif",
                            "astronaut_16x9_256.avif", "astronaut_16x9_64.avif"])
    sizes = {}
    for name in names:
        with Image.open(out / name) as im:
            assert im.format == "AVIF", name
            sizes[name] = im.size
    assert sizes["astronaut_256.avif"] == (256, 256)  # the photo is square
    assert sizes["astronaut_16x9_256.avif"] == (256, 144)
    assert sizes["astronaut_1x1_64.avif"] == (64, 64)

    [record] = [json.loads(line) for line in features.read_text().splitlines()]
    assert record["crops"] == {
        "1:1": {"256": "astronaut_1x1_256.avif", "64": "astronaut_1x1_64.avif"},
        "16:9": {"256": "astronaut_16x9_256.avif", "64": "astronaut_16x9_64.avif"},
    }
    # The 16:9 crop is centred on her face (upper part of the photo), not on the middle.
    assert record["focal"]["source"] == "face" and record["focal"]["y"] < 0.4


@pytest.mark.parametrize("args, needle", [
    (["--format", "gif"], "argument --format: invalid choice: 'gif'"),
    (["--resize", "best"], "argument --resize: invalid choice: 'best' (choose from fast, quality)"),
    (["--crops", "16x9"], "corelane images: crop '16x9' is not an aspect ratio W:H"),
    (["--crops", "1:1,20:1"], "corelane images: crop 20:1 is more elongated than 10:1"),
    (["--crops", "1:0"], "corelane images: crop 1:0 needs both sides of at least 1"),
])
def test_bad_values_exit_2_and_create_nothing(tmp_path: Path, args: list[str],
                                              needle: str) -> None:
    src = tmp_path / "a.jpg"
    src.write_bytes(samples.photo_jpeg(64, 48))
    proc = _cli(str(src), "--out", str(tmp_path / "out"), *args)
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr.replace("'fast', 'quality'", "fast, quality")
    assert not (tmp_path / "out").exists()
