"""Image features in pure NumPy, from a small decoded copy (long edge ~256 px): a few ms each.

Everything returned is plain JSON (str, int, float, list, dict). Colour statistics weigh each
pixel by its alpha, so a red disc on a transparent background is red, not pink-on-white. They
are counted on a half-size copy (``COLOUR_EDGE``, 128 px; 2x2 means): a quarter of the binning,
and on photos the same palette within a few levels and shares within ~0.01-0.03 (a test checks);
hashes and sharpness keep the 256 px copy.

Features: mean colour, dominant colours (weighted k-means over a 15-bit colour histogram, so the
cost depends on the number of distinct colours, not pixels), 16-bin histograms per channel and
for luminance, perceptual hashes (dHash and DCT pHash, 64 bits as hex), sharpness (variance of
the Laplacian at the fixed 256 px scale, so values compare across images) and EXIF camera data.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from typing import Any

import numpy as np

HIST_BINS = 16
COLOUR_EDGE = 128  # long edge of the copy colour statistics (and BlurHash) are computed on
DOMINANT_K = 5
KMEANS_ITERATIONS = 10
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def to_rgb_alpha(array: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Split an L/RGB/RGBA uint8 array into (H, W, 3) RGB and an optional (H, W) alpha."""
    if array.ndim == 2:
        return np.repeat(array[..., None], 3, axis=2), None
    if array.shape[2] == 4:
        return array[..., :3], array[..., 3]
    return array, None


def _hex(rgb: np.ndarray | Sequence[float]) -> str:
    r, g, b = (int(round(float(v))) for v in rgb)
    return f"#{r:02x}{g:02x}{b:02x}"


def mean_colour(rgb: np.ndarray, weights: np.ndarray | None) -> list[int]:
    """Alpha-weighted mean colour as [r, g, b] (``weights`` None: every pixel counts fully)."""
    flat = rgb.reshape(-1, 3)
    if weights is None:
        if not len(flat):
            return [0, 0, 0]
        # A vector-matrix product: ~15x faster than flat.sum(axis=0) over (N, 3) uint8.
        mean = np.ones(len(flat)) @ flat.astype(np.float64) / len(flat)
        return [int(round(float(v))) for v in mean]
    total = float(weights.sum())
    if total <= 0:
        return [0, 0, 0]
    # A matrix-vector product: one pass, no (N, 3) temporary of weighted values.
    mean = weights.reshape(-1).astype(np.float64) @ flat.astype(np.float64) / total
    return [int(round(v)) for v in mean]


