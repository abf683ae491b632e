"""Smart crops: the focal point lands on a real face, crops keep it, orientation and sizes hold."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from corelane.imaging import ProcessOptions, process_image
from corelane.imaging.focal import crop_box, crop_size, focal_point
from tests import imaging_samples as samples

FACE = samples.ASTRONAUT_FACE  # (left, top, right, bottom) in the 512x512 photo


def _inside(x: float, y: float, box: tuple[int, int, int, int], width: int, height: int) -> bool:
    left, top, right, bottom = box
    return left <= x * width <= right and top <= y * height <= bottom


def _decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


@pytest.mark.parametrize("quality", [92, 60])
def test_focal_point_is_on_the_astronauts_face(quality: int) -> None:
    result = process_image(samples.astronaut_jpeg(quality), ProcessOptions(sizes=(256,)))
    assert result.features is not None
    focal = result.features["focal"]
    assert focal == result.focal
    assert focal["source"] == "face"
    assert _inside(focal["x"], focal["y"], FACE, 512, 512), focal
    # The detected box overlaps the annotated face by most of its area.
    x, y, w, h = (v * 512 for v in focal["faces"][0])
    inter = max(0.0, min(x + w, FACE[2]) - max(x, FACE[0])) * max(
        0.0, min(y + h, FACE[3]) - max(y, FACE[1])
    )
    assert inter >= 0.5 * w * h


def test_crops_keep_the_face() -> None:
    # A centred 16:9 band of the square photo would be rows 112..400 and cut off her head.
    result = process_image(samples.astronaut_jpeg(), ProcessOptions(sizes=(512, 128), crops="16:9,1:1"))
    assert result.focal is not None and result.focal["source"] == "face"
    left, top, right, bottom = result.crop_boxes["16:9"]
    assert (left, right, bottom - top) == (0, 512, 288)
    assert top <= FACE[1] and bottom >= FACE[3] and top < 112
    assert result.crop_boxes["1:1"] == (0, 0, 512, 512)
    assert result.crop_dims["1:1"] == {512: (512, 512), 128: (128, 128)}
    assert result.crop_dims["16:9"] == {512: (512, 288), 128: (128, 72)}
    # The pixels are the crop's: the 128 px band matches the photo's band scaled down.
    got = _decode(result.crops["16:9"][128]).astype(float)
    photo = Image.fromarray(samples.real_photo("astronaut"))
    want = np.asarray(photo.resize((128, 72), Image.BOX, box=(0, top, 512, bottom)))
    assert np.abs(got - want).mean() < 6


def test_no_face_uses_saliency_then_centre() -> None:
    # One textured object on a flat background, off-centre: the salient point is on it.
    arr = np.full((300, 400, 3), 120, np.uint8)
    rng = np.random.default_rng(1)
    arr[200:260, 300:370] = rng.integers(0, 256, (60, 70, 3), dtype=np.uint8)
    result = process_image(samples.encode(arr, "PNG"), ProcessOptions(sizes=(200,), crops="1:1"))
    focal = result.focal
    assert focal is not None and focal["source"] == "saliency" and focal["faces"] == []
    assert 290 <= focal["x"] * 400 <= 380 and 190 <= focal["y"] * 300 <= 270, focal
    left, top, right, bottom = result.crop_boxes["1:1"]
    assert (right - left, bottom - top) == (300, 300) and left == 100  # pushed right

    flat = process_image(samples.solid(300, 200, (10, 200, 30)), ProcessOptions(sizes=(64,)))
    assert flat.features is not None
    assert flat.features["focal"] == {"x": 0.5, "y": 0.5, "source": "center", "faces": []}


@pytest.mark.parametrize("orientation", range(1, 9))
def test_crops_follow_exif_orientation(orientation: int) -> None:
    data = samples.astronaut_jpeg(95, orientation=orientation)
    # A 16:9 crop of the (upright) square photo: the band around the face.
    result = process_image(data, ProcessOptions(sizes=(256,), crops="16:9", features=False))
    assert result.features is None and result.focal is not None
    assert result.focal["source"] == "face"
    left, top, right, bottom = result.crop_boxes["16:9"]
    assert (left, right, bottom - top) == (0, 512, 288) and top <= FACE[1] and bottom >= FACE[3]
    got = _decode(result.crops["16:9"][256]).astype(float)
    upright = Image.fromarray(samples.real_photo("astronaut"))
    want = np.asarray(upright.resize((256, 144), Image.BOX, box=(0, top, 512, bottom)))
    assert got.shape == want.shape and np.abs(got - want).mean() < 6


def test_crop_never_upscales_and_sizes_collapse() -> None:
    data = samples.photo_jpeg(400, 300)
    result = process_image(data, ProcessOptions(sizes=(1024, 512, 100), crops="1:1", features=False))
    dims = result.crop_dims["1:1"]
    assert dims == {1024: (300, 300), 512: (300, 300), 100: (100, 100)}
    assert result.crops["1:1"][1024] is result.crops["1:1"][512]  # one encoding shared
    assert "1:1" in result.summary()["crops"]


def test_crop_geometry() -> None:
    assert crop_size(4000, 3000, (1, 1)) == (3000, 3000)
    assert crop_size(4000, 3000, (16, 9)) == (4000, 2250)
    assert crop_size(3000, 4000, (16, 9)) == (3000, 1688)
    assert crop_box(4000, 3000, (1, 1), 0.0, 0.5) == (0, 0, 3000, 3000)
    assert crop_box(4000, 3000, (1, 1), 1.0, 0.5) == (1000, 0, 4000, 3000)
    assert crop_box(4000, 3000, (1, 1), 0.5, 0.5) == (500, 0, 3500, 3000)


def test_focal_point_of_plain_arrays() -> None:
    assert focal_point(np.zeros((1, 1), np.float32))["source"] == "center"
    grey = samples.real_photo("astronaut").astype(np.float32).mean(axis=2)
    assert focal_point(grey)["source"] == "face"


@pytest.mark.parametrize(
    ("crops", "needle"),
    [
        ("16x9", "not an aspect ratio"),
        ("1:0", "at least 1"),
        ("-1:2", "not an aspect ratio"),
        ("1:1:1", "not an aspect ratio"),
        ("20:1", "more elongated"),
        ("1:2,1:3,1:4,1:5,1:6,1:7,1:8,1:9,1:10", "at most 8"),
        ([(1.5, 1)], "not an aspect ratio"),
        ([(True, 1)], "not an aspect ratio"),
    ],
)
def test_bad_crop_options(crops: object, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        ProcessOptions(crops=crops)  # type: ignore[arg-type]


def test_crop_options_normalized() -> None:
    assert ProcessOptions(crops="1:1, 16:9,2:2,32:18").crops == ((1, 1), (16, 9))
    assert ProcessOptions(crops="").crops == ()
    assert ProcessOptions(crops=[(4, 3), "3:4"]).crops == ((4, 3), (3, 4))



def _wrapped_mean3(a: np.ndarray) -> np.ndarray:
    """The 3x3 mean with wrapped edges, by np.roll: the plain definition."""
    return sum(np.roll(np.roll(a, dy, axis=0), dx, axis=1)
               for dy in (-1, 0, 1) for dx in (-1, 0, 1)) / 9


def test_saliency_pieces_match_their_plain_numpy_definitions() -> None:
    from corelane.imaging import focal

    rng = np.random.default_rng(3)
    a = rng.normal(size=(48, 64))
    assert np.allclose(focal._box_blur(a, 1), _wrapped_mean3(a))  # OpenCV on a wrap-padded copy
    # The spectral residual with exp(residual + i * angle), as Hou & Zhang write it.
    grey = rng.uniform(0, 255, (48, 64))
    spectrum = np.fft.fft2(grey - grey.mean())
    log_amp = np.log(np.abs(spectrum) + 1e-9)
    residual = log_amp - _wrapped_mean3(log_amp)
    sal = np.abs(np.fft.ifft2(np.exp(residual + 1j * np.angle(spectrum)))) ** 2
    want = focal._gauss_blur(sal, sigma=max(1.0, max(sal.shape) / 24))
    got = focal.saliency_map(grey)  # already 64 px wide: no resize
    assert np.allclose(got, want, rtol=1e-6, atol=1e-9 * want.max())
