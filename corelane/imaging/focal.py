"""Where a picture's subject is, for crops: faces first, then saliency, else the centre.

    upright small copy (the 256 px feature copy) ─ grey ─┬─ 128 px ─ Haar face cascade ─ faces?
                                                         └─ 64 px ─ spectral-residual saliency
    focal point = centre of the largest face | centroid of the salient region | the centre

Faces come from OpenCV's frontal-face Haar cascade, which ships inside the opencv wheel
(``cv2.data.haarcascades``). It runs on a 128 px copy with a 1.1 scale step: ~3-7 ms on one
core (4:3 to square pictures), against ~25-40 ms at 256 px. The cascade's window is 24 px, so
faces under ~1/5 of the long edge are not found (``minSize`` asks 16 px; OpenCV never scans
below its window); a face that small does not decide a crop anyway, and saliency takes over.
Measured on 87 crops and re-encodes of the astronaut photo (face 16-60% of the picture) and 22
pictures without faces: step 1.1 finds 82 faces and no false one, 1.12 finds 80 for ~18% less
time, 1.15 74, 1.2 about half.

Saliency is the spectral residual of Hou & Zhang (CVPR 2007): the log amplitude spectrum minus
its local average, transformed back, keeps what is unexpected in the picture. It runs on a 64 px
copy (NumPy FFTs, OpenCV's area resize and blurs: ~0.3 ms). A flat picture has no salient region
and gets the centre.

Coordinates are normalized to 0..1 of the picture as displayed (after EXIF orientation).
"""

from __future__ import annotations

from typing import Any

import numpy as np

FACE_EDGE = 128  # long edge of the copy the face cascade runs on
FACE_SCALE_STEP = 1.1  # cascade pyramid step: 1.2 is ~1.5x faster but misses faces at some scales
FACE_MIN_NEIGHBORS = 4  # overlapping detections a face needs (fewer: more false faces)
FACE_MIN_FRACTION = 0.125  # smallest face, as a fraction of the copy's long edge (16 px)
SALIENCY_EDGE = 64
_FLAT_STD = 2.0  # grey-level standard deviation below which a picture is "flat"
_CASCADE = "haarcascade_frontalface_default.xml"

_detector: Any = None  # one cv2.CascadeClassifier per process, loaded on first use


def _face_detector() -> Any:
    global _detector
    if _detector is None:
        import cv2

        # OpenCV starts its own thread pool; in a process pool every worker would run one
        # and they would fight for the same cores (see docs/imaging.md, library choice).
        cv2.setNumThreads(1)
        detector = cv2.CascadeClassifier(cv2.data.haarcascades + _CASCADE)  # type: ignore[attr-defined]
        if detector.empty():  # pragma: no cover - a broken opencv install
            raise RuntimeError(f"OpenCV cannot load its {_CASCADE}")
        _detector = detector
    return _detector


def detect_faces(grey: np.ndarray) -> list[tuple[float, float, float, float]]:
    """Frontal faces in a 2-D grey picture (any scale), largest first.

    Returns:
        ``(x, y, w, h)`` boxes normalized to 0..1 of the picture's width and height.
    """
    import cv2

    h, w = grey.shape
    if min(h, w) < 2:
        return []
    scale = min(1.0, FACE_EDGE / max(h, w))
    out_h, out_w = max(1, round(h * scale)), max(1, round(w * scale))
    small: np.ndarray = grey.astype(np.float32)
    if scale < 1.0:
        # OpenCV's area interpolation (exact pixel weights): the cascade is sensitive to how
        # the copy is made, and a block average with uneven blocks hid the test photo's face.
        small = cv2.resize(small, (out_w, out_h), interpolation=cv2.INTER_AREA)
    small_u8 = cv2.equalizeHist(np.clip(small, 0, 255).astype(np.uint8))
    min_side = max(16, round(FACE_MIN_FRACTION * max(out_h, out_w)))
    if min(out_h, out_w) < min_side:
        return []
    found = _face_detector().detectMultiScale(
        small_u8,
        scaleFactor=FACE_SCALE_STEP,
        minNeighbors=FACE_MIN_NEIGHBORS,
        minSize=(min_side, min_side),
    )
    boxes = [
        (float(x) / out_w, float(y) / out_h, float(fw) / out_w, float(fh) / out_h)
        for x, y, fw, fh in (found if len(found) else [])
    ]
    return sorted(boxes, key=lambda b: -b[2] * b[3])


def _box_blur(a: np.ndarray, radius: int) -> np.ndarray:
    """Mean over a (2r+1)^2 window, edges wrapped (the spectrum is periodic)."""
    import cv2

    side = 2 * radius + 1
    padded = np.pad(a, radius, mode="wrap")  # OpenCV's filters have no wrapped border
    out = cv2.blur(padded, (side, side), borderType=cv2.BORDER_REFLECT)
    return np.asarray(out[radius:-radius, radius:-radius]) if radius else np.asarray(out)


