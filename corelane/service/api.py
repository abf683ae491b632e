"""The REST API (JSON under /api) and its OpenAPI document at /api/openapi.json.

Uploads are checked by content, never by name or declared type: each file is probed (format and
dimensions from its header, against the allow-list and the pixel cap) before it is stored, and a
file that fails becomes a failed item with its reason, while the others of the job run. Malformed
requests (not multipart, no files, bad options) get a 4xx JSON error and nothing is stored. File
parts stream into the object store as they are parsed (uploads.py) and are kept only once the
whole request passed.
"""

from __future__ import annotations

import json
import tempfile
import zipfile
from typing import Any

from flask import Blueprint, current_app, jsonify, request, send_file
from werkzeug.utils import secure_filename

from corelane.errors import BadImage, JobNotFound, ServiceError, UploadRejected
from corelane.service._openapi import openapi_document
from corelane.service.guard import origin_ok, token_ok
from corelane.service.jobs import EventName, ItemState
from corelane.service.objects import new_id
from corelane.service.retention import delete_job as delete_job_and_files
from corelane.service.uploads import IncomingFile
from corelane.service.views import public_item, public_job, split_outputs

bp = Blueprint("api", __name__, url_prefix="/api")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
OPEN_ENDPOINTS = {"api.openapi", "api.health"}
MAX_CROP_SIDE = 9999  # a crop ratio's sides, once reduced, stay small: they name object keys


def _service() -> Any:
    return current_app.extensions["corelane"]


@bp.before_request
def _guard() -> None:
    """Token (when configured) and origin checks for every API call (the Host is checked before,
    by guard.HostGuard)."""
    service = _service()
    if request.endpoint not in OPEN_ENDPOINTS and not token_ok(service.config, request):
        raise ServiceError("this server requires an API token (Authorization: Bearer ...)",
                           status=401)
    if request.method in ("POST", "PUT", "PATCH", "DELETE"):
        origin = request.headers.get("Origin")
        if not origin_ok(service.config, origin, request.environ):
            raise ServiceError(f"cross-origin request from {origin} refused", status=403)


def parse_options(form: Any) -> dict[str, Any]:
    """Validate the job options of an upload form into a JSON-able dict.

    ``crops`` (``"1:1,16:9"``, empty for none) is stored as reduced ratio strings
    (``["1:1", "16:9"]``), ``resize`` as ``"fast"`` or ``"quality"``.

    Raises:
        UploadRejected: an option is malformed (the message names it).
    """
    from corelane.imaging import ProcessOptions
    from corelane.imaging.options import RESIZE_MODES, crop_label, parse_crops

    raw_features = str(form.get("features", "true")).strip().lower()
    if raw_features not in _TRUE | _FALSE:
        raise UploadRejected(f"features must be true or false, got {raw_features!r}")
    raw_quality = str(form.get("quality", "85")).strip()
    if not raw_quality.isdigit():
        raise UploadRejected(f"quality must be a whole number 1..100, got {raw_quality!r}")
    raw_resize = str(form.get("resize", "fast")).strip().lower()
    if raw_resize not in RESIZE_MODES:
        raise UploadRejected(f"resize must be one of {', '.join(RESIZE_MODES)}, "
                             f"got {raw_resize[:40]!r}")
    raw_crops = str(form.get("crops", "")).strip()
    if len(raw_crops) > 200:
        raise UploadRejected(f"crops is {len(raw_crops)} characters long; give at most 8 "
                             "ratios such as 1:1,16:9")
    try:
        opts = ProcessOptions(sizes=form.get("sizes", "1024,512,128"),
                              format=form.get("format", "webp"), quality=int(raw_quality),
                              features=raw_features in _TRUE, crops=parse_crops(raw_crops),
                              resize=raw_resize)
    except ValueError as exc:
        raise UploadRejected(f"bad options: {exc}") from None
    for w, h in opts.crops:
        if max(w, h) > MAX_CROP_SIDE:
            raise UploadRejected(f"bad options: crop {w}:{h} has a side over {MAX_CROP_SIDE} "
                                 "(give the ratio in small numbers, e.g. 16:9)")
    return {"sizes": list(opts.sizes), "format": opts.format, "quality": opts.quality,
            "features": opts.features, "crops": [crop_label(c) for c in opts.crops],
            "resize": opts.resize}