def _nearest(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Index of each point's nearest centre: argmin of |c|^2 - 2 p.c (|p|^2 - 2 p.c + |c|^2
    without the |p|^2 every centre shares): one matrix product, no (N, K, 3)."""
    return np.asarray(((centres**2).sum(axis=1)[None, :] - 2.0 * points @ centres.T).argmin(axis=1))


def dominant_colours(rgb: np.ndarray, weights: np.ndarray | None,
                     k: int = DOMINANT_K) -> list[dict[str, Any]]:
    """The ``k`` main colours with the fraction of the picture each covers (largest first).

    Pixels are binned to 5 bits per channel first; weighted k-means then runs on the occupied
    bins (their mean colours), seeded deterministically k-means++-style from the heaviest bin.
    ``weights`` None: every pixel counts fully.
    """
    flat = rgb.reshape(-1, 3)
    q = (flat >> 3).astype(np.int32)
    idx = (q[:, 0] << 10) | (q[:, 1] << 5) | q[:, 2]
    w = None if weights is None else weights.reshape(-1).astype(np.float64)
    counts: np.ndarray = np.bincount(idx, weights=w, minlength=32768)  # unweighted: ints
    occupied = np.nonzero(counts)[0]
    if occupied.size == 0:
        return []
    channel_weights = [flat[:, c] if w is None else flat[:, c] * w for c in range(3)]
    sums = np.stack(
        [np.bincount(idx, weights=cw, minlength=32768)[occupied] for cw in channel_weights],
        axis=1,
    )
    mass = counts[occupied]
    points = sums / mass[:, None]

    # Deterministic k-means++ seeding: heaviest bin, then the bin with most weight x distance^2.
    centres = [points[int(np.argmax(mass))]]
    d2 = ((points - centres[0]) ** 2).sum(axis=1)
    while len(centres) < k:
        score = mass * d2
        best = int(np.argmax(score))
        if score[best] <= 1.0:  # everything left is within ~1 level of a centre
            break
        centres.append(points[best])
        d2 = np.minimum(d2, ((points - points[best]) ** 2).sum(axis=1))
    c = np.array(centres, dtype=np.float64)
    clusters = np.arange(len(c))
    for _ in range(KMEANS_ITERATIONS):
        member = (_nearest(points, c)[:, None] == clusters).astype(np.float64)  # (N, K) one-hot
        totals = mass @ member
        new = member.T @ sums  # each cluster's mass-weighted colour sum
        nonempty = totals > 0
        new[nonempty] /= totals[nonempty, None]
        new[~nonempty] = c[~nonempty]
        moved = float(np.abs(new - c).max())
        c = new
        if moved <= 0.5:
            break
    labels = _nearest(points, c)
    totals = np.bincount(labels, weights=mass, minlength=len(c))
    whole = float(totals.sum())
    order = np.argsort(-totals)
    return [
        {
            "hex": _hex(c[i]),
            "rgb": [int(round(float(v))) for v in c[i]],
            "fraction": round(float(totals[i]) / whole, 4),
        }
        for i in order
        if totals[i] > 0
    ]


def histogram(rgb: np.ndarray, weights: np.ndarray | None, bins: int = HIST_BINS) -> dict[str, Any]:
    """Normalized ``bins``-bin histograms of R, G, B and luminance (each sums to ~1).

    One ``bincount`` for all four: channel ``c``'s bin ``b`` is counted at ``c * bins + b``.
    ``weights`` None: every pixel counts fully.
    """
    flat = rgb.reshape(-1, 3)
    shift = 8 - int(np.log2(bins))
    luma = np.clip(flat.astype(np.float32) @ _LUMA, 0, 255).astype(np.uint8)
    codes = np.empty((len(flat), 4), np.int32)
    codes[:, :3] = flat >> shift
    codes[:, 3] = luma >> shift
    codes += np.arange(4, dtype=np.int32) * bins
    if weights is None:
        total = float(len(flat)) or 1.0
        h = np.bincount(codes.reshape(-1), minlength=4 * bins)
    else:
        w = weights.reshape(-1).astype(np.float64)
        total = float(w.sum()) or 1.0
        h = np.bincount(codes.reshape(-1), weights=np.repeat(w, 4), minlength=4 * bins)
    out: dict[str, Any] = {"bins": bins}
    for c, name in enumerate(("r", "g", "b", "luma")):
        out[name] = [round(float(v) / total, 4) for v in h[c * bins:(c + 1) * bins]]
    return out


def grey(rgb: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """Luminance as float32 0..255, transparent areas shown over white."""
    g = rgb.astype(np.float32) @ _LUMA
    if alpha is not None:
        a = alpha.astype(np.float32) / 255.0
        g = g * a + 255.0 * (1.0 - a)
    return g


def _edges(n: int, out: int) -> np.ndarray:
    return (np.arange(out) * n) // out


def area_resize(g: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Average ``g`` (2-D float) over an ``out_h`` x ``out_w`` grid (nearest when enlarging)."""
    h, w = g.shape
    if h >= out_h:
        starts = _edges(h, out_h)
        g = np.add.reduceat(g, starts, axis=0) / np.diff(np.append(starts, h))[:, None]
    else:
        g = g[_edges(h, out_h) if h else np.zeros(out_h, int)]
    if w >= out_w:
        starts = _edges(w, out_w)
        g = np.add.reduceat(g, starts, axis=1) / np.diff(np.append(starts, w))[None, :]
    else:
        g = g[:, _edges(w, out_w)]
    return g


def _bits_hex(bits: np.ndarray) -> str:
    value = 0
    for bit in bits.reshape(-1):
        value = (value << 1) | int(bit)
    return f"{value:0{(bits.size + 3) // 4}x}"


