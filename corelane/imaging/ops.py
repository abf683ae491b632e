"""Decode, orient, resize and encode one image: bytes in, bytes and a dict out.

    bytes ─ open_image (header checks) ─ draft (JPEG DCT shrink-on-load) ─ load ─ normalize mode
          ─ area-resize cascade 1024 → 512 → 128 (each from the previous) ─ orient ─ encode
                                          └─ 256 px copy ─ features (NumPy)

Choice of library (see docs/imaging.md and the ``imaging`` section of docs/benchmarks.md): Pillow
with ``draft`` decodes a 12 MP JPEG at 1/2..1/8 scale about as fast as OpenCV's reduced decode
and faster than a pyvips thumbnail with one thread, refuses truncated files (OpenCV fills them
grey), and covers every input kind (CMYK, palette, 16-bit, alpha, animated) in one decoder. The
resize is a box (area-average) filter, the right one for downscaling. Orientation is applied to
each small output, not to the big decoded image. Encoding dominates the remaining time for WebP,
so WebP uses libwebp method 2 (``WEBP_METHOD``): ~2x faster than the default 4 for ~4% bytes.
"""

from __future__ import annotations

import io
import warnings
from typing import Any

import numpy as np
from PIL import Image

from corelane.errors import BadImage
from corelane.imaging import features as _features
from corelane.imaging._open import Opened, open_image
from corelane.imaging.options import OUTPUT_FORMATS, ImageLimits, ProcessedImage, ProcessOptions

FEATURE_EDGE = 256  # long edge of the copy features are computed on
WEBP_METHOD = 2  # libwebp effort 0..6: 2 is ~2x faster than 4 for ~4% larger files
PNG_COMPRESS_LEVEL = 6  # zlib level: Pillow's default
RESAMPLE = Image.Resampling.BOX  # area average: alias-free downscaling, and Pillow's fastest

# EXIF orientation -> the transpose that shows the picture upright (None: as stored).
_TRANSPOSE: dict[int, Image.Transpose | None] = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def fit(width: int, height: int, edge: int) -> tuple[int, int]:
    """(w, h) scaled so the long edge is ``edge``, never above the source, never below 1."""
    long_edge = max(width, height)
    if edge >= long_edge:
        return width, height
    scale = edge / long_edge
    return max(1, round(width * scale)), max(1, round(height * scale))


def _normalize(im: Image.Image) -> Image.Image:
    """Bring any decoded mode to L, RGB or RGBA (8 bits per channel)."""
    mode = im.mode
    if mode in ("L", "RGB", "RGBA"):
        return im
    if mode == "P":
        transparent = "transparency" in im.info or im.palette is not None and im.palette.mode == "RGBA"
        return im.convert("RGBA" if transparent else "RGB")
    if mode in ("LA", "La", "PA", "RGBa"):
        return im.convert("RGBA")
    if mode.startswith("I;16") or mode == "I":
        # Pillow's I;16 -> L conversion clips at 255 instead of scaling: do it by hand.
        arr = np.asarray(im)
        if mode == "I":
            arr = np.clip(arr, 0, 65535)
        return Image.fromarray((arr.astype(np.uint32) >> 8).astype(np.uint8), "L")
    if mode == "F":
        return Image.fromarray(np.clip(np.asarray(im), 0, 255).astype(np.uint8), "L")
    if mode == "1":
        return im.convert("L")
    return im.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX ...


def _decode(opened: Opened, edge: int) -> Image.Image:
    """Decode the first frame at the smallest scale whose long edge is still >= ``edge``."""
    im = opened.image
    if opened.format == "JPEG":
        # Shrink-on-load: libjpeg's DCT scaling by 1/2, 1/4 or 1/8.
        im.draft(None, fit(opened.width, opened.height, edge))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im.load()
    except MemoryError:
        raise BadImage(f"{opened.format} image too large to decode in memory") from None
    except Exception as exc:
        what = "truncated" if "truncated" in str(exc).lower() else "corrupt"
        raise BadImage(
            f"{what} {opened.format}: the pixel data cannot be decoded ({exc})"
        ) from None
    return _normalize(im)