def _display_name(name: str | None, idx: int) -> str:
    """The client's file name, kept as metadata only (control characters dropped, bounded)."""
    text = "".join(ch for ch in (name or "") if ch.isprintable()).strip()
    return text[:255] or f"image-{idx + 1}"


@bp.post("/jobs")
def create_job() -> Any:
    try:
        return _create_job()
    finally:
        # Files of a refused request, or refused themselves, go; a job's sources were committed.
        discard = getattr(request, "discard_incoming", None)
        if discard is not None:
            discard()


def _create_job() -> Any:
    service = _service()
    config = service.config
    if request.mimetype != "multipart/form-data":
        raise UploadRejected("send images as multipart/form-data in the 'files' field",
                             status=415)
    files = request.files.getlist("files") + request.files.getlist("file")
    if not files:
        raise UploadRejected("no images: send one or more files in the 'files' field")
    if len(files) > config.max_files:
        raise UploadRejected(f"{len(files)} files is more than the {config.max_files} allowed "
                             "in one job", status=413)
    options = parse_options(request.form)
    from corelane.imaging import ImageLimits

    limits = ImageLimits(max_pixels=config.max_pixels, max_bytes=config.max_file_bytes)
    rows = []
    keep: list[Any] = []
    for idx, f in enumerate(files):
        row: dict[str, Any] = {"id": new_id(), "idx": idx,
                               "name": _display_name(f.filename, idx)}
        stream: Any = f.stream
        part: IncomingFile | _Buffered = stream if isinstance(stream, IncomingFile) \
            else _Buffered(stream.read(config.max_file_bytes + 1))  # not streamed: in memory
        row["source_bytes"] = part.size
        error = None
        if part.size == 0:
            error = "empty file (0 bytes)"
        elif part.size > config.max_file_bytes:
            error = f"file is larger than the {config.max_file_bytes // 2**20} MiB limit per image"
        else:
            try:
                info = _probe(part, limits)
            except BadImage as exc:
                error = str(exc)
            else:
                row["format"] = info.get("format")
                row["width"] = info.get("width")
                row["height"] = info.get("height")
                keep.append((row, part))
        if error:
            row.update(state=ItemState.FAILED.value, error=error)
        rows.append(row)
    for row, part in keep:  # only once every check passed: a refused request stores nothing
        row["source_key"] = part.commit() if isinstance(part, IncomingFile) \
            else service.objects.put_source(part.data)
    job_id = new_id()
    service.store.create_job(job_id, options, rows)
    job = public_job(service.store.get_job(job_id))
    service.publish(EventName.JOB_CREATED, job_id, {"job_id": job_id, "job": job})
    service.wake_runner()
    return jsonify(job), 202, {"Location": job["urls"]["self"]}


