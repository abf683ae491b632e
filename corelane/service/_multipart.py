"""A multipart/form-data reader for the upload endpoint: file parts go to their sinks as slices of
one buffer, fields are collected, and nothing else is copied.

::

    raw.readinto(buf[fill:])  -->  buf (1 MiB, fixed)  --find(CRLF--boundary)-->
        [pos : delimiter)  --> sink.write (a memoryview slice: no copy)
    only the last len(delimiter) - 1 bytes move to the front between reads

werkzeug's decoder (the default for every other request) keeps its own buffer and hands out
``bytes`` per event: two more copies of every byte, and a Python round per 64 KiB. Measured on
the upload of 40 photos (docs/service.md, "Uploads"), this reader costs a fraction of that.
Headers are parsed as werkzeug parses them (UTF-8 lines, ``parse_options_header``), so a file
name reads the same either way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from werkzeug.http import parse_options_header

# Reads (and so file writes) of up to this size. A bare receive-scan-write loop spent ~15% less
# CPU with 1 MiB than with 256 KiB on ext4 (fewer write calls, which ext4 and tmpfs charge for),
# 2 MiB a few % less again; docs/service.md, "Uploads".
BUFFER_BYTES = 1024 * 1024
MAX_HEADER_BYTES = 16 * 1024  # one part's header block (well under BUFFER_BYTES)


class MultipartError(ValueError):
    """The body is not well-formed multipart/form-data (the message says where)."""


def read_multipart(readinto: Callable[[memoryview], int | None], boundary: bytes,
                   open_file: Callable[[str, str], Any], *, max_field_bytes: int,
                   max_parts: int) -> tuple[list[tuple[str, str]], list[tuple[str, str, Any]]]:
    """Read a multipart body from ``readinto`` (a raw stream's method; 0 at the end).

    Args:
        readinto: fills a buffer, returns the count (0 or None: the body ended).
        boundary: the boundary from the Content-Type header.
        open_file: ``open_file(name, filename)`` -> a sink with ``write(buffer)`` for a file part.
        max_field_bytes: cap on one non-file field.
        max_parts: cap on the number of parts.

    Returns:
        ``(fields, files)``: ``[(name, value)]`` and ``[(name, filename, sink)]`` in body order.

    Raises:
        MultipartError: malformed, cut short, or over a cap.
    """
    if not boundary or len(boundary) > 200:
        raise MultipartError("missing or overlong multipart boundary")
    delim = b"\r\n--" + boundary
    keep = len(delim) - 1
    buf = bytearray(BUFFER_BYTES)  # fixed: the socket writes into its free tail, never resized
    buf[:2] = b"\r\n"  # so the first boundary reads like every later one
    fill = 2  # buf[:fill] holds data; buf[pos:fill] is not consumed yet
    fields: list[tuple[str, str]] = []
    files: list[tuple[str, str, Any]] = []
    state = "preamble"
    pos = 0
    eof = False
    sink: Any = None
    value = bytearray()
    name = ""
    with memoryview(buf) as mv:
        while True:
            if state == "preamble":
                i = buf.find(delim, pos, fill)
                if i >= 0:
                    pos, state = i + len(delim), "after"
                    continue
                pos = max(pos, fill - keep)
            elif state == "after":  # a delimiter ends with "--" (the last) or CRLF (a part)
                if fill - pos >= 2:
                    tail = bytes(buf[pos:pos + 2])
                    if tail == b"--":
                        return fields, files
                    if tail != b"\r\n":
                        raise MultipartError("a boundary is followed by neither CRLF nor '--'")
                    pos, state = pos + 2, "headers"
                    if len(fields) + len(files) >= max_parts:
                        raise MultipartError(f"more than {max_parts} parts")
                    continue
            elif state == "headers":
                j = buf.find(b"\r\n\r\n", pos, fill)
                if j >= 0 and (fill >= j + 2 + len(delim) or eof):
                    name, filename = _disposition(bytes(buf[pos:j]))
                    # An empty part may follow its headers with the boundary at once, without
                    # the CRLF of a delimiter (werkzeug's encoder writes it so; its decoder
                    # accepts it).
                    empty = buf.startswith(delim, j + 2, fill)
                    pos, state = (j + 2 if empty else j + 4), "data"
                    if filename is None:
                        sink, value = None, bytearray()
                    else:
                        sink = open_file(name, filename)
                        files.append((name, filename, sink))
                    continue
                if j < 0 and fill - pos > MAX_HEADER_BYTES:
                    raise MultipartError(f"a part's headers exceed {MAX_HEADER_BYTES} bytes")
            else:  # data
                i = buf.find(delim, pos, fill)
                end = i if i >= 0 else max(pos, fill - keep)
                if end > pos:
                    if sink is not None:
                        sink.write(mv[pos:end])
                    else:
                        value += mv[pos:end]
                        if len(value) > max_field_bytes:
                            raise MultipartError(f"field {name!r} is over {max_field_bytes} "
                                                 "bytes")
                pos = end
                if i >= 0:
                    if sink is None:
                        fields.append((name, value.decode("utf-8", "replace")))
                    pos, state = i + len(delim), "after"
                    continue
            # more input needed: keep what is not consumed (a few bytes), read after it
            if eof:
                raise MultipartError("the body ends inside a part (the upload was cut short)")
            if pos:
                buf[:fill - pos] = bytes(mv[pos:fill])  # a copy: the two ranges may overlap
                fill, pos = fill - pos, 0
            n = readinto(mv[fill:]) or 0
            if n:
                fill += n
            else:
                eof = True


def _disposition(block: bytes) -> tuple[str, str | None]:
    """(name, filename or None) from a part's header block, as werkzeug reads them."""
    for line in block.split(b"\r\n"):
        key, _, value = line.decode("utf-8", "replace").partition(":")
        if key.strip().lower() == "content-disposition":
            kind, options = parse_options_header(value.strip())
            if kind != "form-data" or "name" not in options:
                raise MultipartError(f"part with Content-Disposition {value.strip()[:80]!r}")
            return options["name"], options.get("filename")
    raise MultipartError("a part has no Content-Disposition header")
