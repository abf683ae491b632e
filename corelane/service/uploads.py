"""Uploads straight to storage: each file is written once, where it will stay, as it arrives.

::

    socket --recv_into (SocketBody)--> one 1 MiB buffer --find(boundary)--> _multipart.py
                           | each file part: IncomingFile, written with os.write as slices
                           v
                  objects/src/ab/.tmp-<id>  (the first HEAD_BYTES kept aside, one copy)
                           | size cap, probe(head) (format, pixel cap), all from what was kept
                           v
                  os.replace -> objects/src/ab/<id>   (S3: one PUT of the file, then the rename
                                                       into the local cache)

Before, werkzeug spooled each part to a temporary file, the API read it back into memory, and
the object store wrote it again: three passes over every byte and a copy of each image in memory.
Now each byte is received once and written once; a refused file, a request that fails half-way
(too large, client gone, bad options) or a job that is never created leaves no file behind
(:meth:`UploadRequest.discard_incoming`). Only the upload endpoint streams this way; every other
request keeps werkzeug's default.

What an upload costs the web process is mostly the kernel's: receiving each byte and writing it
to a file, plus one new file per image. So the per-file path makes no folder (the 256 fan-out
folders are made once, :func:`make_fanout`), no ``mkstemp`` (the object id is already random)
and no buffered file object. Measured in docs/service.md, "Uploads".
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
from pathlib import Path
from typing import IO, Any, cast

from flask import Request, current_app
from werkzeug.datastructures import FileStorage

from corelane.errors import UploadRejected
from corelane.service._multipart import MultipartError, read_multipart
from corelane.service.objects import ObjectStore, new_id

HEAD_BYTES = 256 * 1024  # kept in memory per file for the header probe (EXIF, ICC fit in it)
UPLOAD_ENDPOINT = "api.create_job"


class IncomingFile(io.RawIOBase):
    """One uploaded file on its way to ``src/<ab>/<id>``: written as it arrives, never read back
    to probe it (the head is kept), and not written past ``cap + 1`` bytes (the size cap's
    verdict needs no more)."""

    def __init__(self, objects: ObjectStore, cap: int) -> None:
        super().__init__()
        self._fd = -1
        oid = new_id()
        self.key = f"src/{oid[:2]}/{oid}"
        self.objects = objects
        self.final = ObjectStore.path(objects, self.key)  # local file (S3: the cache copy)
        # The id is already 128 random bits: the temp name needs no mkstemp round of its own.
        self.tmp = self.final.parent / f".tmp-{oid}"
        self._fd = _create(self.tmp)
        self.cap = cap
        self.size = 0  # bytes received (also those past the cap, not written)
        self._head: bytes | bytearray = b""  # bytes once whole (one copy), else still filling
        self.committed = False

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        n = len(data)
        if len(self._head) < HEAD_BYTES:
            if not self._head and n >= HEAD_BYTES:  # the usual case: one copy, kept as is
                self._head = bytes(data[:HEAD_BYTES])
            else:
                if not isinstance(self._head, bytearray):
                    self._head = bytearray(self._head)
                self._head += data[:HEAD_BYTES - len(self._head)]
        keep = min(n, self.cap + 1 - self.size)
        if keep > 0:
            view = data if keep == n else data[:keep]
            while True:
                written = os.write(self._fd, view)
                if written >= len(view):
                    break
                view = memoryview(view)[written:]
        self.size += n
        return n

    def seek(self, offset: int, whence: int = 0) -> int:
        """werkzeug rewinds each finished part; nothing here reads it back."""
        return 0

    @property
    def head(self) -> bytes:
        """The first HEAD_BYTES (the whole file when it is smaller)."""
        if isinstance(self._head, bytearray):
            self._head = bytes(self._head)  # a later write makes it a bytearray again
        return self._head

    @property
    def complete(self) -> bool:
        """True when :attr:`head` is the whole file."""
        return self.size <= len(self.head)

    def read_all(self) -> bytes:
        """The whole file (for the rare header that does not fit in the head)."""
        return self.tmp.read_bytes()

    def commit(self) -> str:
        """Move the file under its key (S3: upload it first); returns the key."""
        self._close()
        put_file = getattr(self.objects, "put_file", None)
        if put_file is not None:
            put_file(self.key, self.tmp)
        os.replace(self.tmp, self.final)
        self.committed = True
        return self.key

    def discard(self) -> None:
        """Remove the temp file unless it was committed (safe to call twice)."""
        self._close()
        if not self.committed:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.tmp)

    def close(self) -> None:
        """Close the file (what is written stays; commit or discard decide its fate)."""
        self._close()
        super().close()

    def _close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)


_FANOUT_READY: set[Path] = set()  # object roots whose src/00..ff this process has made


def make_fanout(objects: ObjectStore) -> None:
    """Make the 256 folders ``src/00`` .. ``src/ff`` once per process and store.

    A source goes to ``src/<first two hex digits of its id>/``: making those folders on the
    first upload, instead of one by one as new prefixes come, keeps directory creation out of
    the per-file path (a new folder cost ~35-400 us of kernel time each on the development
    machine's journal-less ext4, as much as the file itself).
    """
    root = objects.root
    if root in _FANOUT_READY:
        return
    src = root / "src"
    src.mkdir(parents=True, exist_ok=True)
    for i in range(256):
        with contextlib.suppress(FileExistsError):
            os.mkdir(src / f"{i:02x}")
    _FANOUT_READY.add(root)


def _create(path: Path) -> int:
    """A new file at ``path`` (0600, never an existing one), its folder made on first use.

    The fan-out folders (``src/00`` .. ``src/ff``) exist after the first few hundred uploads, so
    no mkdir runs per file; ``mkdir -p`` only when the open says the folder is missing.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    try:
        return os.open(path, flags, 0o600)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, flags, 0o600)


