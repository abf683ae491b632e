"""ProcessOptions / ImageLimits validation and the result type."""

from __future__ import annotations

import pickle

import pytest

from corelane.errors import BadImage, CorelaneError
from corelane.imaging import ImageLimits, ProcessOptions, parse_sizes


def test_defaults() -> None:
    opts = ProcessOptions()
    assert opts.sizes == (1024, 512, 128)
    assert (opts.format, opts.quality, opts.features) == ("webp", 85, True)
    limits = ImageLimits()
    assert limits.max_pixels == 89_478_485
    assert limits.max_bytes == 50 * 2**20
    assert limits.formats == frozenset({"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"})


def test_sizes_normalized_largest_first_unique() -> None:
    assert ProcessOptions(sizes=[128, 1024, 128, 512]).sizes == (1024, 512, 128)
    assert parse_sizes("128, 1024,512,") == (1024, 512, 128)


def test_format_aliases_and_case() -> None:
    assert ProcessOptions(format="JPG").format == "jpeg"
    assert ProcessOptions(format="PNG").extension == "png"
    assert ProcessOptions(format="jpeg").extension == "jpg"


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"sizes": ()}, "at least one"),
        ({"sizes": (0,)}, "out of range"),
        ({"sizes": (100_000,)}, "out of range"),
        ({"sizes": ("12a",)}, "whole number"),
        ({"sizes": (1.5,)}, "whole number"),
        ({"sizes": (True,)}, "whole number"),
        ({"format": "gif"}, "not one of"),
        ({"quality": 0}, "out of range"),
        ({"quality": 101}, "out of range"),
        ({"quality": "85"}, "whole number"),
        ({"features": "yes"}, "true or false"),
    ],
)
def test_malformed_options_raise_valueerror(kwargs: dict, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        ProcessOptions(**kwargs)


def test_limits_validation_and_normalization() -> None:
    assert ImageLimits(formats={"jpeg", "png"}).formats == {"JPEG", "PNG"}
    with pytest.raises(ValueError):
        ImageLimits(max_pixels=0)
    with pytest.raises(ValueError):
        ImageLimits(max_bytes=-1)
    with pytest.raises(ValueError):
        ImageLimits(formats="JPEG")
    with pytest.raises(ValueError):
        ImageLimits(formats=())


def test_options_are_frozen_and_picklable() -> None:
    opts = ProcessOptions(sizes=(300,), format="png", quality=70, features=False)
    with pytest.raises(AttributeError):
        opts.quality = 10  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(opts)) == opts
    assert pickle.loads(pickle.dumps(ImageLimits(max_pixels=5))) == ImageLimits(max_pixels=5)


def test_badimage_is_a_valueerror_and_survives_pickle() -> None:
    err = pickle.loads(pickle.dumps(BadImage("corrupt JPEG: boom")))
    assert isinstance(err, BadImage) and isinstance(err, ValueError)
    assert isinstance(err, CorelaneError)
    assert str(err) == "corrupt JPEG: boom"
