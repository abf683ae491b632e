"""Uploads straight to storage: each file is written once, where it will stay, as it arrives.

::

    socket --gunicorn--> werkzeug's multipart parser (64 KiB reads)
                           | each file part: IncomingFile (our stream_factory)
                           v
                  objects/src/ab/.tmp-XXXX  (written as parsed; the first HEAD_BYTES kept aside)
                           | size cap, probe(head) (format, pixel cap), all from what was kept
                           v
                  os.replace -> objects/src/ab/<id>   (S3: one PUT of the file, then the rename
                                                       into the local cache)

Before, werkzeug spooled each part to a temporary file, the API read it back into memory, and
the object store wrote it again: three passes over every byte and a copy of each image in memory.
Now the parser's chunks go to the final folder once; a refused file, a request that fails
half-way (too large, client gone, bad options) or a job that is never created leaves no file
behind (:meth:`UploadRequest.discard_incoming`). Only the upload endpoint streams this way;
every other request keeps werkzeug's default.

The parser itself stays werkzeug's: its 64 KiB default measured fastest (1 MiB reads cost 2.5x
the CPU in its decoder), and ``streaming-form-data`` measured no better once the file writes,
which dominate, are counted (docs/service.md, "Uploads").
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import tempfile
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
        oid = new_id()
        self.key = f"src/{oid[:2]}/{oid}"
        self.objects = objects
        self.final = ObjectStore.path(objects, self.key)  # local file (S3: the cache copy)
        self.final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.final.parent, prefix=".tmp-")
        self.tmp = Path(tmp)
        self._file = io.FileIO(fd, "wb")
        self.cap = cap
        self.size = 0  # bytes received (also those past the cap, not written)
        self._head = bytearray()
        self.committed = False

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        n = len(data)
        if len(self._head) < HEAD_BYTES:
            self._head += data[:HEAD_BYTES - len(self._head)]
        keep = min(n, self.cap + 1 - self.size)
        if keep > 0:
            view = memoryview(data)[:keep]
            while view:
                written = self._file.write(view) or 0
                view = view[written:]
        self.size += n
        return n

    def seek(self, offset: int, whence: int = 0) -> int:
        """werkzeug rewinds each finished part; nothing here reads it back."""
        return 0

    @property
    def head(self) -> bytes:
        """The first HEAD_BYTES (the whole file when it is smaller)."""
        return bytes(self._head)

    @property
    def complete(self) -> bool:
        """True when :attr:`head` is the whole file."""
        return self.size <= len(self._head)

    def read_all(self) -> bytes:
        """The whole file (for the rare header that does not fit in the head)."""
        self._file.flush()
        return self.tmp.read_bytes()

    def commit(self) -> str:
        """Move the file under its key (S3: upload it first); returns the key."""
        self._file.close()
        put_file = getattr(self.objects, "put_file", None)
        if put_file is not None:
            put_file(self.key, self.tmp)
        os.replace(self.tmp, self.final)
        self.committed = True
        return self.key

    def discard(self) -> None:
        """Remove the temp file unless it was committed (safe to call twice)."""
        with contextlib.suppress(OSError):
            self._file.close()
        if not self.committed:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.tmp)


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
