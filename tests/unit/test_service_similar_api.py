"""GET /api/jobs/{id}/duplicates and GET /api/items/{id}/similar: groups, earlier jobs, errors."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from typing import Any

import imaging_samples as samples
import pytest
import service_fixtures
from service_fixtures import upload, wait_job

from corelane.imaging import ProcessOptions, process_image

api_app = service_fixtures.api_app
service_app = service_fixtures.service_app


def _features(data: bytes) -> dict[str, Any]:
    features = process_image(data, ProcessOptions(sizes=(64,))).features
    assert features is not None
    return features


@pytest.fixture(scope="module")
def photos() -> dict[str, bytes]:
    astronaut = samples.real_photo("astronaut")
    return {
        "astronaut.jpg": samples.jpeg_from_array(astronaut, quality=92),
        "astronaut-q40.jpg": samples.jpeg_from_array(astronaut, quality=40),
        "coffee.jpg": samples.jpeg_from_array(samples.real_photo("coffee")),
        "chelsea.jpg": samples.jpeg_from_array(samples.real_photo("chelsea")),
    }


def _stored_job(app: Any, job_id: str, files: list[tuple[str, bytes]]) -> list[str]:
    """A finished job written straight into the store (no workers): returns the item ids."""
    store = app.extensions["corelane"].store
    rows = [{"id": f"{job_id}-{i}", "idx": i, "name": name} for i, (name, _) in enumerate(files)]
    store.create_job(job_id, {"sizes": [64]}, rows)
    for row, (_, data) in zip(rows, files, strict=True):
        assert store.item_done(row["id"], {"width": 1, "height": 1, "format": "JPEG",
                                           "outputs": {}, "features": _features(data)})
    time.sleep(0.01)  # distinct created_at for the next job
    return [row["id"] for row in rows]


def test_duplicates_inside_a_job_and_in_earlier_jobs(api_app: Any, photos: dict[str, bytes]) -> None:
    client = api_app.test_client()
    [old_astronaut, old_chelsea] = _stored_job(
        api_app, "old", [("old-astronaut.jpg", photos["astronaut-q40.jpg"]),
                         ("old-chelsea.jpg", photos["chelsea.jpg"])])
    ids = _stored_job(api_app, "new", [
        ("astronaut.jpg", photos["astronaut.jpg"]),
        ("coffee.jpg", photos["coffee.jpg"]),
        ("astronaut-again.jpg", photos["astronaut.jpg"]),  # the same file twice
        ("astronaut-q40.jpg", photos["astronaut-q40.jpg"]),
    ])
    later = _stored_job(api_app, "later", [("later-coffee.jpg", photos["coffee.jpg"])])

    body = client.get("/api/jobs/new/duplicates").get_json()
    assert body["radius"] == 10
    [group] = body["groups"]
    assert [i["name"] for i in group["items"]] == ["astronaut.jpg", "astronaut-again.jpg",
                                                    "astronaut-q40.jpg"]
    assert group["kind"] == "near" and group["exact"] == [[ids[0], ids[2]]]
    earlier = {e["name"]: e["matches"] for e in body["earlier"]}
    # Each astronaut matches the old job's astronaut; coffee's match is in a *later* job: not listed.
    assert set(earlier) == {"astronaut.jpg", "astronaut-again.jpg", "astronaut-q40.jpg"}
    for name, matches in earlier.items():
        assert [m["item_id"] for m in matches] == [old_astronaut]
        assert matches[0]["job_id"] == "old"
        assert matches[0]["exact"] is (name == "astronaut-q40.jpg")  # the very same bytes
    assert old_chelsea not in str(body)

    later_body = client.get("/api/jobs/later/duplicates").get_json()
    assert later_body["groups"] == []
    assert later_body["earlier"][0]["matches"][0]["item_id"] == ids[1]
    assert later_body["earlier"][0]["item_id"] == later[0]


def test_similar_items_nearest_first_across_jobs(api_app: Any, photos: dict[str, bytes]) -> None:
    client = api_app.test_client()
    [a, coffee] = _stored_job(api_app, "j1", [("a.jpg", photos["astronaut.jpg"]),
                                             ("coffee.jpg", photos["coffee.jpg"])])
    [b] = _stored_job(api_app, "j2", [("b.jpg", photos["astronaut-q40.jpg"])])
    body = client.get(f"/api/items/{a}/similar").get_json()
    assert body["job_id"] == "j1" and body["name"] == "a.jpg" and len(body["phash"]) == 16
    assert [(s["item_id"], s["job_id"], s["exact"]) for s in body["similar"]] == [(b, "j2", False)]
    assert body["similar"][0]["distance"] <= 10
    wide = client.get(f"/api/items/{a}/similar?radius=32&limit=1").get_json()
    assert len(wide["similar"]) == 1 and wide["similar"][0]["item_id"] == b
    # A deleted job's items stop appearing.
    api_app.extensions["corelane"].store.delete_job("j2")
    assert client.get(f"/api/items/{a}/similar").get_json()["similar"] == []
    assert client.get(f"/api/items/{b}/similar").status_code == 404
    assert coffee


@pytest.mark.parametrize(("url", "status", "needle"), [
    ("/api/jobs/nope/duplicates", 404, "nope"),
    ("/api/items/nope/similar", 404, "no finished image"),
    ("/api/jobs/j/duplicates?radius=99", 400, "radius must be a whole number 0..32"),
    ("/api/jobs/j/duplicates?radius=-1", 400, "radius must be"),
    ("/api/items/x/similar?limit=0", 400, "limit must be a whole number 1..100"),
    ("/api/items/x/similar?limit=abc", 400, "limit must be"),
])
def test_bad_requests(api_app: Any, url: str, status: int, needle: str) -> None:
    resp = api_app.test_client().get(url)
    assert resp.status_code == status
    assert needle in resp.get_json()["error"]["message"]


@pytest.fixture
def token_app(tmp_path: Any) -> Iterator[Any]:
    from corelane.service.app import create_app

    app = create_app(service_fixtures.make_config(tmp_path, run_jobs=False, api_token="s3cret"))
    yield app
    app.extensions["corelane"].close()


@pytest.mark.parametrize("url", ["/api/items/x/similar", "/api/jobs/x/duplicates"])
def test_token_is_required_when_configured(token_app: Any, url: str) -> None:
    client = token_app.test_client()
    assert client.get(url).status_code == 401
    assert client.get(url, headers={"Authorization": "Bearer s3cret"}).status_code == 404


def test_end_to_end_with_workers(service_app: Any, photos: dict[str, bytes]) -> None:
    client = service_app.test_client()
    resp = upload(client, {"astronaut.jpg": photos["astronaut.jpg"],
                           "astronaut-q40.jpg": photos["astronaut-q40.jpg"],
                           "coffee.jpg": photos["coffee.jpg"]}, sizes="128")
    assert resp.status_code == 202
    job = wait_job(client, resp.get_json()["id"])
    assert job["state"] == "done"
    items = {i["name"]: i for i in client.get(f"/api/jobs/{job['id']}/items").get_json()["items"]}
    features = items["astronaut.jpg"]["features"]
    assert features["sha256"] == hashlib.sha256(photos["astronaut.jpg"]).hexdigest()
    assert features["focal"]["source"] == "face" and len(features["blurhash"]) == 28
    body = client.get(f"/api/jobs/{job['id']}/duplicates").get_json()
    assert [[i["name"] for i in g["items"]] for g in body["groups"]] == [
        ["astronaut.jpg", "astronaut-q40.jpg"]]
