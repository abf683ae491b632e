"""Every bad input raises BadImage with a message saying what and why; caps hold before decoding."""

from __future__ import annotations

import pytest

from corelane.errors import BadImage
from corelane.imaging import ImageLimits, ProcessOptions, probe, process_image
from tests import imaging_samples as samples

OPTS = ProcessOptions(sizes=(128,))

BAD = [
    ("zero_bytes", samples.zero_bytes, r"empty input \(0 bytes\)"),
    ("text", samples.text_file, r"not an image: the content is text"),
    ("truncated_jpeg", samples.truncated_jpeg, r"truncated JPEG: the pixel data cannot be decoded"),
    ("garbage_jpeg", samples.garbage_after_jpeg_magic, r"corrupt JPEG"),
    ("bomb_30000", samples.png_bomb, r"declares 900\.0 MP, over the 89\.5 MP pixel cap"),
    ("ico", samples.ico, r"format ICO is not allowed \(allowed formats: BMP, GIF, JPEG, PNG, TIFF, WEBP\)"),
    ("random", lambda: bytes(range(256)) * 4, r"not an image: unrecognized content"),
    ("pdf", lambda: b"%PDF-1.7\n" + b"\x00\x01" * 50, r"format PDF is not allowed"),
    ("svg", lambda: b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>', r"SVG/XML is not allowed"),
]


@pytest.mark.parametrize(("name", "make", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_refused_with_clear_message(name: str, make, message: str) -> None:
    with pytest.raises(BadImage, match=message):
        process_image(make(), OPTS)


@pytest.mark.parametrize(
    ("name", "make", "message"),
    [b for b in BAD if b[0] != "truncated_jpeg"],
    ids=[b[0] for b in BAD if b[0] != "truncated_jpeg"],
)
def test_probe_refuses_the_same_from_the_header(name: str, make, message: str) -> None:
    with pytest.raises(BadImage, match=message):
        probe(make(), ImageLimits())


def test_truncated_jpeg_passes_probe_but_not_processing() -> None:
    data = samples.truncated_jpeg()
    assert probe(data, ImageLimits())["format"] == "JPEG"
    with pytest.raises(BadImage, match="truncated"):
        process_image(data, OPTS)


def test_pixel_cap_checked_from_header_before_decoding() -> None:
    # 10000 x 9000 = 90 MP: over our 89.5 MP cap but under Pillow's own 179 MP refusal, so only
    # our header check can stop it. The file holds 64 rows of pixels: had the decoder run, it
    # would report a truncated/corrupt PNG instead of the cap.
    data = samples.png_bomb(10000, 9000)
    assert len(data) < 20_000
    with pytest.raises(BadImage, match=r"10000x9000 = 90\.0 MP, over the 89\.5 MP pixel cap; refused before decoding"):
        process_image(data, OPTS)


def test_pixel_cap_is_configurable() -> None:
    data = samples.photo_jpeg(200, 100)
    process_image(data, OPTS, ImageLimits(max_pixels=20_000))
    with pytest.raises(BadImage, match=r"200x100 = 0\.0 MP, over the 0\.0 MP pixel cap"):
        process_image(data, OPTS, ImageLimits(max_pixels=19_999))
    # A higher cap lets a 90 MP header through to the decoder (which then finds it truncated).
    with pytest.raises(BadImage, match="truncated|corrupt"):
        process_image(samples.png_bomb(10000, 9000), OPTS, ImageLimits(max_pixels=100_000_000))


def test_byte_cap() -> None:
    data = samples.photo_jpeg(200, 100)
    with pytest.raises(BadImage, match=rf"input is {len(data):,} bytes, over the 1,000-byte limit"):
        process_image(data, OPTS, ImageLimits(max_bytes=1000))
    with pytest.raises(BadImage, match="over the 1,000-byte limit"):
        probe(data, ImageLimits(max_bytes=1000))


def test_allow_list_is_configurable() -> None:
    png_only = ImageLimits(formats={"PNG"})
    with pytest.raises(BadImage, match=r"format JPEG is not allowed \(allowed formats: PNG\)"):
        process_image(samples.photo_jpeg(64, 64), OPTS, png_only)
    assert process_image(samples.png_rgba(64, 64), OPTS, png_only).format == "PNG"
    # ICO becomes acceptable when allowed.
    assert probe(samples.ico(), ImageLimits(formats={"ICO"}))["format"] == "ICO"


def test_jpeg_named_text_is_not_trusted_by_extension() -> None:
    # There is no file name in the API at all; content decides.
    with pytest.raises(BadImage, match="text"):
        probe(b"GIF? no. just text pretending to be photo.jpg\n", ImageLimits())
