"""EXIF orientation is really applied: output dimensions and pixel positions are upright."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from corelane.imaging import ProcessOptions, probe, process_image
from tests import imaging_samples as samples


def _quadrant_means(arr: np.ndarray) -> list[np.ndarray]:
    h, w = arr.shape[:2]
    # Sample well inside each quadrant, away from JPEG/blur bleeding at the borders.
    ys = (slice(h // 8, 3 * h // 8), slice(5 * h // 8, 7 * h // 8))
    xs = (slice(w // 8, 3 * w // 8), slice(5 * w // 8, 7 * w // 8))
    return [arr[y, x].reshape(-1, 3).mean(axis=0) for y in ys for x in xs]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_applied(orientation: int) -> None:
    upright = samples.quadrants(192, 128)  # landscape, red top-left
    stored = samples.stored_for_orientation(upright, orientation)
    data = samples.jpeg_from_array(stored, quality=95, orientation=orientation)

    info = probe(data)
    assert (info["width"], info["height"]) == (192, 128)
    assert info["orientation"] == orientation

    result = process_image(data, ProcessOptions(sizes=(96,), format="png"))
    assert (result.width, result.height) == (192, 128)
    assert result.output_dims[96] == (96, 64)
    out = np.asarray(Image.open(io.BytesIO(result.outputs[96])).convert("RGB"), np.float32)
    assert out.shape[:2] == (64, 96)
    for got, want in zip(_quadrant_means(out), samples.QUADRANT_COLOURS, strict=True):
        assert np.abs(got - np.array(want)).max() < 40, (orientation, got, want)


def test_portrait_phone_photo_dimensions() -> None:
    # A phone in portrait stores 4:3 landscape pixels with orientation 6.
    data = samples.photo_jpeg(400, 300, orientation=6)
    result = process_image(data, ProcessOptions(sizes=(200,)))
    assert (result.width, result.height) == (300, 400)
    assert result.output_dims[200] == (150, 200)
    assert Image.open(io.BytesIO(result.outputs[200])).size == (150, 200)


def test_outputs_carry_no_exif() -> None:
    data = samples.photo_jpeg(300, 200, orientation=3, make="Acme", model="X1")
    out = Image.open(io.BytesIO(process_image(data, ProcessOptions(sizes=(100,), format="jpeg")).outputs[100]))
    assert 0x0112 not in out.getexif() and 0x010F not in out.getexif()