def _flatten(im: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """RGBA -> RGB over ``background`` (for JPEG, which has no alpha)."""
    out = Image.new("RGB", im.size, background)
    out.paste(im, mask=im.getchannel("A"))
    return out


def _encode(im: Image.Image, options: ProcessOptions, icc: bytes | None) -> bytes:
    buf = io.BytesIO()
    pil_format = OUTPUT_FORMATS[options.format][0]
    params: dict[str, Any] = {}
    if icc:
        params["icc_profile"] = icc
    if options.format == "jpeg":
        if im.mode == "RGBA":
            im = _flatten(im)
        im.save(buf, pil_format, quality=options.quality, **params)
    elif options.format == "webp":
        if im.mode == "L":
            im = im.convert("RGB")
        im.save(buf, pil_format, quality=options.quality, method=WEBP_METHOD, **params)
    else:
        im.save(buf, pil_format, compress_level=PNG_COMPRESS_LEVEL, **params)
    return buf.getvalue()


def process_image(
    data: bytes, options: ProcessOptions, limits: ImageLimits | None = None
) -> ProcessedImage:
    """Decode ``data`` safely and produce every requested size, plus features.

    The format comes from the content. EXIF orientation is applied; CMYK, palette, alpha,
    16-bit and animated (first frame) inputs are normalized. Outputs carry no EXIF (no GPS
    leaks; orientation is baked in) but keep an RGB source's ICC profile.

    Args:
        data: the encoded input.
        options: sizes, output format, quality, features on/off.
        limits: caps checked from the header before decoding (default ``ImageLimits()``).

    Returns:
        A :class:`ProcessedImage`. A size at or above the source's long edge yields the source
        size (never upscaled); such sizes share one encoding.

    Raises:
        BadImage: the input is refused; the message says what and why.
    """
    opened = open_image(data, limits or ImageLimits())
    try:
        return _process(opened, options)
    finally:
        opened.image.close()


def _process(opened: Opened, options: ProcessOptions) -> ProcessedImage:
    src_mode = opened.image.mode
    icc = opened.image.info.get("icc_profile") if src_mode in ("RGB", "RGBA") else None
    exif = None
    if options.features:
        try:
            exif = opened.image.getexif()
        except Exception:
            exif = None

    long_src = max(opened.width, opened.height)
    edges = sorted({min(s, long_src) for s in options.sizes}, reverse=True)
    want_features = options.features
    feature_edge = min(FEATURE_EDGE, long_src)
    decode_edge = max(edges[0], feature_edge if want_features else 0)
    current = _decode(opened, decode_edge)

    transpose = _TRANSPOSE[opened.orientation]
    encoded: dict[int, tuple[bytes, tuple[int, int]]] = {}
    feature_copy: Image.Image | None = None
    for edge in sorted(set(edges) | ({feature_edge} if want_features else set()), reverse=True):
        size = fit(opened.width, opened.height, edge)
        if current.size != size:
            current = current.resize(size, RESAMPLE)
        upright = current.transpose(transpose) if transpose is not None else current
        if edge in edges:
            encoded[edge] = (_encode(upright, options, icc), upright.size)
        if want_features and edge == feature_edge:
            feature_copy = upright

    outputs = {s: encoded[min(s, long_src)][0] for s in options.sizes}
    dims = {s: encoded[min(s, long_src)][1] for s in options.sizes}
    width, height = opened.display_size
    feats: dict[str, Any] | None = None
    if want_features and feature_copy is not None:
        feats = {
            "width": width,
            "height": height,
            "format": opened.format,
            "mode": src_mode,
            "frames": opened.frames,
            "has_alpha": feature_copy.mode == "RGBA",
            **_features.extract(np.asarray(feature_copy)),
            "exif": _features.exif_summary(exif),
        }
    return ProcessedImage(
        width=width,
        height=height,
        format=opened.format,
        mode=src_mode,
        outputs=outputs,
        output_format=options.format,
        features=feats,
        output_dims=dims,
    )