def dhash(g: np.ndarray) -> str:
    """Difference hash: 8x8 left-right brightness gradients, 16 hex digits."""
    small = area_resize(g, 8, 9)
    return _bits_hex(small[:, 1:] > small[:, :-1])


_N = 32
_DCT = np.sqrt(2.0 / _N) * np.cos(np.pi * (2 * np.arange(_N)[None, :] + 1) * np.arange(_N)[:, None] / (2 * _N))
_DCT[0] /= np.sqrt(2.0)


def phash(g: np.ndarray) -> str:
    """DCT perceptual hash: low 8x8 frequencies of a 32x32 copy against their median."""
    small = area_resize(g, _N, _N).astype(np.float64)
    low = (_DCT @ small @ _DCT.T)[:8, :8].reshape(-1)
    return _bits_hex(low > np.median(low[1:]))


def hamming(a: str, b: str) -> int:
    """Number of differing bits between two hex hashes of the same length."""
    if len(a) != len(b):
        raise ValueError(f"hashes differ in length: {len(a)} vs {len(b)} hex digits")
    return bin(int(a, 16) ^ int(b, 16)).count("1")


def sharpness(g: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian: higher means more fine detail (less blur)."""
    if g.shape[0] < 3 or g.shape[1] < 3:
        return 0.0
    lap = (
        g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:] - 4.0 * g[1:-1, 1:-1]
    )
    return round(float(lap.var()), 2)


def _clean(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    value = value.replace("\x00", "").strip()
    return value[:128] or None


def exif_summary(exif: Any) -> dict[str, str] | None:
    """Camera make/model and capture date from a Pillow ``Image.Exif``, or None if absent."""
    if exif is None:
        return None
    out: dict[str, str] = {}
    try:
        make, model = _clean(exif.get(0x010F)), _clean(exif.get(0x0110))
        taken = _clean(exif.get_ifd(0x8769).get(0x9003)) or _clean(exif.get(0x0132))
    except Exception:  # a malformed EXIF block is not the image's fault
        return None
    if make:
        out["make"] = make
    if model:
        out["model"] = model
    if taken:
        try:
            out["taken"] = _dt.datetime.strptime(taken, "%Y:%m:%d %H:%M:%S").isoformat()
        except ValueError:
            out["taken"] = taken
    return out or None


def colour_copy(array: np.ndarray) -> np.ndarray:
    """A copy of at most ~``COLOUR_EDGE`` px long edge: k x k block means (``Image.reduce``,
    which premultiplies alpha, so a transparent pixel's colour does not bleed). Inputs below
    twice ``COLOUR_EDGE`` come back as they are."""
    k = max(array.shape[:2]) // COLOUR_EDGE
    if k < 2:
        return array
    from PIL import Image

    return np.asarray(Image.fromarray(np.ascontiguousarray(array)).reduce(k))


def extract(array: np.ndarray, colour: np.ndarray | None = None,
            grey_copy: np.ndarray | None = None) -> dict[str, Any]:
    """Colour, hash and sharpness features of a small L/RGB/RGBA uint8 copy.

    Args:
        array: the ~256 px copy (hashes and sharpness are computed on it).
        colour: the copy colour statistics are counted on (default :func:`colour_copy`).
        grey_copy: ``grey`` of ``array``, when the caller has it already.

    The caller adds the facts known from the header (dimensions, format, EXIF); see
    :func:`corelane.imaging.process_image`.
    """
    array = np.ascontiguousarray(array)
    if grey_copy is None:
        grey_copy = grey(*to_rgb_alpha(array))
    rgb, alpha = to_rgb_alpha(colour_copy(array) if colour is None else colour)
    weights = alpha.astype(np.float64) / 255.0 if alpha is not None else None
    mean = mean_colour(rgb, weights)
    return {
        "mean_color": _hex(mean),
        "mean_rgb": mean,
        "dominant_colors": dominant_colours(rgb, weights),
        "histogram": histogram(rgb, weights),
        "dhash": dhash(grey_copy),
        "phash": phash(grey_copy),
        "sharpness": sharpness(grey_copy),
    }
