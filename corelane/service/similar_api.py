"""Duplicates and similar images over the API, from the pHash and sha256 features.

    GET /api/jobs/{id}/duplicates[?radius=10]   groups inside the job, and matches in earlier jobs
    GET /api/items/{id}/similar[?radius=10&limit=20]   the nearest stored images, nearest first

    store (items: phash, sha256 in the features JSON) ─ refresh (rows finished since the last
    look) ─ HashIndex (one per service, in memory) ─ query ─ rows still in the store ─ JSON

The index is built on first use from the store (only the two hashes are selected, not the whole
features document) and brought up to date on each request by the rows finished since; rows that
retention or a delete removed are dropped when a query meets them. See docs/imaging.md
(*Duplicates and near duplicates*) for what the distances mean.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, current_app, jsonify, request

from corelane.errors import JobNotFound, ServiceError
from corelane.imaging.similar import MAX_RADIUS, NEAR_RADIUS, HashIndex, group_duplicates
from corelane.service.guard import token_ok
from corelane.service.jobs import ItemState
from corelane.service.store import items as items_table
from corelane.service.store import jobs as jobs_table

bp = Blueprint("similar", __name__, url_prefix="/api")

MAX_LIMIT = 100
_EXTENSION = "corelane.similar"


_ERROR = {"$ref": "#/components/responses/Error"}
_RADIUS = {"name": "radius", "in": "query", "required": False,
           "description": f"largest Hamming distance in bits (default {NEAR_RADIUS})",
           "schema": {"type": "integer", "minimum": 0, "maximum": MAX_RADIUS}}
_MATCH = {"type": "object", "properties": {
    "job_id": {"type": "string"}, "item_id": {"type": "string"}, "name": {"type": "string"},
    "distance": {"type": "integer"}, "exact": {"type": "boolean"}}}

#: This blueprint's paths in the OpenAPI document (merged by corelane/service/_openapi.py).
OPENAPI_PATHS: dict[str, Any] = {
    "/api/jobs/{job_id}/duplicates": {"get": {
        "summary": "Duplicate groups inside a job (pHash within radius; exact: same sha256), "
                   "and each image's matches in earlier jobs",
        "parameters": [{"$ref": "#/components/parameters/JobId"}, _RADIUS],
        "responses": {"200": {"description": "groups and earlier matches", "content": {
            "application/json": {"schema": {"type": "object", "properties": {
                "job_id": {"type": "string"}, "radius": {"type": "integer"},
                "groups": {"type": "array", "items": {"type": "object", "properties": {
                    "kind": {"type": "string", "enum": ["exact", "near"]},
                    "max_distance": {"type": "integer"},
                    "items": {"type": "array", "items": {"type": "object"}},
                    "exact": {"type": "array", "items": {"type": "array",
                                                         "items": {"type": "string"}}}}}},
                "earlier": {"type": "array", "items": {"type": "object", "properties": {
                    "item_id": {"type": "string"}, "name": {"type": "string"},
                    "matches": {"type": "array", "items": _MATCH}}}}}}}}},
            "400": _ERROR, "404": _ERROR}}},
    "/api/items/{item_id}/similar": {"get": {
        "summary": "The stored images nearest to one image (any job), nearest first",
        "parameters": [
            {"name": "item_id", "in": "path", "required": True, "schema": {"type": "string"}},
            _RADIUS,
            {"name": "limit", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}}],
        "responses": {"200": {"description": "similar images", "content": {
            "application/json": {"schema": {"type": "object", "properties": {
                "item_id": {"type": "string"}, "job_id": {"type": "string"},
                "name": {"type": "string"}, "phash": {"type": "string"},
                "radius": {"type": "integer"},
                "similar": {"type": "array", "items": _MATCH}}}}}},
            "400": _ERROR, "404": _ERROR}}},
}


@bp.before_request
def _guard() -> None:
    """The API's token rule (these routes are read-only GETs: no origin check needed)."""
    if not token_ok(current_app.extensions["corelane"].config, request):
        raise ServiceError("this server requires an API token (Authorization: Bearer ...)",
                           status=401)


class _Entry:
    """What the index knows of one stored image besides its hash."""

    __slots__ = ("job_id", "name", "sha256")

    def __init__(self, job_id: str, name: str, sha256: str | None) -> None:
        self.job_id, self.name, self.sha256 = job_id, name, sha256


