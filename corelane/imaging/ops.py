"""Decode, orient, resize and encode one image: bytes in, bytes and a dict out.

    bytes ─ open_image (header checks) ─ draft (JPEG DCT shrink-on-load) ─ load ─ normalize mode
          ─ area-resize cascade 1024 → 512 → 128 (each from the previous) ─ orient ─ encode
                                          └─ 256 px copy ─ hashes, sharpness, focal point
                                               └─ its 128 px half ─ colours, BlurHash
                                          crops: around the focal point, from the smallest
                                                 level that is big enough

Choice of library (see docs/imaging.md and the ``imaging`` section of docs/benchmarks.md): Pillow
with ``draft`` decodes a 12 MP JPEG at 1/2..1/8 scale about as fast as OpenCV's reduced decode
and faster than a pyvips thumbnail with one thread, refuses truncated files (OpenCV fills them
grey), and covers every input kind (CMYK, palette, 16-bit, alpha, animated) in one decoder. The
resize is a box (area-average) filter, the right one for downscaling. Orientation is applied to
each small output, not to the big decoded image. Encoding dominates the remaining time for WebP,
so WebP uses libwebp method 2 (``WEBP_METHOD``): ~2x faster than the default 4 for ~4% bytes.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from typing import Any

import numpy as np
from PIL import Image

from corelane.errors import BadImage
from corelane.imaging import blurhash as _blurhash
from corelane.imaging import features as _features
from corelane.imaging import focal as _focal
from corelane.imaging._open import Opened, open_image
from corelane.imaging.options import (
    OUTPUT_FORMATS,
    ImageLimits,
    ProcessedImage,
    ProcessOptions,
    crop_label,
)

FEATURE_EDGE = 256  # long edge of the copy features are computed on
WEBP_METHOD = 2  # libwebp effort 0..6: 2 is ~2x faster than 4 for ~4% larger files
PNG_COMPRESS_LEVEL = 6  # zlib level: Pillow's default
RESAMPLE = Image.Resampling.BOX  # area average: alias-free downscaling, and Pillow's fastest
# resize="quality": Lanczos for each output's last step (from the previous, larger level):
# ~+30 ms per 12 MP photo for 3 sizes, much closer to a full-resolution Lanczos reference.
RESAMPLE_QUALITY = Image.Resampling.LANCZOS
AVIF_SPEED = 8  # libavif effort 0 (slowest) .. 10: 8 is ~3x faster than the default 6
AVIF_THREADS = 1  # one encoder thread: the process pool owns the cores

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
    elif options.format == "avif":
        im.save(buf, pil_format, quality=options.quality, speed=AVIF_SPEED,
                max_threads=AVIF_THREADS, **params)
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
    # The content digest tells identical files apart (a pHash cannot); ~1.6 ms for 2.6 MB.
    digest = hashlib.sha256(data).hexdigest() if options.features else None
    try:
        return _process(opened, options, digest)
    finally:
        opened.image.close()


def _crop_needs(
    opened: Opened, options: ProcessOptions
) -> tuple[dict[str, tuple[int, int]], dict[tuple[str, int], int]]:
    """Crop sizes in displayed source pixels, and each crop output's long edge (no upscaling)."""
    width, height = opened.display_size
    sizes = {crop_label(c): _focal.crop_size(width, height, c) for c in options.crops}
    edges = {
        (label, s): min(s, max(cw, ch)) for label, (cw, ch) in sizes.items() for s in options.sizes
    }
    return sizes, edges


