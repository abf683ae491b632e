"""Where uploaded and produced files live: a local directory, files named by generated ids.

A client's file name never becomes a path (``secure_filename`` can empty it, or make two uploads
collide); it is kept as metadata in the store only. Keys are validated against a strict pattern
before any path is built, and every write goes to a temp file first and is renamed into place,
so a crash never leaves a half-written file under a final name.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import tempfile
from pathlib import Path

_KEY = re.compile(r"^(src|out)/[0-9a-f]{2}/[0-9a-f]{32}(/[0-9]{1,5}\.[a-z]{3,4})?$")


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
        write_atomic(self.path(key), data)
        return key

    @staticmethod
    def output_key(item_id: str, size: int, extension: str) -> str:
        """The key of one output size of an item (deterministic: a re-run overwrites it)."""
        return f"out/{item_id[:2]}/{item_id}/{size}.{extension}"

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