class _SimilarIndex:
    """The service's pHash index, refreshed from the store (thread-safe)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.index = HashIndex()
        self.entries: dict[str, _Entry] = {}
        self.watermark = float("-inf")  # finished_at of the newest row seen
        self.lock = threading.Lock()

    def refresh(self) -> None:
        c = items_table.c
        q = sa.select(
            c.id, c.job_id, c.name, c.finished_at,
            c.features["phash"].as_string(), c.features["sha256"].as_string(),
        ).where(c.state == ItemState.DONE.value, c.finished_at >= self.watermark)
        with self.store.engine.connect() as conn:
            rows = conn.execute(q).all()
        fresh = []
        for item_id, job_id, name, finished_at, phash, sha256 in rows:
            self.watermark = max(self.watermark, finished_at or self.watermark)
            if phash:  # features=False jobs have none
                fresh.append((item_id, phash))
                self.entries[item_id] = _Entry(job_id, name, sha256)
        self.index.update(fresh)

    def drop_missing(self, ids: Iterable[str]) -> set[str]:
        """Forget ids whose rows are gone (deleted jobs); return the ones still there."""
        wanted = list(ids)
        if not wanted:
            return set()
        c = items_table.c
        with self.store.engine.connect() as conn:
            present = {r[0] for r in conn.execute(sa.select(c.id).where(c.id.in_(wanted)))}
        for item_id in wanted:
            if item_id not in present and item_id in self.index:
                self.index.remove(item_id)
                self.entries.pop(item_id, None)
        return present


def _index() -> _SimilarIndex:
    ext = current_app.extensions
    if _EXTENSION not in ext:
        ext.setdefault(_EXTENSION, _SimilarIndex(ext["corelane"].store))
    index: _SimilarIndex = ext[_EXTENSION]
    return index


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name, str(default)).strip()
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ServiceError(f"{name} must be a whole number {low}..{high}, got {raw!r}", status=400)
    return int(raw)


def _job_created(store: Any, job_ids: set[str]) -> dict[str, float]:
    if not job_ids:
        return {}
    c = jobs_table.c
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(c.id, c.created_at).where(c.id.in_(list(job_ids)))).all()
    return {job_id: created for job_id, created in rows}


@bp.get("/jobs/<job_id>/duplicates")
def job_duplicates(job_id: str) -> Any:
    """Groups of duplicates inside a job, and each image's matches in earlier jobs."""
    store = current_app.extensions["corelane"].store
    radius = _int_arg("radius", NEAR_RADIUS, 0, MAX_RADIUS)
    job = store.get_job(job_id)
    done = [i for i in store.list_items(job_id, ItemState.DONE) if (i["features"] or {}).get("phash")]
    by_id = {i["id"]: i for i in done}
    groups = group_duplicates(
        [(i["id"], i["features"]["phash"]) for i in done], radius,
        digests={i["id"]: i["features"].get("sha256") or "" for i in done},
    )

    def brief(item_id: str) -> dict[str, Any]:
        item = by_id[item_id]
        return {"id": item_id, "idx": item["idx"], "name": item["name"],
                "phash": item["features"]["phash"]}

    sim = _index()
    with sim.lock:
        sim.refresh()
        found = {i["id"]: [(str(o), d) for o, d in sim.index.query(i["features"]["phash"], radius)]
                 for i in done}
        others = {other for hits in found.values() for other, _ in hits
                  if other in sim.entries and sim.entries[other].job_id != job_id}
        present = sim.drop_missing(others)
        created = _job_created(store, {sim.entries[o].job_id for o in present})
        earlier = []
        for item in done:
            matches = []
            for other, distance in found[item["id"]]:
                entry = sim.entries.get(other)
                if other not in present or entry is None:
                    continue
                if created.get(entry.job_id, float("inf")) >= job["created_at"]:
                    continue  # a later job: it lists this one as its earlier match
                matches.append({
                    "job_id": entry.job_id, "item_id": other, "name": entry.name,
                    "distance": distance,
                    "exact": bool(entry.sha256) and entry.sha256 == item["features"].get("sha256"),
                })
            if matches:
                earlier.append({"item_id": item["id"], "name": item["name"], "matches": matches})
    return jsonify({
        "job_id": job_id,
        "radius": radius,
        "groups": [{"kind": g["kind"], "max_distance": g["max_distance"],
                    "items": [brief(i) for i in g["ids"]], "exact": g["exact"]} for g in groups],
        "earlier": earlier,
    })


@bp.get("/items/<item_id>/similar")
def item_similar(item_id: str) -> Any:
    """The stored images nearest to one item's pHash, in any job, nearest first."""
    radius = _int_arg("radius", NEAR_RADIUS, 0, MAX_RADIUS)
    limit = _int_arg("limit", 20, 1, MAX_LIMIT)
    sim = _index()
    with sim.lock:
        sim.refresh()
        entry = sim.entries.get(item_id)
        if entry is None or item_id not in sim.index or not sim.drop_missing([item_id]):
            raise JobNotFound(f"no finished image {item_id!r} with a perceptual hash "
                              "(unknown id, not done yet, or processed with features off)")
        hits = [(str(o), d) for o, d in
                sim.index.query(sim.index.hash_of(item_id), radius, exclude=item_id)]
        present = sim.drop_missing(other for other, _ in hits[: 2 * limit])
        similar = []
        for other, distance in hits:
            if other not in present:
                continue
            match = sim.entries[other]
            similar.append({"job_id": match.job_id, "item_id": other, "name": match.name,
                            "distance": distance,
                            "exact": bool(entry.sha256) and match.sha256 == entry.sha256})
            if len(similar) == limit:
                break
    return jsonify({"item_id": item_id, "job_id": entry.job_id, "name": entry.name,
                    "phash": f"{sim.index.hash_of(item_id):016x}", "radius": radius,
                    "similar": similar})
