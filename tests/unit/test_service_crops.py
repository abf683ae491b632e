"""Crops and the resize filter through the service: the upload options (400s naming the field),
the OpenAPI document, and (with real workers) crop outputs stored, listed, downloadable and in
the ZIP."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import imaging_samples as samples
import pytest
import service_fixtures
from openapi_spec_validator import validate
from PIL import Image
from service_fixtures import upload

from corelane.service.objects import ObjectStore

api_app = service_fixtures.api_app
service_app = service_fixtures.service_app


_error = service_fixtures.api_error


@pytest.mark.parametrize("options, needle", [
    ({"crops": "16x9"}, "crop '16x9' is not an aspect ratio W:H"),
    ({"crops": "1:1,0:4"}, "crop 0:4 needs both sides of at least 1"),
    ({"crops": "20:1"}, "more elongated than 10:1"),
    ({"crops": "1:1,:9"}, "crop ':9' is not an aspect ratio"),
    ({"crops": ",".join(f"{n}:{n + 1}" for n in range(1, 10))}, "at most 8 allowed"),
    ({"crops": "10001:10000"}, "crop 10001:10000 has a side over 9999"),
    ({"crops": "1:1," * 100}, "at most 8 ratios"),
    ({"resize": "best"}, "resize must be one of fast, quality, got 'best'"),
    ({"resize": ""}, "resize must be one of fast, quality"),
    ({"format": "heic"}, "format 'heic' is not one of avif, jpeg, png, webp"),
])
def test_malformed_crops_and_resize_are_400(api_app: Any, options: dict[str, str],
                                            needle: str) -> None:
    resp = upload(api_app.test_client(), {"a.jpg": samples.photo_jpeg(64, 48)}, **options)
    assert needle in _error(resp, 400)
    assert not list((api_app.extensions["corelane"].objects.root).rglob("src/*/*"))


def test_good_options_are_normalized_and_stored(api_app: Any) -> None:
    client = api_app.test_client()
    resp = upload(client, {"a.jpg": samples.photo_jpeg(64, 48)}, crops=" 2:2, 16:9,32:18 ",
                  resize="Quality", format="AVIF", quality="60")
    assert resp.status_code == 202, resp.get_data(as_text=True)
    options = resp.get_json()["options"]
    assert options["crops"] == ["1:1", "16:9"] and options["resize"] == "quality"
    assert options["format"] == "avif" and options["quality"] == 60
    # The defaults: no crops, the fast filter.
    plain = upload(client, {"b.jpg": samples.photo_jpeg(64, 48)}).get_json()["options"]
    assert plain["crops"] == [] and plain["resize"] == "fast"
    from corelane.service.runners.policy import decode_options

    decoded = decode_options(options)
    assert decoded.crops == ((1, 1), (16, 9)) and decoded.resize == "quality"


def test_openapi_documents_avif_crops_and_resize(api_app: Any) -> None:
    doc = api_app.test_client().get("/api/openapi.json").get_json()
    validate(doc)
    form = doc["paths"]["/api/jobs"]["post"]["requestBody"]["content"]["multipart/form-data"]
    fields = form["schema"]["properties"]
    assert fields["format"]["enum"] == ["avif", "jpeg", "png", "webp"]
    assert fields["resize"]["enum"] == ["fast", "quality"]
    assert fields["crops"]["example"] == "1:1,16:9"
    stored = doc["components"]["schemas"]["Options"]["properties"]
    assert {"crops", "resize"} <= set(stored) and "avif" in stored["format"]["enum"]
    assert "crops" in doc["components"]["schemas"]["Item"]["properties"]
    crop_path = doc["paths"]["/api/jobs/{job_id}/items/{item_id}/crops/{crop}/{size}"]
    assert "image/avif" in crop_path["get"]["responses"]["200"]["content"]


def test_crops_are_stored_listed_downloadable_zipped_and_deleted(service_app: Any) -> None:
    client = service_app.test_client()
    astronaut = samples.jpeg_from_array(samples.real_photo("astronaut"), quality=90)
    resp = upload(client, {"astronaut.jpg": astronaut, "wide.jpg": samples.photo_jpeg(900, 300)},
                  sizes="256,64", crops="16:9,1:1", resize="quality", format="webp")
    assert resp.status_code == 202, resp.get_data(as_text=True)
    job_id = resp.get_json()["id"]
    assert service_fixtures.wait_job(client, job_id, timeout=60)["state"] == "done"
    items = service_fixtures.items_by_name(client, job_id)
    photo = items["astronaut.jpg"]
    assert set(photo["outputs"]) == {"256", "64"}  # the sizes alone, as before
    assert set(photo["crops"]) == {"16:9", "1:1"}
    wide = photo["crops"]["16:9"]
    left, top, right, bottom = wide["box"]
    assert right - left == 512 and abs((bottom - top) - 288) <= 1  # the widest 16:9 box
    focal = photo["features"]["focal"]
    assert focal["source"] == "face" and top < focal["y"] * 512 < bottom
    for size, (w, h) in {"256": (256, 144), "64": (64, 36)}.items():
        info = wide["outputs"][size]
        assert (info["width"], info["height"]) == (w, h) and "key" not in info
        got = client.get(info["url"])
        assert got.status_code == 200 and got.mimetype == "image/webp"
        assert Image.open(io.BytesIO(got.data)).size == (w, h)
        assert info["url"].endswith(f"/crops/16x9/{size}")
    # Both spellings of the ratio reach the same file; a crop that was not made is a 404.
    base = f"/api/jobs/{job_id}/items/{photo['id']}/crops"
    assert client.get(f"{base}/16:9/64").data == client.get(f"{base}/16x9/64").data
    assert "no 4:3 crop" in _error(client.get(f"{base}/4x3/64"), 404)
    assert client.get(f"{base}/16x9/512").status_code == 404
    # A 900x300 picture gives a 1:1 crop of 300x300: never upscaled, so 256 is 256, 64 is 64.
    square = items["wide.jpg"]["crops"]["1:1"]
    assert square["box"][2] - square["box"][0] == 300 == square["box"][3] - square["box"][1]
    assert (square["outputs"]["256"]["width"], square["outputs"]["256"]["height"]) == (256, 256)

    objects = service_app.extensions["corelane"].objects
    folder = objects.root / "out" / photo["id"][:2] / photo["id"]
    assert sorted(p.name for p in folder.iterdir()) == [
        "256.webp", "64.webp", "c16x9-256.webp", "c16x9-64.webp", "c1x1-256.webp", "c1x1-64.webp"]

    archive = zipfile.ZipFile(io.BytesIO(client.get(f"/api/jobs/{job_id}/zip").data))
    names = set(archive.namelist())
    assert {"001-astronaut/256.webp", "001-astronaut/crop-16x9-256.webp",
            "001-astronaut/crop-1x1-64.webp", "002-wide/crop-1x1-256.webp"} <= names
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest[0]["crops"]["16:9"] == {
        "box": wide["box"], "files": {"256": "001-astronaut/crop-16x9-256.webp",
                                      "64": "001-astronaut/crop-16x9-64.webp"}}

    deleted = client.delete(f"/api/jobs/{job_id}").get_json()
    assert deleted["files_removed"] == 2 * (1 + 2 + 4)  # per image: source, 2 sizes, 4 crops
    assert not folder.exists()


def test_crop_keys_are_validated(tmp_path: Path) -> None:
    item = "ab" + "0" * 30
    key = ObjectStore.crop_key(item, "16:9", 512, "webp")
    assert key == f"out/ab/{item}/c16x9-512.webp"
    store = ObjectStore(tmp_path)
    assert store.path(key) == tmp_path.resolve() / key
    for bad in (f"out/ab/{item}/c16x9-../x.webp", f"out/ab/{item}/c16:9-512.webp",
                f"out/ab/{item}/c12345x1-512.webp"):
        with pytest.raises(ValueError, match="not an object key"):
            store.path(bad)
