"""Features are sane: colours, histogram, hashes, sharpness, EXIF, JSON."""

from __future__ import annotations

import io
import json
from datetime import datetime

import numpy as np
from PIL import Image, ImageFilter

from corelane.imaging import ProcessOptions, hamming, process_image
from corelane.imaging.features import area_resize, extract
from tests import imaging_samples as samples

OPTS = ProcessOptions(sizes=(128,))


def _features(data: bytes) -> dict:
    result = process_image(data, OPTS)
    assert result.features is not None
    return result.features


def test_pure_red_mean_and_dominant() -> None:
    f = _features(samples.solid(300, 200, (255, 0, 0)))
    assert f["mean_color"] == "#ff0000" and f["mean_rgb"] == [255, 0, 0]
    assert f["dominant_colors"][0]["hex"] == "#ff0000"
    assert f["dominant_colors"][0]["fraction"] == 1.0
    assert f["histogram"]["r"][-1] == 1.0 and f["histogram"]["g"][0] == 1.0
    assert (f["width"], f["height"], f["format"], f["mode"]) == (300, 200, "PNG", "RGB")


def test_two_colour_image_dominants_and_fractions() -> None:
    arr = np.zeros((100, 200, 3), np.uint8)
    arr[:, :150] = (0, 0, 255)  # 75% blue
    arr[:, 150:] = (255, 255, 255)  # 25% white
    f = _features(samples.encode(arr, "PNG"))
    top = [(d["hex"], d["fraction"]) for d in f["dominant_colors"][:2]]
    assert top[0][0] == "#0000ff" and abs(top[0][1] - 0.75) < 0.02
    assert top[1][0] == "#ffffff" and abs(top[1][1] - 0.25) < 0.02
    assert abs(sum(d["fraction"] for d in f["dominant_colors"]) - 1.0) < 1e-3


def test_histograms_are_normalized() -> None:
    f = _features(samples.photo_jpeg(400, 300))
    h = f["histogram"]
    assert h["bins"] == 16
    for key in ("r", "g", "b", "luma"):
        assert len(h[key]) == 16
        assert abs(sum(h[key]) - 1.0) < 1e-2


def test_alpha_weighted_colours() -> None:
    # A red disc on transparent black: colours are the disc's, not diluted by hidden pixels.
    f = _features(samples.png_rgba(320, 240))
    assert f["has_alpha"] is True
    assert f["dominant_colors"][0]["hex"] == "#ff0000"
    assert f["mean_rgb"][0] > 150 and f["mean_rgb"][1] == 0


def test_blur_lowers_sharpness() -> None:
    arr = samples.photo_array(512, 384, seed=2)
    sharp = samples.encode(arr, "PNG")
    blurred = samples.encode(
        np.asarray(Image.fromarray(arr).filter(ImageFilter.GaussianBlur(3))), "PNG"
    )
    s1, s2 = _features(sharp)["sharpness"], _features(blurred)["sharpness"]
    assert s2 < s1 / 3, (s1, s2)
    assert _features(samples.solid(100, 100, (9, 9, 9)))["sharpness"] == 0.0


def test_hash_stable_under_reencode_and_different_for_other_images() -> None:
    arr = samples.photo_array(640, 480, seed=4)
    a = _features(samples.encode(arr, "PNG"))
    reencoded = samples.encode(arr, "JPEG", quality=40)
    smaller = samples.encode(np.asarray(Image.fromarray(arr).resize((320, 240))), "WEBP", quality=60)
    other = _features(samples.encode(samples.photo_array(640, 480, seed=99), "PNG"))
    for variant in (reencoded, smaller):
        b = _features(variant)
        assert hamming(a["phash"], b["phash"]) <= 6
        assert hamming(a["dhash"], b["dhash"]) <= 6
    assert hamming(a["phash"], other["phash"]) >= 16
    assert hamming(a["dhash"], other["dhash"]) >= 12
    assert len(a["phash"]) == len(a["dhash"]) == 16


def test_exif_camera_and_date() -> None:
    data = samples.photo_jpeg(
        320, 240, make="Acme\x00", model=" PhotoMaker 3 ", taken=datetime(2021, 5, 4, 12, 34, 56)
    )
    f = _features(data)
    assert f["exif"] == {"make": "Acme", "model": "PhotoMaker 3", "taken": "2021-05-04T12:34:56"}
    assert _features(samples.photo_jpeg(100, 80))["exif"] is None


