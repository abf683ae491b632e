"""Crops and the resize filter through the service: the upload options (400s naming the field),
the OpenAPI document, and (with real workers) crop outputs stored, listed, downloadable and in
the ZIP."""

from __future__ import annotations

from typing import Any

import imaging_samples as samples
import pytest
import service_fixtures
from openapi_spec_validator import validate
from service_fixtures import upload

api_app = service_fixtures.api_app


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
