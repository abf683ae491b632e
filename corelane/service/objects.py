"""Where uploaded and produced files live: a local directory (default) or an S3 bucket.

A client's file name never becomes a path (``secure_filename`` can empty it, or make two uploads
collide); it is kept as metadata in the store only. Keys are validated against a strict pattern
before any path or object name is built, and every local write goes to a temp file first and is
renamed into place, so a crash never leaves a half-written file under a final name.

``open_objects(config)`` picks the store: ``objects_url`` unset keeps files under
``<data_dir>/objects``; ``s3://bucket/prefix`` keeps them in S3 (any S3-compatible server: set
``CORELANE_S3_ENDPOINT_URL``; credentials and region come from the usual ``AWS_*`` variables or
files), so worker hosts need no shared directory. Both stores offer the same methods; the S3 one
keeps a read-through cache under ``<data_dir>/objects-cache`` so ``path(key)`` still gives a
local file (for sending a download, zipping, or decoding a source). A PUT to S3 is atomic: an
object is either absent or complete.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

_KEY = re.compile(
    r"^(src|out)/[0-9a-f]{2}/[0-9a-f]{32}(/(c[0-9]{1,4}x[0-9]{1,4}-)?[0-9]{1,5}\.[a-z]{3,4})?$"
)


def new_id() -> str:
    """A random 128-bit id as 32 hex digits (job, item and object ids)."""
    return secrets.token_hex(16)


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        _unlink_quiet(tmp)
        raise


def _unlink_quiet(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


class ObjectStore:
    """Files under ``root`` addressed by keys such as ``src/ab/<32 hex>``."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    @property
    def location(self) -> str:
        """What a worker passes to :func:`open_location` to reach this store."""
        return str(self.root)

    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` (atomically; an existing object is replaced)."""
        write_atomic(self.path(key), data)

    def path(self, key: str) -> Path:
        """The file for ``key``.

        Raises:
            ValueError: ``key`` is not one this store makes (no path can escape the root).
        """
        if not _KEY.match(key):
            raise ValueError(f"not an object key: {key!r}")
        return self.root / key

    def put_source(self, data: bytes) -> str:
        """Store an uploaded file under a new key and return the key."""
        oid = new_id()
        key = f"src/{oid[:2]}/{oid}"
        self.put(key, data)
        return key

    @staticmethod
    def output_key(item_id: str, size: int, extension: str) -> str:
        """The key of one output size of an item (deterministic: a re-run overwrites it)."""
        return f"out/{item_id[:2]}/{item_id}/{size}.{extension}"

    @staticmethod
    def crop_key(item_id: str, crop: str, size: int, extension: str) -> str:
        """The key of one crop (``"16:9"``) of an item at one size: ``out/ab/<id>/c16x9-512.webp``."""
        return f"out/{item_id[:2]}/{item_id}/c{crop.replace(':', 'x')}-{size}.{extension}"

    def sweep_temp(self) -> int:
        """Remove temp files a crash left behind (call when no writer runs); returns the count."""
        removed = 0
        for path in self.root.rglob(".tmp-*"):
            _unlink_quiet(str(path))
            removed += 1
        return removed

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def read(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def delete(self, key: str) -> None:
        _unlink_quiet(str(self.path(key)))

    def delete_under(self, folder: str) -> int:
        """Remove every object under ``folder`` (e.g. an item's ``out/ab/<id>/``); returns how
        many there were."""
        local = ObjectStore.path(self, folder.rstrip("/"))  # the local folder, validated
        if not local.is_dir():
            return 0
        count = sum(1 for p in local.rglob("*") if p.is_file())
        shutil.rmtree(local, ignore_errors=True)
        return count


class S3ObjectStore(ObjectStore):
    """Objects in ``s3://bucket/prefix``, with a local read-through cache under ``cache``."""

    def __init__(self, url: str, cache: Path | str, endpoint_url: str | None = None) -> None:
        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(f"not an S3 URL (s3://bucket/prefix): {url!r}")
        super().__init__(cache)
        self.url = url
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        self.endpoint_url = endpoint_url or os.environ.get("CORELANE_S3_ENDPOINT_URL") or None
        self._client: Any = None

    @property
    def location(self) -> str:
        return self.url

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("s3", endpoint_url=self.endpoint_url)
        return self._client

    def name(self, key: str) -> str:
        """The S3 object name of ``key`` (validated like a local path)."""
        super().path(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.name(key), Body=data)
        write_atomic(super().path(key), data)  # this host will likely read it back

    def put_file(self, key: str, path: Path) -> None:
        """Upload the file at ``path`` under ``key`` (the caller then moves it into the cache)."""
        with open(path, "rb") as f:
            self.client.put_object(Bucket=self.bucket, Key=self.name(key), Body=f)

    def path(self, key: str) -> Path:
        """A local copy of ``key`` (downloaded on first use; objects never change in place)."""
        local = super().path(key)
        if not local.is_file():
            write_atomic(local, self.read(key))
        return local

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self.name(key))
            return True
        except self.client.exceptions.ClientError:
            return False

    def read(self, key: str) -> bytes:
        body = self.client.get_object(Bucket=self.bucket, Key=self.name(key))["Body"]
        return bytes(body.read())

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.name(key))
        super().delete(key)

    def delete_under(self, folder: str) -> int:
        """Remove every object under ``folder`` in the bucket, and this host's cached copies."""
        folder = folder.rstrip("/") + "/"
        keys = self.keys(folder)
        for key in keys:
            self.client.delete_object(Bucket=self.bucket, Key=self.name(key))
        cached = super().delete_under(folder)
        return max(len(keys), cached)

    def keys(self, under: str = "") -> list[str]:
        """Every key stored under ``under`` (e.g. ``"out/"``), sorted."""
        base = f"{self.prefix}/" if self.prefix else ""
        out: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=base + under):
            out.extend(obj["Key"][len(base):] for obj in page.get("Contents", []))
        return sorted(out)


def open_location(location: str, cache: Path | str) -> ObjectStore:
    """The store at ``location``: an ``s3://`` URL or a local directory."""
    if location.startswith("s3://"):
        return S3ObjectStore(location, cache)
    return ObjectStore(location)


@lru_cache(maxsize=4)
def cached_location(location: str, cache: str) -> ObjectStore:
    """:func:`open_location`, one per process (engine and Celery workers reuse the client)."""
    return open_location(location, cache)


def open_objects(config: Any) -> ObjectStore:
    """The object store ``config`` asks for (``objects_url``; default the local data dir)."""
    url = getattr(config, "objects_url", None)
    data_dir = Path(config.data_dir)
    if url:
        return open_location(url, data_dir / "objects-cache")
    return ObjectStore(data_dir / "objects")
