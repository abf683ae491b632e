"""Duplicates and near duplicates: real re-encodes and resizes are found, other photos are not."""

from __future__ import annotations

import hashlib
import io
import random

import pytest
from PIL import Image

from corelane.imaging import ProcessOptions, process_image
from corelane.imaging.similar import NEAR_RADIUS, HashIndex, group_duplicates, parse_hash
from tests import imaging_samples as samples


def _phash(data: bytes) -> str:
    features = process_image(data, ProcessOptions(sizes=(64,))).features
    assert features is not None
    return str(features["phash"])


def _resized_jpeg(name: str, edge: int) -> bytes:
    im = Image.fromarray(samples.real_photo(name))
    im.thumbnail((edge, edge), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=80)
    return buf.getvalue()


@pytest.fixture(scope="module")
def photo_hashes() -> dict[str, str]:
    astronaut = samples.real_photo("astronaut")
    return {
        "astronaut_q92": _phash(samples.jpeg_from_array(astronaut, quality=92)),
        "astronaut_png": _phash(samples.encode(astronaut, "PNG")),
        "astronaut_q35": _phash(samples.jpeg_from_array(astronaut, quality=35)),
        "astronaut_300px": _phash(_resized_jpeg("astronaut", 300)),
        "coffee": _phash(samples.jpeg_from_array(samples.real_photo("coffee"))),
        "coffee_200px": _phash(_resized_jpeg("coffee", 200)),
        "chelsea": _phash(samples.jpeg_from_array(samples.real_photo("chelsea"))),
        "rocket": _phash(samples.jpeg_from_array(samples.real_photo("rocket"))),
    }


def test_reencoded_and_resized_copies_are_near_duplicates(photo_hashes: dict[str, str]) -> None:
    index = HashIndex(photo_hashes.items())
    near = dict(index.query(photo_hashes["astronaut_q92"], exclude="astronaut_q92"))
    assert set(near) == {"astronaut_png", "astronaut_q35", "astronaut_300px"}, near
    assert all(d <= NEAR_RADIUS for d in near.values())
    assert set(dict(index.query(photo_hashes["coffee"]))) == {"coffee", "coffee_200px"}


def test_different_photos_are_far_apart(photo_hashes: dict[str, str]) -> None:
    others = ("coffee", "chelsea", "rocket")
    for a in ("astronaut_q92", *others):
        for b in others:
            if a != b:
                d = (parse_hash(photo_hashes[a]) ^ parse_hash(photo_hashes[b])).bit_count()
                assert d > 2 * NEAR_RADIUS, (a, b, d)


def test_groups_in_a_job(photo_hashes: dict[str, str]) -> None:
    hashes = dict(photo_hashes)
    hashes["astronaut_copy"] = hashes["astronaut_q92"]  # the same file uploaded twice
    digests = {key: key for key in hashes} | {"astronaut_copy": "astronaut_q92"}
    groups = group_duplicates(hashes, digests=digests)
    assert [g["ids"] for g in groups] == [
        ["astronaut_q92", "astronaut_png", "astronaut_q35", "astronaut_300px", "astronaut_copy"],
        ["coffee", "coffee_200px"],
    ]
    assert groups[0]["kind"] == "near" and groups[0]["max_distance"] <= NEAR_RADIUS
    assert groups[0]["exact"] == [["astronaut_q92", "astronaut_copy"]]
    assert groups[1]["exact"] == []
    two = group_duplicates({"a": hashes["coffee"], "b": hashes["coffee"]}, digests={"a": "d", "b": "d"})
    assert two == [{"ids": ["a", "b"], "kind": "exact", "max_distance": 0, "exact": [["a", "b"]]}]
    assert group_duplicates({"a": "0", "b": "1"}, radius=0) == []
    assert group_duplicates({"a": "0", "b": "1"}, radius=1)[0]["kind"] == "near"


def test_sha256_feature_tells_identical_files(photo_hashes: dict[str, str]) -> None:
    data = samples.jpeg_from_array(samples.real_photo("astronaut"), quality=92)
    other = samples.jpeg_from_array(samples.real_photo("astronaut"), quality=91)
    a = process_image(data, ProcessOptions(sizes=(64,))).features
    b = process_image(other, ProcessOptions(sizes=(64,))).features
    assert a is not None and b is not None
    assert a["sha256"] == hashlib.sha256(data).hexdigest() != b["sha256"]
    assert a["phash"] == photo_hashes["astronaut_q92"]


def test_index_matches_a_linear_scan() -> None:
    rng = random.Random(7)
    stored = [rng.getrandbits(64) for _ in range(3000)]
    # Plant neighbours at every distance 0..16 of a few queries.
    queries = [rng.getrandbits(64) for _ in range(20)]
    for q in queries:
        for d in range(17):
            bits = rng.sample(range(64), d)
            stored.append(q ^ sum(1 << b for b in bits))
    index = HashIndex(enumerate(stored))
    assert len(index) == len(stored)
    for radius in (0, 3, 4, 10, 16, 32):
        for q in queries + stored[:5]:
            want = sorted((i, (h ^ q).bit_count()) for i, h in enumerate(stored)
                          if (h ^ q).bit_count() <= radius)
            got = index.query(q, radius)
            assert sorted(got) == want
            assert [d for _, d in got] == sorted(d for _, d in got)  # nearest first


def test_add_replace_remove() -> None:
    index = HashIndex([("x", 1), ("y", 2), ("x", 3)])  # a repeated id keeps its last hash
    assert len(index) == 2 and index.hash_of("x") == 3
    index.remove("x")  # the last slot moves into the hole
    assert dict(index.items()) == {"y": 2} and index.query(2, 0) == [("y", 0)]
    big = HashIndex((i, i) for i in range(3000))  # grows past the initial capacity
    big.update([(3000, 5), (7, 0)])
    assert len(big) == 3001 and big.hash_of(7) == 0 and big.hash_of(3000) == 5
    index = HashIndex()
    index.add("a", "ffffffffffffffff")
    index.add("b", "fffffffffffffff0")
    assert index.query("ffffffffffffffff", 4) == [("a", 0), ("b", 4)]
    index.add("a", "0000000000000000")  # replaces a's hash
    assert index.query("ffffffffffffffff", 4) == [("b", 4)]
    index.remove("b")
    assert "b" not in index and index.query("ffffffffffffffff", 20) == []
    with pytest.raises(KeyError):
        index.remove("b")


@pytest.mark.parametrize(
    ("value", "needle"),
    [("xyz", "16 hex digits"), ("0" * 17, "16 hex digits"), ("", "16 hex digits"),
     (-1, "64-bit range"), (1 << 64, "64-bit range"), (True, "16 hex digits"),
     (1.5, "16 hex digits")],
)
def test_bad_hashes_are_refused(value: object, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        HashIndex().add("x", value)  # type: ignore[arg-type]


@pytest.mark.parametrize("radius", [-1, 33, 2.5, True])
def test_bad_radius_is_refused(radius: object) -> None:
    with pytest.raises(ValueError, match="radius must be"):
        HashIndex().query(0, radius)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="radius must be"):
        group_duplicates({}, radius)  # type: ignore[arg-type]


def test_duplicate_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="appears twice"):
        group_duplicates([("a", 0), ("a", 1)])
