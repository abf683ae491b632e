"""The value types of image processing: limits, options and the result.

All three are frozen dataclasses of plain values, so they pickle cheaply to worker processes and
can be logged or stored as they are. Options and limits are validated when built: a malformed
value raises ``ValueError`` (the service maps it to a 400) with a message naming the field.
"""

from __future__ import annotations

import math
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
    "avif": ("AVIF", "avif"),
}
_FORMAT_ALIASES = {"jpg": "jpeg"}

#: Resize filters: ``fast`` is the box (area) cascade; ``quality`` uses Lanczos on each output's
#: last step (after the same shrink-on-load), sharper for ~1 dB more PSNR at a speed cost.
RESIZE_MODES = ("fast", "quality")

MAX_OUTPUT_EDGE = 16384  # the largest long edge an output may ask for (WebP's own limit)
MAX_CROP_RATIO = 10  # a crop may be at most 10:1 either way
MAX_CROPS = 8


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


def _crop_part(part: object) -> tuple[int, int]:
    if isinstance(part, str):
        text = part.strip()
        left, sep, right = text.partition(":")
        if not sep or not left.strip().isdigit() or not right.strip().isdigit():
            raise ValueError(f"crop {text!r} is not an aspect ratio W:H of whole numbers (e.g. 1:1, 16:9)")
        w, h = int(left), int(right)
    elif (
        isinstance(part, tuple | list)
        and len(part) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in part)
    ):
        w, h = part
    else:
        raise ValueError(f"crop {part!r} is not an aspect ratio W:H of whole numbers (e.g. 1:1, 16:9)")
    if w < 1 or h < 1:
        raise ValueError(f"crop {w}:{h} needs both sides of at least 1")
    if max(w, h) > MAX_CROP_RATIO * min(w, h):
        raise ValueError(f"crop {w}:{h} is more elongated than {MAX_CROP_RATIO}:1")
    g = math.gcd(w, h)
    return w // g, h // g


def parse_crops(text: str | Iterable[str | tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Turn ``"1:1,16:9"`` (or a list of ``"W:H"`` / ``(w, h)``) into the ``crops`` tuple.

    Ratios are reduced (``2:2`` is ``1:1``) and de-duplicated, in the order given. An empty
    string means no crops.

    Raises:
        ValueError: a part is not ``W:H`` of positive whole numbers, is more elongated than
            10:1, or more than 8 crops are asked for.
    """
    parts: Iterable[object] = text.split(",") if isinstance(text, str) else text
    if isinstance(text, str) and not text.strip():
        return ()
    crops: list[tuple[int, int]] = []
    for part in parts:
        crop = _crop_part(part)
        if crop not in crops:
            crops.append(crop)
    if len(crops) > MAX_CROPS:
        raise ValueError(f"{len(crops)} crops asked for, at most {MAX_CROPS} allowed")
    return tuple(crops)


def crop_label(crop: tuple[int, int]) -> str:
    """``(16, 9)`` -> ``"16:9"``, the key of a crop in results."""
    return f"{crop[0]}:{crop[1]}"


@dataclass(frozen=True)
class ProcessOptions:
    """What to produce from each image.

    Attributes:
        sizes: long-edge sizes in pixels; normalized to unique values, largest first.
            A size larger than the source gives the source size (never upscaled).
        format: output format, ``"webp"``, ``"jpeg"`` (alias ``"jpg"``), ``"png"`` or
            ``"avif"``.
        quality: encoder quality 1..100 (ignored by PNG, which is lossless).
        features: compute :func:`corelane.imaging.features.extract` for each image (plus the
            BlurHash placeholder and the focal point).
        crops: aspect ratios (``"1:1,16:9"`` or ``((1, 1), (16, 9))``); each gives, for every
            size, a crop of that aspect whose long edge is the size (never upscaled), centred
            on the focal point (faces, else saliency, else the centre).
        resize: ``"fast"`` (box filter cascade, the default) or ``"quality"`` (Lanczos on the
            last step of each output).
    """

    sizes: tuple[int, ...] = (1024, 512, 128)
    format: str = "webp"
    quality: int = 85
    features: bool = True
    crops: tuple[tuple[int, int], ...] = ()
    resize: str = "fast"

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
        object.__setattr__(self, "crops", parse_crops(self.crops))
        resize = str(self.resize).lower().strip()
        if resize not in RESIZE_MODES:
            raise ValueError(f"resize {self.resize!r} is not one of {', '.join(RESIZE_MODES)}")
        object.__setattr__(self, "resize", resize)

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
        crops: crop label (``"16:9"``) -> requested size -> encoded bytes, when crops were
            asked for; sizes that collapse to the same crop share one encoding.
        crop_dims: crop label -> requested size -> (width, height) of that crop.
        crop_boxes: crop label -> (left, top, right, bottom) of the crop in the source as
            displayed (pixels).
        focal: the focal point the crops are centred on, ``{"x", "y", "source"}`` (x, y in
            0..1 of the displayed picture; source ``face``, ``saliency`` or ``center``), when
            crops or features were asked for.
    """

    width: int
    height: int
    format: str
    mode: str
    outputs: dict[int, bytes]
    output_format: str
    features: dict[str, Any] | None = None
    output_dims: dict[int, tuple[int, int]] = field(default_factory=dict)
    crops: dict[str, dict[int, bytes]] = field(default_factory=dict)
    crop_dims: dict[str, dict[int, tuple[int, int]]] = field(default_factory=dict)
    crop_boxes: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)
    focal: dict[str, Any] | None = None

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
            "crops": {
                label: {
                    "box": list(self.crop_boxes[label]),
                    "outputs": {
                        str(size): {"width": w, "height": h, "bytes": len(self.crops[label][size])}
                        for size, (w, h) in dims.items()
                    },
                }
                for label, dims in self.crop_dims.items()
            },
            "focal": self.focal,
        }