def _gauss_blur(a: np.ndarray, sigma: float) -> np.ndarray:
    import cv2

    return np.asarray(cv2.GaussianBlur(a, (0, 0), sigma, borderType=cv2.BORDER_REFLECT))


def saliency_map(grey: np.ndarray) -> np.ndarray:
    """Spectral-residual saliency of a 2-D grey picture, on a copy with a 64 px long edge."""
    import cv2

    h, w = grey.shape
    scale = min(1.0, SALIENCY_EDGE / max(h, w))
    out_h, out_w = max(1, round(h * scale)), max(1, round(w * scale))
    g = grey.astype(np.float64)
    if (out_h, out_w) != (h, w):  # area average (OpenCV's exact weights; 10x the NumPy one)
        g = cv2.resize(grey.astype(np.float32), (out_w, out_h),
                       interpolation=cv2.INTER_AREA).astype(np.float64)
    spectrum = np.fft.fft2(g - g.mean())
    amplitude = np.abs(spectrum)
    log_amp = np.log(amplitude + 1e-9)
    residual = log_amp - _box_blur(log_amp, 1)
    # exp(residual + i * phase), the phase taken as spectrum / |spectrum| (no angle, no
    # complex exp); a zero bin has exp(log 1e-9 - ...) ~ 0 weight either way.
    phase = spectrum / np.maximum(amplitude, 1e-12)
    sal = np.abs(np.fft.ifft2(np.exp(residual) * phase)) ** 2
    return _gauss_blur(sal, sigma=max(1.0, max(sal.shape) / 24))


def salient_point(grey: np.ndarray) -> tuple[float, float] | None:
    """Centroid of the salient region (x, y in 0..1), or None for a flat picture."""
    if grey.size == 0 or float(grey.std()) < _FLAT_STD:
        return None
    sal = saliency_map(grey)
    # Hou & Zhang's object map: pixels above three times the mean saliency.
    mask = sal > 3.0 * float(sal.mean())
    if not mask.any():
        mask = sal >= float(sal.max())
    weights = np.where(mask, sal, 0.0)
    total = float(weights.sum())
    if total <= 0.0:
        return None
    sh, sw = sal.shape
    ys, xs = np.indices(sal.shape)
    x = float((weights * (xs + 0.5)).sum()) / total / sw
    y = float((weights * (ys + 0.5)).sum()) / total / sh
    return x, y


def focal_point(grey: np.ndarray) -> dict[str, Any]:
    """The point a crop should keep, from a small upright grey copy (2-D, 0..255).

    Returns:
        ``{"x", "y", "source", "faces"}``: x and y in 0..1 of the displayed picture, rounded
        to 4 places; source ``"face"`` (centre of the largest face), ``"saliency"`` or
        ``"center"``; faces the detected boxes ``[x, y, w, h]`` (normalized, largest first).
    """
    faces = detect_faces(grey)
    if faces:
        fx, fy, fw, fh = faces[0]
        x, y, source = fx + fw / 2, fy + fh / 2, "face"
    else:
        point = salient_point(grey)
        if point is None:
            x, y, source = 0.5, 0.5, "center"
        else:
            (x, y), source = point, "saliency"
    return {
        "x": round(min(1.0, max(0.0, x)), 4),
        "y": round(min(1.0, max(0.0, y)), 4),
        "source": source,
        "faces": [[round(v, 4) for v in box] for box in faces],
    }


def crop_size(width: int, height: int, aspect: tuple[int, int]) -> tuple[int, int]:
    """The largest (w, h) of ratio ``aspect`` that fits in ``width`` x ``height``."""
    aw, ah = aspect
    if width * ah >= height * aw:  # the picture is wider than the crop: full height
        return max(1, min(width, round(height * aw / ah))), height
    return width, max(1, min(height, round(width * ah / aw)))


def crop_box(
    width: int, height: int, aspect: tuple[int, int], x: float, y: float
) -> tuple[int, int, int, int]:
    """The largest ``aspect`` box inside the picture, centred on (x, y) as far as it fits.

    Args:
        width, height: the picture as displayed.
        aspect: (w, h) ratio of the crop.
        x, y: the focal point, 0..1.

    Returns:
        (left, top, right, bottom) in pixels.
    """
    cw, ch = crop_size(width, height, aspect)
    left = min(max(0, round(x * width - cw / 2)), width - cw)
    top = min(max(0, round(y * height - ch / 2)), height - ch)
    return left, top, left + cw, top + ch
