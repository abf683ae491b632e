"""BlurHash placeholders: a picture as ~20-30 ASCII characters, decoded to a blur on the page.

The format (https://blurha.sh, Wolt's reference implementations): a few cosine components of
the picture in linear light, quantized and written in base 83::

    [size flag: nx-1 + (ny-1)*9][max AC][DC: sRGB average, 4 chars][AC: 2 chars each ...]

The first component (DC) is the average colour in linear light, so a decoded hash has the
picture's average colour. Encoding here is two small matrix products per channel on a copy of
at most 64 px (well under a millisecond); the decoder exists for tests and tools (the page
decodes in the browser).
"""

from __future__ import annotations

import math

import numpy as np

from corelane.imaging.features import to_rgb_alpha

_BASE83 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~"
_DIGIT = {ch: i for i, ch in enumerate(_BASE83)}
ENCODE_EDGE = 64  # the encoder averages the picture down to this long edge first


def _encode83(value: int, length: int) -> str:
    return "".join(_BASE83[(value // 83 ** (length - 1 - i)) % 83] for i in range(length))


def _decode83(text: str) -> int:
    value = 0
    for ch in text:
        if ch not in _DIGIT:
            raise ValueError(f"invalid BlurHash: {ch!r} is not a base-83 digit")
        value = value * 83 + _DIGIT[ch]
    return value


def srgb_to_linear(values: np.ndarray) -> np.ndarray:
    """0..255 sRGB -> 0..1 linear light."""
    v = np.asarray(values, np.float64) / 255.0
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


_TO_LINEAR = srgb_to_linear(np.arange(256)).astype(np.float32)  # a table for uint8 pixels


def linear_to_srgb(values: np.ndarray) -> np.ndarray:
    """0..1 linear light -> 0..255 sRGB integers."""
    v = np.clip(np.asarray(values, np.float64), 0.0, 1.0)
    s = np.where(v <= 0.0031308, v * 12.92, 1.055 * v ** (1 / 2.4) - 0.055)
    return np.floor(s * 255 + 0.5).astype(np.int64)


def _sign_pow(value: np.ndarray, exp: float) -> np.ndarray:
    return np.sign(value) * np.abs(value) ** exp


def _components(width: int, height: int) -> tuple[int, int]:
    """4x3 components for landscape pictures, 3x4 for portrait ones (the reference's advice)."""
    return (4, 3) if width >= height else (3, 4)


def encode(array: np.ndarray, components: tuple[int, int] | None = None) -> str:
    """The BlurHash of an L/RGB/RGBA uint8 picture (alpha shown over white).

    Args:
        array: (H, W), (H, W, 3) or (H, W, 4) uint8.
        components: (x, y) cosine components, 1..9 each; default 4x3 (3x4 if portrait).

    Raises:
        ValueError: the array is empty or not 8-bit L/RGB/RGBA, or components out of 1..9.
    """
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or array.size == 0:
        raise ValueError(f"BlurHash needs a non-empty uint8 L/RGB/RGBA array, got {array.dtype} "
                         f"{array.shape}")
    if array.ndim == 3 and array.shape[2] not in (3, 4):
        raise ValueError(f"BlurHash needs 1, 3 or 4 channels, got {array.shape[2]}")
    h, w = array.shape[:2]
    nx, ny = components or _components(w, h)
    if not (1 <= nx <= 9 and 1 <= ny <= 9):
        raise ValueError(f"BlurHash components must be 1..9 each, got {nx}x{ny}")
    rgb, alpha = to_rgb_alpha(np.ascontiguousarray(array))
    scale = min(1.0, ENCODE_EDGE / max(h, w))
    sh, sw = max(1, round(h * scale)), max(1, round(w * scale))
    import cv2

    lin = cv2.LUT(rgb, _TO_LINEAR)  # to linear light: a table lookup (float32 out)
    if alpha is not None:
        a = alpha.astype(np.float32)[..., None] / 255.0
        lin = lin * a + (1.0 - a)  # over white, blended in linear light
    if (sh, sw) != (h, w):  # area average down to ENCODE_EDGE, still in linear light
        lin = cv2.resize(lin, (sw, sh), interpolation=cv2.INTER_AREA)
    # basis_y (ny, sh) @ lin (sh, sw) @ basis_x.T (sw, nx), per channel. The cosines are
    # sampled at pixel centres, (x + 0.5) / width: the reference encoders use x / width, whose
    # first harmonic does not sum to zero, so a flat picture gets a visible gradient (+-8
    # levels at 40 px). Decoders are unaffected (a half-pixel shift of a 64 px average).
    basis_x = np.cos(np.pi * np.arange(nx)[:, None] * (np.arange(sw)[None, :] + 0.5) / sw)
    basis_y = np.cos(np.pi * np.arange(ny)[:, None] * (np.arange(sh)[None, :] + 0.5) / sh)
    lin64 = lin.astype(np.float64)
    factors = np.stack([basis_y @ lin64[..., c] @ basis_x.T for c in range(3)], axis=2) / (sw * sh)
    factors[1:, :, :] *= 2.0
    factors[:, 1:, :] *= 2.0
    factors[1:, 1:, :] /= 2.0  # normalization: 1 for DC, 2 for every other component
    flat = factors.reshape(-1, 3)  # row-major over (j, i): the order the format uses
    dc, ac = flat[0], flat[1:]

    out = _encode83((nx - 1) + (ny - 1) * 9, 1)
    if len(ac):
        actual_max = float(np.abs(ac).max())
        quant_max = int(max(0, min(82, math.floor(actual_max * 166 - 0.5))))
        max_value = (quant_max + 1) / 166
        out += _encode83(quant_max, 1)
    else:
        max_value = 1.0
        out += _encode83(0, 1)
    r, g, b = (int(v) for v in linear_to_srgb(dc))
    out += _encode83((r << 16) + (g << 8) + b, 4)
    if len(ac):
        q = np.floor(np.clip(np.floor(_sign_pow(ac / max_value, 0.5) * 9 + 9.5), 0, 18)).astype(int)
        for qr, qg, qb in q:
            out += _encode83(int(qr) * 19 * 19 + int(qg) * 19 + int(qb), 2)
    return out


def components_of(blurhash: str) -> tuple[int, int]:
    """(x, y) component counts of a hash, after checking its length.

    Raises:
        ValueError: not a valid BlurHash.
    """
    if not isinstance(blurhash, str) or len(blurhash) < 6:
        raise ValueError(f"invalid BlurHash {blurhash!r}: at least 6 characters are needed")
    flag = _decode83(blurhash[0])
    nx, ny = flag % 9 + 1, flag // 9 + 1
    if len(blurhash) != 4 + 2 * nx * ny:
        raise ValueError(f"invalid BlurHash {blurhash!r}: {nx}x{ny} components need "
                         f"{4 + 2 * nx * ny} characters, it has {len(blurhash)}")
    return nx, ny


def average_colour(blurhash: str) -> tuple[int, int, int]:
    """The picture's average colour (the DC component) as sRGB (r, g, b)."""
    components_of(blurhash)
    value = _decode83(blurhash[2:6])
    return (value >> 16) & 255, (value >> 8) & 255, value & 255


def decode(blurhash: str, width: int, height: int, punch: float = 1.0) -> np.ndarray:
    """Render a BlurHash as an (height, width, 3) uint8 RGB picture.

    Args:
        blurhash: the hash.
        width, height: the size to render (small, e.g. 32x32; CSS scales it up).
        punch: contrast multiplier of the AC components (1 = as encoded).

    Raises:
        ValueError: not a valid BlurHash, or a size below 1.
    """
    if width < 1 or height < 1:
        raise ValueError(f"BlurHash decode size must be at least 1x1, got {width}x{height}")
    nx, ny = components_of(blurhash)
    max_value = (_decode83(blurhash[1]) + 1) / 166 * punch
    colours = np.empty((nx * ny, 3), np.float64)
    colours[0] = srgb_to_linear(np.array(average_colour(blurhash), np.float64))
    for k in range(1, nx * ny):
        v = _decode83(blurhash[4 + 2 * k : 6 + 2 * k])
        quant = np.array([v // (19 * 19), (v // 19) % 19, v % 19], np.float64)
        colours[k] = _sign_pow((quant - 9) / 9, 2.0) * max_value
    basis_x = np.cos(np.pi * np.arange(nx)[:, None] * np.arange(width)[None, :] / width)
    basis_y = np.cos(np.pi * np.arange(ny)[:, None] * np.arange(height)[None, :] / height)
    grid = colours.reshape(ny, nx, 3)
    lin = np.stack([basis_y.T @ grid[..., c] @ basis_x for c in range(3)], axis=2)
    return linear_to_srgb(lin).astype(np.uint8)