def _process(opened: Opened, options: ProcessOptions, digest: str | None) -> ProcessedImage:
    src_mode = opened.image.mode
    icc = opened.image.info.get("icc_profile") if src_mode in ("RGB", "RGBA") else None
    exif = None
    if options.features:
        try:
            exif = opened.image.getexif()
        except Exception:
            exif = None

    width, height = opened.display_size
    long_src = max(opened.width, opened.height)
    edges = sorted({min(s, long_src) for s in options.sizes}, reverse=True)
    want_features = options.features
    want_small = want_features or bool(options.crops)  # the copy features and focus come from
    feature_edge = min(FEATURE_EDGE, long_src)
    crop_sizes, crop_edges = _crop_needs(opened, options)
    # A crop of long edge e out of a box of long side L needs the picture at e / L of its size.
    crop_decode = max(
        (-(-e * long_src // max(crop_sizes[label])) for (label, _), e in crop_edges.items()),
        default=0,
    )
    decode_edge = max(edges[0], feature_edge if want_small else 0, min(crop_decode, long_src))
    current = _decode(opened, decode_edge)
    levels = [current]  # every resolution made, largest first (crops pick from these)

    transpose = _TRANSPOSE[opened.orientation]
    resample = RESAMPLE_QUALITY if options.resize == "quality" else RESAMPLE
    encoded: dict[int, tuple[bytes, tuple[int, int]]] = {}
    feature_copy: Image.Image | None = None
    for edge in sorted(set(edges) | ({feature_edge} if want_small else set()), reverse=True):
        size = fit(opened.width, opened.height, edge)
        if current.size != size:
            # The feature copy is always area-averaged (from the previous level).
            current = current.resize(size, resample if edge in edges else RESAMPLE)
            levels.append(current)
        upright = current.transpose(transpose) if transpose is not None else current
        if edge in edges:
            encoded[edge] = (_encode(upright, options, icc), upright.size)
        if want_small and edge == feature_edge:
            feature_copy = upright

    outputs = {s: encoded[min(s, long_src)][0] for s in options.sizes}
    dims = {s: encoded[min(s, long_src)][1] for s in options.sizes}
    small = np.asarray(feature_copy) if feature_copy is not None else None
    focal: dict[str, Any] | None = None
    grey: np.ndarray | None = None
    if small is not None:
        grey = _features.grey(*_features.to_rgb_alpha(small))  # once: focal point and hashes
        focal = _focal.focal_point(grey)
    crops, crop_dims, crop_boxes = _crops(opened, options, levels, focal, crop_edges, resample, icc)

    feats: dict[str, Any] | None = None
    if want_features and small is not None and feature_copy is not None:
        # Colours and the BlurHash from a half-size copy (2x2 means, alpha premultiplied).
        k = max(feature_copy.size) // _features.COLOUR_EDGE
        colour = np.asarray(feature_copy.reduce(k)) if k >= 2 else small
        feats = {
            "width": width,
            "height": height,
            "format": opened.format,
            "mode": src_mode,
            "frames": opened.frames,
            "has_alpha": small.ndim == 3 and small.shape[2] == 4,
            **_features.extract(small, colour=colour, grey_copy=grey),
            "blurhash": _blurhash.encode(colour),
            "focal": focal,
            "exif": _features.exif_summary(exif),
            "sha256": digest,
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
        crops=crops,
        crop_dims=crop_dims,
        crop_boxes=crop_boxes,
        focal=focal,
    )


def _crops(
    opened: Opened,
    options: ProcessOptions,
    levels: list[Image.Image],
    focal: dict[str, Any] | None,
    crop_edges: dict[tuple[str, int], int],
    resample: Image.Resampling,
    icc: bytes | None,
) -> tuple[
    dict[str, dict[int, bytes]],
    dict[str, dict[int, tuple[int, int]]],
    dict[str, tuple[int, int, int, int]],
]:
    """Encode every crop: its box around the focal point, cut from the smallest level that has
    enough pixels, resized in one step (``Image.resize(box=...)``) and turned upright."""
    if not options.crops or focal is None:
        return {}, {}, {}
    width, height = opened.display_size
    transpose = _TRANSPOSE[opened.orientation]
    crops: dict[str, dict[int, bytes]] = {}
    dims: dict[str, dict[int, tuple[int, int]]] = {}
    boxes: dict[str, tuple[int, int, int, int]] = {}
    for aspect in options.crops:
        label = crop_label(aspect)
        box = _focal.crop_box(width, height, aspect, focal["x"], focal["y"])
        boxes[label] = box
        stored = _stored_box(box, opened)
        done: dict[int, tuple[bytes, tuple[int, int]]] = {}
        for size in options.sizes:
            edge = crop_edges[(label, size)]
            if edge not in done:
                done[edge] = _one_crop(levels, stored, opened, edge, transpose, resample, options, icc)
            crops.setdefault(label, {})[size] = done[edge][0]
            dims.setdefault(label, {})[size] = done[edge][1]
    return crops, dims, boxes


def _stored_box(box: tuple[int, int, int, int], opened: Opened) -> tuple[int, int, int, int]:
    """A box on the displayed picture, mapped back to the stored (un-rotated) pixels."""
    left, top, right, bottom = box
    w, h = opened.width, opened.height  # stored size
    o = opened.orientation
    if o in (5, 6, 7, 8):  # displayed width is the stored height
        dw, dh = h, w
    else:
        dw, dh = w, h
    if o in (2, 3):  # mirrored across x (2) or rotated 180 (3)
        left, right = dw - right, dw - left
    if o in (3, 4):
        top, bottom = dh - bottom, dh - top
    if o == 5:  # TRANSPOSE: display (x, y) = stored (y, x)
        return top, left, bottom, right
    if o == 6:  # ROTATE_270 (90 clockwise): display (x, y) = stored (y, h - 1 - x)
        return top, h - right, bottom, h - left
    if o == 7:  # TRANSVERSE: display (x, y) = stored (w - 1 - y, h - 1 - x)
        return w - bottom, h - right, w - top, h - left
    if o == 8:  # ROTATE_90 (counter-clockwise): display (x, y) = stored (w - 1 - y, x)
        return w - bottom, left, w - top, right
    return left, top, right, bottom


def _one_crop(
    levels: list[Image.Image],
    stored: tuple[int, int, int, int],
    opened: Opened,
    edge: int,
    transpose: Image.Transpose | None,
    resample: Image.Resampling,
    options: ProcessOptions,
    icc: bytes | None,
) -> tuple[bytes, tuple[int, int]]:
    left, top, right, bottom = stored
    out_size = fit(right - left, bottom - top, edge)
    need = max(out_size) / max(right - left, bottom - top)  # level scale needed, vs the source
    level = levels[0]
    for candidate in levels:  # largest first: keep the smallest that is still big enough
        if candidate.width / opened.width >= need - 1e-9:
            level = candidate
    sx, sy = level.width / opened.width, level.height / opened.height
    region = (left * sx, top * sy, right * sx, bottom * sy)
    im = level.resize(out_size, resample, box=region)
    if transpose is not None:
        im = im.transpose(transpose)
    return _encode(im, options, icc), im.size