def test_features_json_round_trip_plain_types() -> None:
    f = _features(samples.photo_jpeg(300, 200, make="Acme"))
    assert json.loads(json.dumps(f)) == f


def test_features_computed_on_small_copy_of_upright_image() -> None:
    # A left-dark/right-bright image stored rotated (orientation 6): the hash sees it upright.
    upright = np.zeros((100, 200, 3), np.uint8)
    upright[:, 100:] = 255
    plain = _features(samples.jpeg_from_array(upright))
    rotated = _features(
        samples.jpeg_from_array(samples.stored_for_orientation(upright, 6), orientation=6)
    )
    assert hamming(plain["dhash"], rotated["dhash"]) <= 4


def test_area_resize_means_and_tiny_inputs() -> None:
    g = np.arange(16, dtype=np.float64).reshape(4, 4)
    assert np.allclose(area_resize(g, 2, 2), [[2.5, 4.5], [10.5, 12.5]])
    assert area_resize(np.ones((3, 2)), 8, 9).shape == (8, 9)
    one_pixel = extract(np.full((1, 1, 3), 7, np.uint8))
    assert one_pixel["mean_color"] == "#070707" and one_pixel["sharpness"] == 0.0


def test_grey_and_single_channel_inputs() -> None:
    f = _features(samples.jpeg_grey())
    assert f["mode"] == "L"
    r, g, b = f["mean_rgb"]
    assert r == g == b
    img = Image.open(io.BytesIO(samples.jpeg_grey()))
    assert img.mode == "L"


def test_unweighted_paths_match_weights_of_one() -> None:
    from corelane.imaging.features import dominant_colours, histogram, mean_colour

    rgb = samples.photo_array(200, 150, seed=7)
    ones = np.ones(rgb.shape[:2])
    assert histogram(rgb, None) == histogram(rgb, ones)
    assert mean_colour(rgb, None) == mean_colour(rgb, ones)
    assert dominant_colours(rgb, None) == dominant_colours(rgb, ones)
    half = np.full(rgb.shape[:2], 0.5)  # a uniform weight changes nothing once normalized
    assert histogram(rgb, half) == histogram(rgb, None)


def test_colours_from_the_half_size_copy_match_the_256_px_copy() -> None:
    from corelane.imaging.features import colour_copy, dominant_colours, histogram, mean_colour

    for name in ("astronaut", "coffee", "chelsea"):
        photo = np.asarray(Image.fromarray(samples.real_photo(name)).resize((256, 256), Image.BOX))
        half = colour_copy(photo)
        assert half.shape == (128, 128, 3)
        full_mean, half_mean = mean_colour(photo, None), mean_colour(half, None)
        assert max(abs(a - b) for a, b in zip(full_mean, half_mean, strict=True)) <= 1
        h_full, h_half = histogram(photo, None), histogram(half, None)
        for key in ("r", "g", "b", "luma"):
            assert np.abs(np.subtract(h_full[key], h_half[key])).max() < 0.02, (name, key)
        # The same palette (two near-equal shares may swap places: coffee's top two).
        d_full, d_half = dominant_colours(photo, None), dominant_colours(half, None)
        assert len(d_full) == len(d_half) == 5
        for want in d_full:
            got = min(d_half, key=lambda d: np.abs(np.subtract(d["rgb"], want["rgb"])).max())
            assert np.abs(np.subtract(got["rgb"], want["rgb"])).max() <= 8, (name, want, d_half)
            assert abs(got["fraction"] - want["fraction"]) < 0.03, (name, want, d_half)


def test_the_colour_copy_does_not_let_hidden_colours_bleed() -> None:
    from corelane.imaging.features import colour_copy

    # Every 2x2 block: one opaque red pixel, three fully transparent green ones.
    arr = np.zeros((256, 256, 4), np.uint8)
    arr[..., 1] = 255
    arr[::2, ::2] = (255, 0, 0, 255)
    half = colour_copy(arr)
    assert half.shape == (128, 128, 4)
    assert (half[..., :3] == (255, 0, 0)).all() and (half[..., 3] == 64).all()
    f = extract(arr)
    assert f["mean_color"] == "#ff0000" and f["dominant_colors"][0]["hex"] == "#ff0000"