class _Buffered:
    """An upload read into memory (a request that did not stream): what _probe needs."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)
        self.head = data
        self.complete = True

    def read_all(self) -> bytes:
        return self.data


def _probe(part: Any, limits: Any) -> dict[str, Any]:
    """Probe an upload from its head; when that fails and the head is not the whole file, from
    the whole file, whose verdict (and message) is the one that counts."""
    from corelane.imaging import probe

    if not part.complete:
        try:
            return dict(probe(part.head, limits))
        except Exception:  # noqa: BLE001 - a header past the head, or a cut multi-frame file
            pass
        return dict(probe(part.read_all(), limits))
    return dict(probe(part.head, limits))


@bp.get("/jobs")
def list_jobs() -> Any:
    limit = request.args.get("limit", "50")
    if not limit.isdigit() or not 1 <= int(limit) <= 500:
        raise UploadRejected("limit must be a whole number 1..500")
    jobs = [public_job(j) for j in _service().store.list_jobs(int(limit))]
    return jsonify({"jobs": jobs})


@bp.get("/jobs/<job_id>")
def get_job(job_id: str) -> Any:
    return jsonify(public_job(_service().store.get_job(job_id)))


@bp.get("/jobs/<job_id>/items")
def list_items(job_id: str) -> Any:
    store = _service().store
    store.get_job(job_id)
    return jsonify({"items": [public_item(i) for i in store.list_items(job_id)]})


@bp.get("/jobs/<job_id>/items/<item_id>/outputs/<size>")
def get_output(job_id: str, item_id: str, size: str) -> Any:
    service = _service()
    item = service.store.get_item(job_id, item_id)
    info = (item.get("outputs") or {}).get(size)
    if info is None:
        raise JobNotFound(f"item {item_id} has no output of size {size!r}")
    return _send_output(item, info["key"])


@bp.get("/jobs/<job_id>/items/<item_id>/crops/<crop>/<size>")
def get_crop(job_id: str, item_id: str, crop: str, size: str) -> Any:
    """One crop of an item at one size; the ratio as ``16x9`` (in URLs) or ``16:9``."""
    item = _service().store.get_item(job_id, item_id)
    label = crop.replace("x", ":")
    info = (item.get("outputs") or {}).get(f"{label}/{size}")
    if info is None:
        raise JobNotFound(f"item {item_id} has no {label} crop of size {size!r}")
    return _send_output(item, info["key"])


def _send_output(item: dict[str, Any], key: str) -> Any:
    path = _service().objects.path(key)
    fmt = item["output_format"] or "octet-stream"
    return send_file(path, mimetype=f"image/{fmt}", max_age=3600, conditional=True)


def _zip_base(item: dict[str, Any]) -> str:
    stem = secure_filename(item["name"].rsplit(".", 1)[0]) or "image"
    return f"{item['idx'] + 1:03d}-{stem[:60]}"


@bp.get("/jobs/<job_id>/zip")
def download_zip(job_id: str) -> Any:
    service = _service()
    service.store.get_job(job_id)
    done = service.store.list_items(job_id, ItemState.DONE)
    if not done:
        raise ServiceError(f"job {job_id} has no finished image yet", status=409)
    spool = tempfile.SpooledTemporaryFile(max_size=32 * 2**20)  # noqa: SIM115 (send_file closes it)
    manifest = []
    with zipfile.ZipFile(spool, "w", compression=zipfile.ZIP_STORED) as zf:

        def add(outputs: dict[str, Any], prefix: str) -> dict[str, str]:
            files = {}
            for size, info in sorted(outputs.items(), key=lambda kv: -int(kv[0])):
                ext = info["key"].rsplit(".", 1)[-1]
                arcname = f"{prefix}{size}.{ext}"
                zf.write(service.objects.path(info["key"]), arcname)
                files[size] = arcname
            return files

        for item in done:
            base = _zip_base(item)
            sizes, crops = split_outputs(item["outputs"])
            entry = {"name": item["name"], "width": item["width"], "height": item["height"],
                     "format": item["format"], "files": add(sizes, f"{base}/"),
                     "features": item["features"]}
            if crops:
                entry["crops"] = {
                    label: {"box": crop["box"],
                            "files": add(crop["outputs"], f"{base}/crop-{label.replace(':', 'x')}-")}
                    for label, crop in crops.items()}
            manifest.append(entry)
        zf.writestr("manifest.json", json.dumps(manifest, indent=2))
    spool.seek(0)
    return send_file(spool, mimetype="application/zip", as_attachment=True,
                     download_name=f"corelane-{job_id[:8]}.zip")


@bp.post("/jobs/<job_id>/cancel")
def cancel_job(job_id: str) -> Any:
    service = _service()
    job = public_job(service.store.cancel_job(job_id))
    service.cancel_running(job_id)
    service.publish(EventName.JOB_CANCELLED, job_id, {"job_id": job_id, "job": job})
    return jsonify(job), 202


@bp.post("/jobs/<job_id>/retry")
def retry_job(job_id: str) -> Any:
    service = _service()
    job = public_job(service.store.retry_job(job_id))
    service.publish(EventName.JOB_QUEUED, job_id, {"job_id": job_id, "job": job})
    service.wake_runner()
    return jsonify(job), 202


@bp.delete("/jobs/<job_id>")
def delete_job(job_id: str) -> Any:
    removed = delete_job_and_files(_service(), job_id)
    return jsonify({"deleted": job_id, "files_removed": removed})


@bp.get("/health")
def health() -> Any:
    """Each dependency ok or degraded with its reason; 503 when any is degraded (health.py)."""
    from corelane.service.health import report

    service = _service()
    body, status = report(service)
    # Open to all, so a job id (a capability to read its images) only goes to token holders.
    if not token_ok(service.config, request):
        body["running_job"] = None
    return jsonify(body), status


@bp.get("/openapi.json")
def openapi() -> Any:
    return jsonify(openapi_document(token_required=bool(_service().config.api_token)))
