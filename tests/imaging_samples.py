"""Test images generated in memory: every kind of input the image service must take or refuse.

Nothing here is committed as a binary file; each function returns the encoded ``bytes``. The
photo-like generator mixes gradients, shapes, soft texture and sensor-like noise so that JPEG
compression behaves roughly as on a photo (sizes, decode times), and it is deterministic per seed.

Used by tests/unit/test_imaging_*.py, the service tests and benchmarks/bench_imaging.py.
"""

from __future__ import annotations

import io
import struct
import zlib
from datetime import datetime

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

# EXIF tag numbers (TIFF/EXIF 2.3)
ORIENTATION = 0x0112
MAKE = 0x010F
MODEL = 0x0110
DATETIME = 0x0132
EXIF_IFD = 0x8769
DATETIME_ORIGINAL = 0x9003


# ---------------------------------------------------------------- photo-like pixels


def photo_array(width: int, height: int, seed: int = 0) -> np.ndarray:
    """An RGB uint8 array that compresses like a photo: sky gradient, shapes, texture, noise."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    top = rng.uniform(40, 200, 3).astype(np.float32)
    bottom = rng.uniform(20, 230, 3).astype(np.float32)
    tilt = rng.uniform(-40, 40, 3).astype(np.float32)
    img = np.empty((height, width, 3), np.float32)
    for c in range(3):
        img[..., c] = top[c] + (bottom[c] - top[c]) * y + tilt[c] * x
    base = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")

    # Shapes with soft edges: objects in a scene.
    draw = ImageDraw.Draw(base)
    scale = max(width, height)
    for _ in range(12):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        r = rng.uniform(0.03, 0.2) * scale
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        box = (cx - r, cy - r * rng.uniform(0.5, 1.5), cx + r, cy + r * rng.uniform(0.5, 1.5))
        if rng.random() < 0.5:
            draw.ellipse(box, fill=colour)
        else:
            draw.rectangle(box, fill=colour)
    for _ in range(6):
        pts = [(float(rng.uniform(0, width)), float(rng.uniform(0, height))) for _ in range(2)]
        draw.line(pts, fill=tuple(int(v) for v in rng.integers(0, 256, 3)), width=max(1, scale // 300))
    base = base.filter(ImageFilter.GaussianBlur(radius=max(0.6, scale / 2000)))

    # Texture at a coarse scale (foliage, fabric), upsampled; then fine per-pixel noise.
    arr = np.asarray(base, dtype=np.int16).copy()
    tw, th = max(2, width // 6), max(2, height // 6)
    texture = rng.integers(-18, 19, (th, tw, 1), dtype=np.int16).astype(np.uint8) + 128
    tex = Image.fromarray(texture[..., 0], "L").resize((width, height), Image.Resampling.BILINEAR)
    arr += np.asarray(tex, dtype=np.int16)[..., None] - 128
    arr += rng.integers(-6, 7, (height, width, 1), dtype=np.int16)
    return np.clip(arr, 0, 255).astype(np.uint8)


def _exif(
    orientation: int | None,
    make: str | None,
    model: str | None,
    taken: datetime | None,
) -> Image.Exif:
    exif = Image.Exif()
    if orientation is not None:
        exif[ORIENTATION] = orientation
    if make is not None:
        exif[MAKE] = make
    if model is not None:
        exif[MODEL] = model
    if taken is not None:
        stamp = taken.strftime("%Y:%m:%d %H:%M:%S")
        exif[DATETIME] = stamp
        exif.get_ifd(EXIF_IFD)[DATETIME_ORIGINAL] = stamp
    return exif


def photo_jpeg(
    width: int = 640,
    height: int = 480,
    *,
    seed: int = 0,
    quality: int = 90,
    orientation: int | None = None,
    make: str | None = None,
    model: str | None = None,
    taken: datetime | None = None,
    progressive: bool = False,
) -> bytes:
    """A photo-like JPEG, optionally with EXIF orientation (1-8), camera make/model and date.

    The pixels are stored as given; a viewer applying ``orientation`` shows them rotated/flipped.
    """
    return jpeg_from_array(
        photo_array(width, height, seed), quality=quality, orientation=orientation, make=make,
        model=model, taken=taken, progressive=progressive,
    )


def jpeg_from_array(
    array: np.ndarray,
    *,
    quality: int = 90,
    orientation: int | None = None,
    make: str | None = None,
    model: str | None = None,
    taken: datetime | None = None,
    progressive: bool = False,
) -> bytes:
    """Encode an RGB uint8 array as JPEG, with optional EXIF fields."""
    buf = io.BytesIO()
    kwargs: dict[str, object] = {"quality": quality, "progressive": progressive}
    if any(v is not None for v in (orientation, make, model, taken)):
        kwargs["exif"] = _exif(orientation, make, model, taken).tobytes()
    Image.fromarray(array, "RGB").save(buf, "JPEG", **kwargs)
    return buf.getvalue()


QUADRANT_COLOURS = ((255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0))


def quadrants(width: int = 96, height: int = 64) -> np.ndarray:
    """An upright test card: red top-left, green top-right, blue bottom-left, yellow bottom-right."""
    arr = np.zeros((height, width, 3), np.uint8)
    h2, w2 = height // 2, width // 2
    arr[:h2, :w2], arr[:h2, w2:], arr[h2:, :w2], arr[h2:, w2:] = QUADRANT_COLOURS
    return arr


def stored_for_orientation(upright: np.ndarray, orientation: int) -> np.ndarray:
    """The pixels a camera stores so that a viewer applying EXIF ``orientation`` shows ``upright``.

    Written from the EXIF definitions (where row 0 / column 0 of the stored image belong on the
    display), independently of corelane's own transpose table.
    """
    u = upright
    stored = {
        1: u,
        2: u[:, ::-1],  # mirrored horizontally
        3: u[::-1, ::-1],  # rotated 180
        4: u[::-1, :],  # mirrored vertically
        5: u.transpose(1, 0, 2),  # mirrored along the main diagonal
        6: np.rot90(u, 1),  # display = stored turned 90 degrees clockwise
        7: u[::-1, ::-1].transpose(1, 0, 2),  # mirrored along the anti-diagonal
        8: np.rot90(u, -1),  # display = stored turned 90 degrees counter-clockwise
    }[orientation]
    return np.ascontiguousarray(stored)


def encode(array: np.ndarray, fmt: str, mode: str | None = None, **params: object) -> bytes:
    """Encode a uint8 array with Pillow (``fmt`` a Pillow format name)."""
    buf = io.BytesIO()
    Image.fromarray(array, mode).save(buf, fmt, **params)
    return buf.getvalue()


def solid(width: int, height: int, colour: tuple[int, int, int], fmt: str = "PNG") -> bytes:
    """A flat image of one colour."""
    return encode(np.full((height, width, 3), colour, np.uint8), fmt)


# ---------------------------------------------------------------- the other input kinds


def png_rgba(width: int = 320, height: int = 240) -> bytes:
    """RGBA PNG: a red disc on a fully transparent background, half-transparent stripe."""
    arr = np.zeros((height, width, 4), np.uint8)
    yy, xx = np.mgrid[0:height, 0:width]
    disc = (xx - width / 2) ** 2 + (yy - height / 2) ** 2 < (min(width, height) / 3) ** 2
    arr[disc] = (255, 0, 0, 255)
    arr[: height // 8, :, :] = (0, 0, 255, 128)
    return encode(arr, "PNG")


def png_la(width: int = 200, height: int = 100) -> bytes:
    """Grey + alpha (LA) PNG: left half opaque grey, right half transparent."""
    arr = np.zeros((height, width, 2), np.uint8)
    arr[..., 0] = 90
    arr[:, : width // 2, 1] = 255
    return encode(arr, "PNG", "LA")


def gif_palette(width: int = 200, height: int = 150, transparent: bool = False) -> bytes:
    """A palette (P) GIF of colour bands, optionally with a transparent colour index."""
    im = Image.fromarray(photo_array(width, height, seed=3), "RGB").quantize(colors=32)
    buf = io.BytesIO()
    if transparent:
        px = np.asarray(im).copy()
        px[: height // 2] = 31  # top half uses index 31, marked transparent
        im = Image.fromarray(px, "P")
        im.putpalette(Image.fromarray(photo_array(4, 8, seed=3), "RGB").quantize(32).getpalette())
        im.save(buf, "GIF", transparency=31)
    else:
        im.save(buf, "GIF")
    return buf.getvalue()


def gif_animated(width: int = 160, height: int = 120, frames: int = 4) -> bytes:
    """An animated GIF whose frames are solid red, green, blue, ... (first frame red)."""
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]
    ims = [
        Image.new("RGB", (width, height), colours[i % len(colours)]).convert("P")
        for i in range(frames)
    ]
    buf = io.BytesIO()
    ims[0].save(buf, "GIF", save_all=True, append_images=ims[1:], duration=100, loop=0)
    return buf.getvalue()


def jpeg_cmyk(width: int = 320, height: int = 240) -> bytes:
    """A CMYK JPEG (as print workflows and some stock photos produce)."""
    rgb = Image.fromarray(photo_array(width, height, seed=5), "RGB")
    buf = io.BytesIO()
    rgb.convert("CMYK").save(buf, "JPEG", quality=90)
    return buf.getvalue()


def jpeg_grey(width: int = 320, height: int = 240) -> bytes:
    """A greyscale (L) JPEG."""
    return encode(photo_array(width, height, seed=6)[..., 1].copy(), "JPEG", quality=90)


def png_16bit_grey(width: int = 256, height: int = 64) -> bytes:
    """A 16-bit greyscale PNG (Pillow mode I;16): a horizontal ramp 0..65535."""
    ramp = np.linspace(0, 65535, width, dtype=np.float64)
    arr = np.broadcast_to(ramp, (height, width)).astype(np.uint16)
    return _png(arr.astype(">u2").tobytes(), width, height, bit_depth=16, colour_type=0,
                row_bytes=width * 2)


def png_48bit_rgb(width: int = 256, height: int = 64) -> bytes:
    """A 16-bit-per-channel RGB PNG (48-bit): red ramps up left to right, blue fixed at 65535."""
    arr = np.zeros((height, width, 3), np.uint16)
    arr[..., 0] = np.linspace(0, 65535, width, dtype=np.float64).astype(np.uint16)
    arr[..., 2] = 65535
    return _png(arr.astype(">u2").tobytes(), width, height, bit_depth=16, colour_type=2,
                row_bytes=width * 6)


def bmp(width: int = 200, height: int = 120) -> bytes:
    """A 24-bit BMP of a photo-like picture."""
    return encode(photo_array(width, height, seed=7), "BMP")


def tiff(width: int = 200, height: int = 120) -> bytes:
    """An uncompressed RGB TIFF of a photo-like picture."""
    return encode(photo_array(width, height, seed=8), "TIFF")


def webp(width: int = 200, height: int = 120) -> bytes:
    """A lossy WebP of a photo-like picture."""
    return encode(photo_array(width, height, seed=9), "WEBP", quality=80)


def ico(size: int = 32) -> bytes:
    """An ICO file: a real image, but not in the default allow-list."""
    return encode(photo_array(size, size, seed=10), "ICO")


# ---------------------------------------------------------------- bad inputs


def truncated_jpeg(width: int = 640, height: int = 480, keep: float = 0.5) -> bytes:
    """A photo JPEG cut after ``keep`` of its bytes (an interrupted upload)."""
    data = photo_jpeg(width, height, seed=11)
    return data[: int(len(data) * keep)]


def zero_bytes() -> bytes:
    """An empty file."""
    return b""


def text_file() -> bytes:
    """A text file, as if someone renamed notes.txt to photo.jpg."""
    return b"Shopping list:\n- milk\n- eggs\n- this is not a JPEG, whatever the name says\n" * 4


def garbage_after_jpeg_magic() -> bytes:
    """Starts like a JPEG, then random bytes: corrupt beyond the magic number."""
    rng = np.random.default_rng(12)
    return b"\xff\xd8\xff\xe0" + rng.integers(0, 256, 2000, dtype=np.uint8).tobytes()


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
    )


def _png(
    raw: bytes | None, width: int, height: int, *, bit_depth: int, colour_type: int,
    row_bytes: int, idat: bytes | None = None,
) -> bytes:
    """Assemble a PNG by hand (Pillow cannot write 48-bit RGB, nor lie about dimensions)."""
    if idat is None:
        assert raw is not None
        rows = b"".join(
            b"\x00" + raw[i * row_bytes : (i + 1) * row_bytes] for i in range(height)
        )
        idat = zlib.compress(rows, 6)
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def png_bomb(width: int = 30000, height: int = 30000, rows: int = 64) -> bytes:
    """A few-kB PNG declaring ``width`` x ``height`` greyscale pixels (a decompression bomb).

    Only the first ``rows`` rows of zeros are really compressed in (so the file stays tiny and
    building it is instant); a decoder that trusted the header would allocate width*height
    bytes before noticing. A well-behaved reader refuses it from the header alone.
    """
    comp = zlib.compressobj(9)
    row = b"\x00" * (width + 1)
    idat = b"".join(comp.compress(row) for _ in range(rows)) + comp.flush(zlib.Z_SYNC_FLUSH)
    return _png(None, width, height, bit_depth=8, colour_type=0, row_bytes=width, idat=idat)


# ---------------------------------------------------------------- real photos (scikit-image)

#: The astronaut's face in scikit-image's ``astronaut`` (512x512), annotated by eye from the
#: picture: (left, top, right, bottom), hairline to chin, ear to ear.
ASTRONAUT_FACE = (172, 56, 276, 180)


def real_photo(name: str) -> np.ndarray:
    """A photo bundled with scikit-image (``astronaut``, ``coffee``, ``chelsea`` ...) as RGB."""
    from skimage import data  # the test extra installs scikit-image

    return np.ascontiguousarray(getattr(data, name)()[..., :3])


def astronaut_jpeg(quality: int = 90, orientation: int | None = None) -> bytes:
    """The astronaut photo as a JPEG; with ``orientation``, stored so a viewer shows it upright."""
    upright = real_photo("astronaut")
    stored = upright if orientation is None else stored_for_orientation(upright, orientation)
    return jpeg_from_array(stored, quality=quality, orientation=orientation)


def all_good_kinds() -> dict[str, bytes]:
    """One small sample of every accepted input kind, by name."""
    return {
        "jpeg": photo_jpeg(320, 240),
        "jpeg_progressive": photo_jpeg(320, 240, progressive=True),
        "jpeg_grey": jpeg_grey(),
        "jpeg_cmyk": jpeg_cmyk(),
        "png_rgba": png_rgba(),
        "png_la": png_la(),
        "png_16bit_grey": png_16bit_grey(),
        "png_48bit_rgb": png_48bit_rgb(),
        "gif_palette": gif_palette(),
        "gif_transparent": gif_palette(transparent=True),
        "gif_animated": gif_animated(),
        "bmp": bmp(),
        "tiff": tiff(),
        "webp": webp(),
    }


def all_bad_kinds() -> dict[str, bytes]:
    """One sample of every input that must be refused, by name."""
    return {
        "zero_bytes": zero_bytes(),
        "text": text_file(),
        "truncated_jpeg": truncated_jpeg(),
        "garbage_jpeg": garbage_after_jpeg_magic(),
        "bomb_30000": png_bomb(),
        "ico_not_allowed": ico(),
    }
