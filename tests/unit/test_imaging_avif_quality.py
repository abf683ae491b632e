"""AVIF output, and the resize="quality" option: closer to a full Lanczos reference."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from corelane.imaging import ProcessOptions, process_image
from corelane.imaging.blurhash import average_colour
from corelane.imaging.ops import fit
from tests import imaging_samples as samples


def _open(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0**2 / mse)


def test_avif_outputs_decode_at_the_right_sizes() -> None:
    photo = samples.real_photo("coffee")  # 600x400
    result = process_image(samples.jpeg_from_array(photo), ProcessOptions(sizes=(400, 100), format="avif"))
    assert result.output_format == "avif" and result.extension == "avif"
    assert result.content_type == "image/avif"
    for size, (w, h) in ((400, (400, 267)), (100, (100, 67))):
        im = _open(result.outputs[size])
        assert im.format == "AVIF" and im.size == (w, h) == result.output_dims[size]
    # Lossy but faithful: the 400 px output is close to the photo scaled the same way.
    want = np.asarray(Image.fromarray(photo).resize((400, 267), Image.Resampling.LANCZOS))
    assert _psnr(np.asarray(_open(result.outputs[400]).convert("RGB")), want) > 28


def test_avif_keeps_alpha_and_takes_grey() -> None:
    rgba = process_image(samples.png_rgba(), ProcessOptions(sizes=(64,), format="AVIF"))
    im = _open(rgba.outputs[64])
    assert im.mode == "RGBA" and np.asarray(im)[..., 3].min() < 20  # transparent corners kept
    grey = process_image(samples.jpeg_grey(), ProcessOptions(sizes=(64,), format="avif"))
    assert _open(grey.outputs[64]).size == (64, 48)


def test_avif_crops() -> None:
    result = process_image(samples.photo_jpeg(400, 300), ProcessOptions(sizes=(90,), format="avif",
                                                                          crops="1:1"))
    assert _open(result.crops["1:1"][90]).size == (90, 90)


def test_quality_resize_is_closer_to_a_lanczos_reference() -> None:
    data = samples.photo_jpeg(2400, 1800, seed=5, quality=95)
    full = _open(data).convert("RGB")
    psnr = {}
    for mode in ("fast", "quality"):
        result = process_image(data, ProcessOptions(sizes=(700, 150), format="png", resize=mode,
                                                    features=False))
        psnr[mode] = {
            size: _psnr(np.asarray(_open(result.outputs[size]).convert("RGB")),
                        np.asarray(full.resize(fit(2400, 1800, size), Image.Resampling.LANCZOS)))
            for size in (700, 150)
        }
    # (700 px is not a JPEG draft scale of 2400: a real resize, unlike 600.)
    for size in (700, 150):
        assert psnr["quality"][size] > psnr["fast"][size] + 1.0, psnr


def test_features_barely_depend_on_the_resize_mode() -> None:
    # The feature copy is area-averaged from the previous level, which the mode changes a little.
    data = samples.photo_jpeg(800, 600, seed=2)
    fast = process_image(data, ProcessOptions(sizes=(512,))).features
    quality = process_image(data, ProcessOptions(sizes=(512,), resize="quality")).features
    assert fast is not None and quality is not None
    assert fast["phash"] == quality["phash"] and fast["mean_rgb"] == quality["mean_rgb"]
    dc_fast, dc_quality = average_colour(fast["blurhash"]), average_colour(quality["blurhash"])
    assert max(abs(a - b) for a, b in zip(dc_fast, dc_quality, strict=True)) <= 2
    assert abs(fast["focal"]["x"] - quality["focal"]["x"]) < 0.01


def test_options_accept_and_refuse() -> None:
    assert ProcessOptions(format="AVIF").extension == "avif"
    assert ProcessOptions(resize=" Quality ").resize == "quality"
    assert ProcessOptions().resize == "fast" and ProcessOptions().crops == ()
    with pytest.raises(ValueError, match="resize 'lanczos' is not one of fast, quality"):
        ProcessOptions(resize="lanczos")
    with pytest.raises(ValueError, match="format 'heic' is not one of avif, jpeg, png, webp"):
        ProcessOptions(format="heic")
