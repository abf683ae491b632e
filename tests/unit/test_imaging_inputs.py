"""Every accepted input kind decodes, and every output is decodable at the right long edge."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from corelane.imaging import ProcessOptions, probe, process_image
from tests import imaging_samples as samples

GOOD = samples.all_good_kinds()


def _decode(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


@pytest.mark.parametrize("kind", sorted(GOOD))
@pytest.mark.parametrize("fmt", ["webp", "jpeg", "png"])
def test_every_kind_every_format(kind: str, fmt: str) -> None:
    data = GOOD[kind]
    result = process_image(data, ProcessOptions(sizes=(1024, 150, 64), format=fmt))
    header = probe(data)
    assert (result.width, result.height) == (header["width"], header["height"])
    assert result.format == header["format"]
    assert result.output_format == fmt
    assert set(result.outputs) == {1024, 150, 64}
    long_src = max(result.width, result.height)
    for size, blob in result.outputs.items():
        im = _decode(blob)
        assert im.format == {"webp": "WEBP", "jpeg": "JPEG", "png": "PNG"}[fmt]
        assert max(im.size) == min(size, long_src), (size, im.size)
        assert im.size == result.output_dims[size]
        # Aspect ratio kept: the short edge is the exact one, rounded.
        scale = max(im.size) / long_src
        assert abs(im.size[0] - result.width * scale) <= 1
        assert abs(im.size[1] - result.height * scale) <= 1
    assert result.features is not None
    json.dumps(result.features)
    json.dumps(result.summary())


def test_large_photo_sizes_and_shrink() -> None:
    data = samples.photo_jpeg(1800, 1200, seed=1)
    result = process_image(data, ProcessOptions(sizes=(1024, 512, 128), format="webp"))
    assert result.output_dims == {1024: (1024, 683), 512: (512, 341), 128: (128, 85)}
    for size, blob in result.outputs.items():
        assert max(_decode(blob).size) == size


def test_sizes_above_the_source_are_not_upscaled_and_share_one_encoding() -> None:
    data = samples.photo_jpeg(300, 200)
    result = process_image(data, ProcessOptions(sizes=(2048, 1024, 100)))
    assert result.output_dims[2048] == result.output_dims[1024] == (300, 200)
    assert result.outputs[2048] is result.outputs[1024]
    assert result.output_dims[100] == (100, 67)


def test_features_off() -> None:
    result = process_image(samples.photo_jpeg(200, 100), ProcessOptions(features=False))
    assert result.features is None


def test_alpha_flattened_on_white_for_jpeg_kept_for_webp_png() -> None:
    data = samples.png_rgba(320, 240)  # transparent corners, red disc in the middle
    jpeg = _decode(process_image(data, ProcessOptions(sizes=(320,), format="jpeg")).outputs[320])
    assert jpeg.mode == "RGB"
    corner = np.asarray(jpeg)[-5:, :5].reshape(-1, 3).mean(axis=0)
    assert (corner > 245).all(), corner  # white, not black
    centre = np.asarray(jpeg)[115:125, 155:165].reshape(-1, 3).mean(axis=0)
    assert centre[0] > 230 and centre[1] < 30 and centre[2] < 30
    for fmt in ("webp", "png"):
        out = _decode(process_image(data, ProcessOptions(sizes=(320,), format=fmt)).outputs[320])
        assert out.mode == "RGBA"
        assert np.asarray(out)[-1, 0, 3] == 0  # still transparent


def test_la_and_palette_transparency_become_alpha() -> None:
    la = process_image(samples.png_la(), ProcessOptions(sizes=(200,), format="png"))
    assert _decode(la.outputs[200]).mode == "RGBA"
    gif = process_image(samples.gif_palette(transparent=True), ProcessOptions(sizes=(200,), format="png"))
    out = np.asarray(_decode(gif.outputs[200]))
    assert out.shape[2] == 4 and out[0, 0, 3] == 0 and out[-1, -1, 3] == 255
    assert gif.features is not None and gif.features["has_alpha"] is True


def test_cmyk_converted_to_rgb_with_plausible_colours() -> None:
    data = samples.jpeg_cmyk(320, 240)
    result = process_image(data, ProcessOptions(sizes=(320,), format="png"))
    assert result.mode == "CMYK"
    out = _decode(result.outputs[320])
    assert out.mode == "RGB"
    reference = np.asarray(Image.fromarray(samples.photo_array(320, 240, seed=5)), np.float32)
    error = np.abs(np.asarray(out, np.float32) - reference).mean()
    assert error < 40, error  # CMYK round trip is lossy but the picture is the same


def test_16bit_grey_scaled_not_clipped() -> None:
    result = process_image(samples.png_16bit_grey(256, 64), ProcessOptions(sizes=(256,), format="png"))
    assert result.mode.startswith("I")
    out = np.asarray(_decode(result.outputs[256]).convert("L"), np.int32)
    row = out[32]
    assert row[0] < 5 and row[-1] > 250  # full range kept
    assert 110 < row[128] < 145  # mid grey in the middle (clipping would make it 255)


def test_48bit_rgb() -> None:
    result = process_image(samples.png_48bit_rgb(256, 64), ProcessOptions(sizes=(256,), format="png"))
    out = np.asarray(_decode(result.outputs[256]).convert("RGB"), np.int32)
    assert out[10, -1, 0] > 250 and out[10, 0, 0] < 5
    assert (out[..., 2] > 250).all() and (out[..., 1] < 5).all()


def test_animated_gif_first_frame() -> None:
    data = samples.gif_animated(frames=4)
    assert probe(data)["frames"] == 4
    result = process_image(data, ProcessOptions(sizes=(160,), format="png"))
    out = np.asarray(_decode(result.outputs[160]).convert("RGB"))
    assert (out[..., 0] > 250).all() and (out[..., 1] < 5).all()  # the first frame is red
    assert result.features is not None and result.features["frames"] == 4


def test_mpo_style_jpeg_and_greyscale_jpeg() -> None:
    grey = process_image(samples.jpeg_grey(), ProcessOptions(sizes=(100,), format="webp"))
    assert grey.mode == "L" and _decode(grey.outputs[100]).size == (100, 75)


def test_format_detected_from_content_not_name() -> None:
    # process_image has no name at all: a PNG is a PNG whatever it was called.
    assert process_image(samples.bmp(), ProcessOptions(sizes=(50,))).format == "BMP"
    assert probe(samples.tiff())["format"] == "TIFF"
    assert probe(samples.webp())["format"] == "WEBP"
