"""The OpenAPI 3.1 document of the REST API (served at /api/openapi.json)."""

from __future__ import annotations

from typing import Any

from corelane.imaging.options import MAX_CROPS, OUTPUT_FORMATS, RESIZE_MODES
from corelane.service.similar_api import OPENAPI_PATHS as _SIMILAR_PATHS

_ERROR = {"$ref": "#/components/responses/Error"}
#: Output formats and resize modes come from the imaging options, so the document cannot drift.
_FORMATS = sorted(OUTPUT_FORMATS)
_IMAGE_TYPES: dict[str, Any] = {f"image/{fmt}": {} for fmt in _FORMATS}
_CROP_RATIO = "^[0-9]{1,4}:[0-9]{1,4}$"
_CROPS_TEXT = (f"fixed-aspect crops around the focal point, W:H comma-separated (at most "
               f"{MAX_CROPS}, none more elongated than 10:1, each side 1..9999); every size is "
               "also made as each crop; empty: none")
_SIZED = {"type": "object", "properties": {
    "width": {"type": "integer"}, "height": {"type": "integer"},
    "bytes": {"type": "integer"}, "url": {"type": "string"}}}


def _item_params(*middle: dict[str, Any]) -> list[dict[str, Any]]:
    """Path parameters of one output: the job, the item, ``middle`` (a crop), the size."""
    return [{"$ref": "#/components/parameters/JobId"},
            {"name": "item_id", "in": "path", "required": True, "schema": {"type": "string"}},
            *middle,
            {"name": "size", "in": "path", "required": True, "schema": {"type": "integer"}}]


