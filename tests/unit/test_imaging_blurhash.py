"""BlurHash placeholders: they decode to the picture's average colour and rough layout."""

from __future__ import annotations

import numpy as np
import pytest

from corelane.imaging import ProcessOptions, process_image
from corelane.imaging.blurhash import (
    average_colour,
    components_of,
    decode,
    encode,
    linear_to_srgb,
    srgb_to_linear,
)
from tests import imaging_samples as samples


def _linear_mean(rgb: np.ndarray) -> np.ndarray:
    """The average colour in linear light, back in sRGB: what BlurHash's DC component holds."""
    return linear_to_srgb(srgb_to_linear(rgb.reshape(-1, 3)).mean(axis=0))


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea"])
def test_decodes_to_the_photos_average_colour(name: str) -> None:
    photo = samples.real_photo(name)
    data = samples.jpeg_from_array(photo, quality=95)
    features = process_image(data, ProcessOptions(sizes=(128,))).features
    assert features is not None
    blurhash = features["blurhash"]
    assert components_of(blurhash) == (4, 3) and len(blurhash) == 28
    want = _linear_mean(photo)
    # The DC component, and the decoded picture averaged in linear light, are the photo's.
    assert np.abs(np.array(average_colour(blurhash)) - want).max() <= 3, (blurhash, want)
    decoded = decode(blurhash, 32, 32)
    assert np.abs(_linear_mean(decoded) - want).max() <= 4
    # In plain sRGB averages (what a viewer's eyedropper gives) it is close too.
    assert np.abs(decoded.reshape(-1, 3).mean(axis=0) - photo.reshape(-1, 3).mean(axis=0)).max() < 30


def test_layout_survives_left_red_right_blue() -> None:
    arr = np.zeros((60, 120, 3), np.uint8)
    arr[:, :60] = (220, 20, 20)
    arr[:, 60:] = (20, 20, 220)
    img = decode(encode(arr), 8, 4).astype(int)
    assert img[:, 0, 0].min() > img[:, 0, 2].max()  # left column reddish
    assert img[:, -1, 2].min() > img[:, -1, 0].max()  # right column bluish


def test_solid_colour_exact_and_portrait_components() -> None:
    arr = np.zeros((90, 40, 3), np.uint8)
    arr[:] = (12, 180, 99)
    blurhash = encode(arr)
    assert components_of(blurhash) == (3, 4)  # portrait
    assert average_colour(blurhash) == (12, 180, 99)
    assert (decode(blurhash, 5, 5) == (12, 180, 99)).all()


def test_alpha_is_shown_over_white_and_grey_works() -> None:
    rgba = np.zeros((20, 20, 4), np.uint8)  # fully transparent black
    assert average_colour(encode(rgba)) == (255, 255, 255)
    grey = np.full((20, 30), 77, np.uint8)
    assert average_colour(encode(grey)) == (77, 77, 77)
    assert average_colour(encode(grey, components=(1, 1))) == (77, 77, 77)


def test_reference_hash_round_trips() -> None:
    # The example hash of the BlurHash README (https://blurha.sh), made by the reference encoder.
    reference = "LEHV6nWB2yk8pyo0adR*.7kCMdnj"
    img = decode(reference, 64, 48)
    assert img.shape == (48, 64, 3) and img.dtype == np.uint8
    again = encode(img)
    assert components_of(again) == (4, 3)
    assert np.abs(np.array(average_colour(again)) - average_colour(reference)).max() <= 2
    # The re-encoded hash renders the same picture, up to quantization.
    diff = np.abs(decode(again, 32, 24).astype(int) - decode(reference, 32, 24))
    assert diff.mean() < 3 and diff.max() <= 10


@pytest.mark.parametrize(
    ("blurhash", "needle"),
    [
        ("", "at least 6"),
        ("LEHV6nWB2yk8pyo0adR*.7kCMdn", "need 28 characters"),
        ("LEHV6nWB2yk8pyo0adR*.7kCMd\"j", "not a base-83 digit"),
    ],
)
def test_bad_hashes_are_refused(blurhash: str, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        decode(blurhash, 4, 4)


def test_bad_encode_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="non-empty uint8"):
        encode(np.zeros((0, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="non-empty uint8"):
        encode(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="1, 3 or 4 channels"):
        encode(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ValueError, match="1..9"):
        encode(np.zeros((4, 4, 3), np.uint8), components=(10, 1))
    with pytest.raises(ValueError, match="at least 1x1"):
        decode("00000000", 0, 4)
