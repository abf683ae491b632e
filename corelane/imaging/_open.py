"""Refuse bad inputs from their first bytes and header, before any pixel is decoded.

The order of checks is the order of cost: size in bytes, magic number (format from content,
never a file name), allow-list, then the header's dimensions against the pixel cap. Only the
parsers of allowed formats ever see the bytes (``Image.open(formats=...)``), since most decoder
CVEs live in rare formats.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass
from typing import Any

from PIL import Image

from corelane.errors import BadImage
from corelane.imaging.options import ImageLimits

# Pillow names a multi-picture JPEG (most phone cameras) "MPO"; it is a JPEG for our purposes.
_ALIASES = {"MPO": "JPEG"}

# Magic numbers, to name what we refuse without running its parser.
_SIGNATURES: list[tuple[bytes, int, str]] = [
    (b"\xff\xd8\xff", 0, "JPEG"),
    (b"\x89PNG\r\n\x1a\n", 0, "PNG"),
    (b"GIF87a", 0, "GIF"),
    (b"GIF89a", 0, "GIF"),
    (b"BM", 0, "BMP"),
    (b"II*\x00", 0, "TIFF"),
    (b"MM\x00*", 0, "TIFF"),
    (b"\x00\x00\x01\x00", 0, "ICO"),
    (b"\x00\x00\x02\x00", 0, "CUR"),
    (b"8BPS", 0, "PSD"),
    (b"%PDF", 0, "PDF"),
    (b"%!PS", 0, "EPS"),
    (b"\x00\x00\x00\x0cjP  ", 0, "JPEG2000"),
    (b"\xffO\xffQ", 0, "JPEG2000"),
    (b"qoif", 0, "QOI"),
    (b"DDS ", 0, "DDS"),
    (b"\x76\x2f\x31\x01", 0, "OpenEXR"),
    (b"PK\x03\x04", 0, "a ZIP archive"),
    (b"\x1f\x8b", 0, "a gzip archive"),
]
_FTYP_BRANDS = {b"heic": "HEIC", b"heix": "HEIC", b"mif1": "HEIF", b"avif": "AVIF", b"avis": "AVIF"}


def sniff(data: bytes) -> str | None:
    """Name the format of ``data`` from its magic number, or None if unknown."""
    head = bytes(data[:32])
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[4:8] == b"ftyp":
        return _FTYP_BRANDS.get(head[8:12], "an ISO media file")
    for magic, offset, name in _SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return name
    stripped = head.lstrip()
    if stripped[:4] == b"<svg" or stripped[:5] == b"<?xml":
        return "SVG/XML"
    return None


def _looks_like_text(data: bytes) -> bool:
    sample = bytes(data[:1024])
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError:
        # A multi-byte character cut at the sample's end is still text.
        try:
            text = sample[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return False
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    return printable >= 0.95 * max(1, len(text))


def _mp(pixels: int) -> str:
    return f"{pixels / 1e6:.1f} MP"


@dataclass
class Opened:
    """An image opened from its header only: nothing decoded yet."""

    image: Image.Image
    format: str  # after aliases (MPO -> JPEG)
    width: int  # as stored
    height: int
    orientation: int  # EXIF orientation 1..8 (1 when absent or invalid)
    frames: int

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) after applying the EXIF orientation."""
        if self.orientation in (5, 6, 7, 8):
            return self.height, self.width
        return self.width, self.height


def _orientation(im: Image.Image) -> int:
    try:
        value = im.getexif().get(0x0112, 1)
    except Exception:  # a broken EXIF block must not sink a readable image
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def open_image(data: bytes, limits: ImageLimits) -> Opened:
    """Open ``data`` lazily after every cheap check; raise BadImage with what and why."""
    size = len(data)
    if size == 0:
        raise BadImage("empty input (0 bytes): not an image")
    if size > limits.max_bytes:
        raise BadImage(
            f"input is {size:,} bytes, over the {limits.max_bytes:,}-byte limit; refused unread"
        )
    sniffed = sniff(data)
    allowed = ", ".join(sorted(limits.formats))
    if sniffed is None:
        if _looks_like_text(data):
            raise BadImage("not an image: the content is text (a renamed text file?)")
        raise BadImage(f"not an image: unrecognized content (allowed formats: {allowed})")
    if _ALIASES.get(sniffed, sniffed) not in limits.formats:
        raise BadImage(f"format {sniffed} is not allowed (allowed formats: {allowed})")

    pillow_formats = sorted(limits.formats)
    if "JPEG" in limits.formats:
        pillow_formats.append("MPO")
    try:
        with warnings.catch_warnings():
            # Our own cap below is the rule; Pillow's warning threshold is not.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data), formats=pillow_formats)
    except Image.DecompressionBombError as exc:
        match = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = int(match.group(1)) if match else 0
        raise BadImage(
            f"{sniffed} image declares {_mp(pixels)}, over the {_mp(limits.max_pixels)} pixel "
            "cap (a decompression bomb?); refused before decoding"
        ) from None
    except Exception as exc:
        raise BadImage(f"corrupt {sniffed}: the header cannot be read ({exc})") from None

    fmt = _ALIASES.get(im.format or sniffed, im.format or sniffed)
    width, height = im.size
    if width < 1 or height < 1:
        raise BadImage(f"corrupt {fmt}: it declares {width}x{height} pixels")
    if width * height > limits.max_pixels:
        raise BadImage(
            f"{fmt} image is {width}x{height} = {_mp(width * height)}, over the "
            f"{_mp(limits.max_pixels)} pixel cap; refused before decoding"
        )
    frames = int(getattr(im, "n_frames", 1) or 1) if fmt in ("GIF", "WEBP", "PNG", "TIFF") else 1
    return Opened(im, fmt, width, height, _orientation(im), frames)


def probe(data: bytes, limits: ImageLimits | None = None) -> dict[str, Any]:
    """Check an input cheaply from its header: format and size, or BadImage.

    Runs every refusal that needs no decoding (empty, too many bytes, not an image, format not
    allowed, over the pixel cap, unreadable header). Passing does not prove the pixel data is
    intact: a truncated JPEG passes here and fails in :func:`process_image`.

    Returns:
        ``{"format", "width", "height", "mode", "frames", "orientation"}``; width and height as
        displayed (after EXIF orientation).

    Raises:
        BadImage: the input is refused; the message says what and why.
    """
    opened = open_image(data, limits or ImageLimits())
    width, height = opened.display_size
    return {
        "format": opened.format,
        "width": width,
        "height": height,
        "mode": opened.image.mode,
        "frames": opened.frames,
        "orientation": opened.orientation,
    }