class SocketBody(io.RawIOBase):
    """gunicorn's request body, read with ``recv_into`` straight into the parser's buffer.

    benoitc/gunicorn#2596: ``Body.read`` gathers a body 1 KiB at a time through two BytesIO
    buffers, which was ~60% of the web process's CPU during an upload here (py-spy). This reads
    what gunicorn has buffered first, then the socket, and keeps gunicorn's count of what is left
    (``LengthReader.length``) true, so keep-alive and the next request on the connection go on as
    if gunicorn had read the body itself. Only a body of known length on a plain socket qualifies
    (:meth:`over`); anything else keeps gunicorn's reader.
    """

    def __init__(self, body: Any) -> None:
        super().__init__()
        self._body = body
        self._reader = body.reader
        self._unreader = body.reader.unreader

    @classmethod
    def over(cls, stream: Any) -> SocketBody | None:
        """A SocketBody for gunicorn's ``wsgi.input``, or None when it is something else."""
        try:
            from gunicorn.http.body import Body, LengthReader
            from gunicorn.http.unreader import SocketUnreader
        except ImportError:
            return None
        if isinstance(stream, Body) and isinstance(stream.reader, LengthReader) \
                and isinstance(stream.reader.unreader, SocketUnreader):
            return cls(stream)
        return None

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        # 1. bytes gunicorn's Body already took from the body (LengthReader counted them)
        held = self._body.buf.getvalue()
        if held:
            n = min(len(view), len(held))
            view[:n] = held[:n]
            self._body.buf = io.BytesIO()
            self._body.buf.write(held[n:])
            return n
        want = min(len(view), self._reader.length)
        if want <= 0:
            return 0
        # 2. bytes read from the socket, not yet counted (past the body: the next request's)
        ahead = self._unreader.buf.getvalue()
        if ahead:
            n = min(want, len(ahead))
            view[:n] = ahead[:n]
            self._unreader.buf = io.BytesIO()
            self._unreader.buf.write(ahead[n:])
        else:
            # Whole buffers: the parser's cost is per chunk, and a socket hands out what arrived
            # (a few KiB). Fewer bytes only at the end or when the client went away (0).
            n = self._unreader.sock.recv_into(view, want, socket.MSG_WAITALL)
        self._reader.length -= n
        return n


class UploadRequest(Request):
    """Flask's request, whose upload endpoint streams file parts into the object store."""

    incoming: list[IncomingFile]

    def _load_form_data(self) -> None:
        """The upload endpoint reads its body with our reader; every other request, werkzeug's."""
        if self.endpoint != UPLOAD_ENDPOINT or "stream" in self.__dict__ \
                or self.mimetype != "multipart/form-data":
            super()._load_form_data()
            return
        fast = SocketBody.over(self.environ.get("wsgi.input"))
        if fast is not None:
            self.environ["wsgi.input"] = fast
        stream = self.stream  # werkzeug's: the Content-Length, and the request cap (413)
        service = current_app.extensions["corelane"]
        cap = service.config.max_file_bytes
        make_fanout(service.objects)

        def open_file(_name: str, _filename: str) -> IncomingFile:
            part = IncomingFile(service.objects, cap)
            self.__dict__.setdefault("incoming", []).append(part)
            return part

        boundary = self.mimetype_params.get("boundary", "").encode("latin-1", "replace")
        try:
            fields, files = read_multipart(
                stream.readinto, boundary, open_file,  # type: ignore[attr-defined]
                max_field_bytes=self.max_form_memory_size or 500_000,
                max_parts=self.max_form_parts or 1000)
        except MultipartError as exc:
            raise UploadRejected(f"malformed upload: {exc}") from None
        d = self.__dict__
        d["form"] = self.parameter_storage_class(fields)
        d["files"] = self.parameter_storage_class(
            [(name, FileStorage(cast(IO[bytes], sink), filename, name))
             for name, filename, sink in files])

    def discard_incoming(self) -> None:
        """Remove every streamed file that was not committed (a failed or refused upload)."""
        for part in self.__dict__.get("incoming", []):
            part.discard()