def _job_path(summary: str, ok: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    responses: dict[str, Any] = {ok: {"description": "the job",
                                      "content": {"application/json": {
                                          "schema": {"$ref": "#/components/schemas/Job"}}}},
                                 "404": _ERROR}
    responses.update(extra or {})
    return {"summary": summary, "parameters": [{"$ref": "#/components/parameters/JobId"}],
            "responses": responses}


def openapi_document(token_required: bool = False) -> dict[str, Any]:
    """Build the document (a plain dict, validated by the tests).

    Args:
        token_required: the server has an API token, so every path but the health check and
            this document requires it; without one the requirement is optional (``{}``).
    """
    job_schema = {
        "type": "object",
        "required": ["id", "state", "total", "done", "failed", "options"],
        "properties": {
            "id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
            "state": {"type": "string",
                      "enum": ["queued", "running", "done", "failed", "cancelled"]},
            "options": {"$ref": "#/components/schemas/Options"},
            "total": {"type": "integer"}, "done": {"type": "integer"},
            "failed": {"type": "integer"}, "cancelled": {"type": "integer"},
            "queued": {"type": "integer"},
            "created_at": {"type": "number"},
            "started_at": {"type": ["number", "null"]},
            "finished_at": {"type": ["number", "null"]},
            "queue_position": {"type": ["integer", "null"], "minimum": 1,
                               "description": "a queued job's place in line (1 starts next); "
                                              "null once it runs"},
            "urls": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }
    item_schema = {
        "type": "object",
        "required": ["id", "idx", "name", "state"],
        "properties": {
            "id": {"type": "string"}, "job_id": {"type": "string"},
            "idx": {"type": "integer"},
            "name": {"type": "string", "description": "the client's file name (metadata only)"},
            "state": {"type": "string", "enum": ["queued", "done", "failed", "cancelled"]},
            "error": {"type": ["string", "null"]},
            "attempts": {"type": "integer"},
            "width": {"type": ["integer", "null"]}, "height": {"type": ["integer", "null"]},
            "format": {"type": ["string", "null"]}, "mode": {"type": ["string", "null"]},
            "output_format": {"type": ["string", "null"]},
            "source_bytes": {"type": "integer"},
            "finished_at": {"type": ["number", "null"]},
            "outputs": {"type": "object", "description": "long-edge size -> output",
                        "additionalProperties": _SIZED},
            "crops": {"type": "object", "description": "crop ratio (\"16:9\") -> its box in the "
                      "source (left, top, right, bottom as displayed) and one output per size",
                      "additionalProperties": {"type": "object", "properties": {
                          "box": {"type": "array", "items": {"type": "integer"},
                                  "minItems": 4, "maxItems": 4},
                          "outputs": {"type": "object", "additionalProperties": _SIZED}}}},
            "features": {"type": ["object", "null"],
                         "description": "mean colour, dominant colours, histogram, phash, "
                                        "sharpness, EXIF, blurhash, focal {x, y, source, "
                                        "faces}, sha256 (see docs/imaging.md)"},
        },
    }
    options_schema = {
        "type": "object",
        "properties": {
            "sizes": {"type": "array", "items": {"type": "integer", "minimum": 1}},
            "format": {"type": "string", "enum": _FORMATS},
            "quality": {"type": "integer", "minimum": 1, "maximum": 100},
            "features": {"type": "boolean"},
            "crops": {"type": "array", "items": {"type": "string", "pattern": _CROP_RATIO},
                      "maxItems": MAX_CROPS, "description": "crop ratios, reduced (2:2 is 1:1)"},
            "resize": {"type": "string", "enum": list(RESIZE_MODES)},
        },
    }
    json_job = {"application/json": {"schema": {"$ref": "#/components/schemas/Job"}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "corelane image service", "version": "1.0.0",
                 "description": "Upload images, process them on all cores, follow progress "
                                "over Socket.IO (events in docs/events.md)."},
        "servers": [{"url": "/"}],
        "paths": {
            "/api/jobs": {
                "post": {
                    "summary": "Create a job from uploaded images",
                    "requestBody": {"required": True, "content": {"multipart/form-data": {
                        "schema": {
                            "type": "object", "required": ["files"],
                            "properties": {
                                "files": {"type": "array",
                                          "items": {"type": "string", "format": "binary"}},
                                "sizes": {"type": "string", "example": "1024,512,128"},
                                "format": {"type": "string", "enum": _FORMATS,
                                           "default": "webp"},
                                "quality": {"type": "integer", "minimum": 1, "maximum": 100,
                                            "default": 85},
                                "features": {"type": "boolean", "default": True},
                                "crops": {"type": "string", "example": "1:1,16:9",
                                          "description": _CROPS_TEXT},
                                "resize": {"type": "string", "enum": list(RESIZE_MODES),
                                           "default": "fast",
                                           "description": "fast: box filter; quality: Lanczos "
                                                          "on each output's last step (slower)"},
                            }}}}},
                    "responses": {"202": {"description": "job accepted", "content": json_job},
                                  "400": _ERROR, "413": _ERROR, "415": _ERROR},
                },
                "get": {
                    "summary": "List jobs, newest first",
                    "parameters": [{"name": "limit", "in": "query",
                                    "schema": {"type": "integer", "minimum": 1,
                                               "maximum": 500}}],
                    "responses": {"200": {"description": "jobs", "content": {
                        "application/json": {"schema": {"type": "object", "properties": {
                            "jobs": {"type": "array",
                                     "items": {"$ref": "#/components/schemas/Job"}}}}}}},
                        "400": _ERROR},
                },
            },
            "/api/jobs/{job_id}": {
                "get": _job_path("Get a job with its counts", "200"),
                "delete": {
                    "summary": "Delete a job that is not running, with its images and outputs",
                    "parameters": [{"$ref": "#/components/parameters/JobId"}],
                    "responses": {"200": {"description": "deleted", "content": {
                        "application/json": {"schema": {"type": "object", "properties": {
                            "deleted": {"type": "string"},
                            "files_removed": {"type": "integer"}}}}}},
                        "404": _ERROR, "409": _ERROR}}},
            "/api/jobs/{job_id}/items": {"get": {
                "summary": "List a job's items with their features",
                "parameters": [{"$ref": "#/components/parameters/JobId"}],
                "responses": {"200": {"description": "items", "content": {"application/json": {
                    "schema": {"type": "object", "properties": {"items": {
                        "type": "array", "items": {"$ref": "#/components/schemas/Item"}}}}}}},
                    "404": _ERROR}}},
            "/api/jobs/{job_id}/items/{item_id}/outputs/{size}": {"get": {
                "summary": "Download one output size of an item",
                "parameters": _item_params(),
                "responses": {"200": {"description": "the image", "content": _IMAGE_TYPES},
                              "404": _ERROR}}},
            "/api/jobs/{job_id}/items/{item_id}/crops/{crop}/{size}": {"get": {
                "summary": "Download one crop of an item at one size",
                "parameters": _item_params(
                    {"name": "crop", "in": "path", "required": True,
                     "description": "the ratio as W:H or WxH (16:9, 16x9)",
                     "schema": {"type": "string"}}),
                "responses": {"200": {"description": "the image", "content": _IMAGE_TYPES},
                              "404": _ERROR}}},
            "/api/jobs/{job_id}/zip": {"get": {
                "summary": "Download every output of a job as a ZIP (with manifest.json)",
                "parameters": [{"$ref": "#/components/parameters/JobId"}],
                "responses": {"200": {"description": "ZIP archive",
                                      "content": {"application/zip": {}}},
                              "404": _ERROR, "409": _ERROR}}},
            "/api/jobs/{job_id}/cancel": {"post": _job_path(
                "Cancel a queued or running job", "202", {"409": _ERROR})},
            "/api/jobs/{job_id}/retry": {"post": _job_path(
                "Queue a finished job's failed items again", "202", {"409": _ERROR})},
            "/api/workers": {"get": {
                "summary": "Who runs the work: the local pool, or `corelane worker` hosts",
                "responses": {"200": {"description": "workers", "content": {"application/json": {
                    "schema": {"type": "object", "properties": {
                        "mode": {"type": "string", "enum": ["local", "celery"]},
                        "workers": {"type": "array", "items": {"type": "object"}}}}}}}}}},
            "/api/health": {"get": {
                "summary": "Each dependency (store; in broker mode broker and bus) ok or degraded "
                           "with its reason; running_job only with the token",
                "security": [],
                "responses": {
                    "200": {"description": "everything ok", "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/Health"}}}},
                    "503": {"description": "degraded: a check names what is wrong",
                            "content": {"application/json": {
                                "schema": {"$ref": "#/components/schemas/Health"}}}}}}},
            **_SIMILAR_PATHS,
            "/api/openapi.json": {"get": {
                "summary": "This document", "security": [],
                "responses": {"200": {"description": "OpenAPI 3.1",
                                      "content": {"application/json": {}}}}}},
        },
        "security": [{"bearer": []}, {"apiToken": []}] + ([] if token_required else [{}]),
        "components": {
            "schemas": {
                "Job": job_schema, "Item": item_schema, "Options": options_schema,
                "Health": {"type": "object", "required": ["status", "checks"], "properties": {
                    "status": {"type": "string", "enum": ["ok", "degraded"]},
                    "mode": {"type": "string", "enum": ["local", "celery"]},
                    "checks": {"type": "object", "additionalProperties": {
                        "type": "object", "required": ["status"], "properties": {
                            "status": {"type": "string", "enum": ["ok", "degraded"]},
                            "reason": {"type": "string"}}}},
                    "queued_jobs": {"type": ["integer", "null"]},
                    "running_job": {"type": ["string", "null"]},
                    "workers": {"type": "integer"}}},
                "Error": {"type": "object", "required": ["error"], "properties": {
                    "error": {"type": "object", "properties": {
                        "type": {"type": "string"}, "message": {"type": "string"},
                        "status": {"type": "integer"}}}}},
            },
            "parameters": {"JobId": {"name": "job_id", "in": "path", "required": True,
                                     "schema": {"type": "string"}}},
            "responses": {"Error": {"description": "an error, explained", "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "the server's CORELANE_API_TOKEN, when it has one"},
                "apiToken": {"type": "apiKey", "in": "header", "name": "X-API-Token",
                             "description": "the same token in a header of its own"}},
        },
    }
