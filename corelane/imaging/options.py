"""The value types of image processing: limits, options and the result.

All three are frozen dataclasses of plain values, so they pickle cheaply to worker processes and
can be logged or stored as they are. Options and limits are validated when built: a malformed
value raises ``ValueError`` (the service maps it to a 400) with a message naming the field.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

#: Formats accepted by default. Most decoder CVEs live in rare formats, so the list is short.
DEFAULT_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"})

#: Output formats: option value -> Pillow format name and file extension.
OUTPUT_FORMATS: dict[str, tuple[str, str]] = {
    "webp": ("WEBP", "webp"),
    "jpeg": ("JPEG", "jpg"),
    "png": ("PNG", "png"),
}
_FORMAT_ALIASES = {"jpg": "jpeg"}

MAX_OUTPUT_EDGE = 16384  # the largest long edge an output may ask for (WebP's own limit)


@dataclass(frozen=True)
class ImageLimits:
    """What an input may be before any pixel is decoded.

    Attributes:
        max_pixels: width x height cap, read from the header before decoding. The default is
            Pillow's warning limit (~89.5 MP); Pillow itself only raises at twice that.
        max_bytes: the largest encoded input accepted.
        formats: the allow-list of source formats (Pillow names, upper case).
    """

    max_pixels: int = 89_478_485
    max_bytes: int = 50 * 2**20
    formats: frozenset[str] = DEFAULT_FORMATS

    def __post_init__(self) -> None:
        if not isinstance(self.max_pixels, int) or self.max_pixels < 1:
            raise ValueError(f"max_pixels must be a positive int, got {self.max_pixels!r}")
        if not isinstance(self.max_bytes, int) or self.max_bytes < 1:
            raise ValueError(f"max_bytes must be a positive int, got {self.max_bytes!r}")
        if isinstance(self.formats, str):
            raise ValueError("formats must be a collection of format names, not one string")
        formats = frozenset(str(f).upper() for f in self.formats)
        if not formats:
            raise ValueError("formats must name at least one allowed format")
        object.__setattr__(self, "formats", formats)


def parse_sizes(text: str | Iterable[int | str]) -> tuple[int, ...]:
    """Turn ``"1024,512,128"`` (or a list of ints) into the ``sizes`` tuple, validated.

    Raises:
        ValueError: a size is not a whole number, is out of range, or none is given.
    """
    parts: Iterable[int | str] = text.split(",") if isinstance(text, str) else text
    sizes = []
    for part in parts:
        if isinstance(part, bool):
            raise ValueError(f"size {part!r} is not a whole number of pixels")
        if isinstance(part, str):
            part = part.strip()
            if not part:
                continue
            if not part.isdigit():
                raise ValueError(f"size {part!r} is not a whole number of pixels")
            part = int(part)
        if not isinstance(part, int):
            raise ValueError(f"size {part!r} is not a whole number of pixels")
        if not 1 <= part <= MAX_OUTPUT_EDGE:
            raise ValueError(f"size {part} is out of range 1..{MAX_OUTPUT_EDGE}")
        sizes.append(part)
    if not sizes:
        raise ValueError("at least one output size is needed")
    return tuple(sorted(set(sizes), reverse=True))


@dataclass(frozen=True)
class ProcessOptions:
    """What to produce from each image.

    Attributes:
        sizes: long-edge sizes in pixels; normalized to unique values, largest first.
            A size larger than the source gives the source size (never upscaled).
        format: output format, ``"webp"``, ``"jpeg"`` (alias ``"jpg"``) or ``"png"``.
        quality: encoder quality 1..100 (ignored by PNG, which is lossless).
        features: compute :func:`corelane.imaging.features.extract` for each image.
    """

    sizes: tuple[int, ...] = (1024, 512, 128)
    format: str = "webp"
    quality: int = 85
    features: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "sizes", parse_sizes(self.sizes))
        fmt = str(self.format).lower().strip()
        fmt = _FORMAT_ALIASES.get(fmt, fmt)
        if fmt not in OUTPUT_FORMATS:
            raise ValueError(
                f"format {self.format!r} is not one of {', '.join(sorted(OUTPUT_FORMATS))}"
            )
        object.__setattr__(self, "format", fmt)
        if isinstance(self.quality, bool) or not isinstance(self.quality, int):
            raise ValueError(f"quality must be a whole number 1..100, got {self.quality!r}")
        if not 1 <= self.quality <= 100:
            raise ValueError(f"quality {self.quality} is out of range 1..100")
        if not isinstance(self.features, bool):
            raise ValueError(f"features must be true or false, got {self.features!r}")

    @property
    def extension(self) -> str:
        """File extension of the outputs, without the dot (``webp``, ``jpg``, ``png``)."""
        return OUTPUT_FORMATS[self.format][1]


@dataclass(frozen=True)
class ProcessedImage:
    """The result of :func:`corelane.imaging.process_image` for one input.

    Attributes:
        width: source width as displayed (after EXIF orientation).
        height: source height as displayed.
        format: source format detected from the content (``"JPEG"``, ``"PNG"`` ...).
        mode: source Pillow mode (``"RGB"``, ``"CMYK"``, ``"P"``, ``"I;16"`` ...).
        outputs: requested long-edge size -> encoded bytes. Every requested size is present;
            sizes at or above the source's long edge share one encoding at the source size.
        output_format: ``"webp"``, ``"jpeg"`` or ``"png"``.
        features: JSON-serializable dict (see :mod:`corelane.imaging.features`), or None when
            features were not asked for.
        output_dims: requested size -> (width, height) of that output.
    """

    width: int
    height: int
    format: str
    mode: str
    outputs: dict[int, bytes]
    output_format: str
    features: dict[str, Any] | None = None
    output_dims: dict[int, tuple[int, int]] = field(default_factory=dict)

    @property
    def extension(self) -> str:
        """File extension of the outputs, without the dot."""
        return OUTPUT_FORMATS[self.output_format][1]

    @property
    def content_type(self) -> str:
        """MIME type of the outputs."""
        return "image/" + self.output_format

    def summary(self) -> dict[str, Any]:
        """A JSON-serializable description without the encoded bytes (for logs and stores)."""
        return {
            "width": self.width,
            "height": self.height,
            "format": self.format,
            "mode": self.mode,
            "output_format": self.output_format,
            "outputs": {
                str(size): {"width": w, "height": h, "bytes": len(self.outputs[size])}
                for size, (w, h) in self.output_dims.items()
            },
            "features": self.features,
        }
