"""The upload endpoint's multipart reader (corelane/service/_multipart.py) reads what werkzeug's
parser reads, whatever the read sizes, and refuses malformed bodies with a reason."""

from __future__ import annotations

import io
import random
from collections.abc import Callable

import pytest
from werkzeug.formparser import MultiPartParser
from werkzeug.test import EnvironBuilder

from corelane.service._multipart import MultipartError, read_multipart


class Sink:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, chunk: memoryview) -> int:
        self.data += chunk
        return len(chunk)


def reader(body: bytes, sizes: Callable[[], int]) -> Callable[[memoryview], int]:
    """A readinto that hands out at most ``sizes()`` bytes per call."""
    stream = io.BytesIO(body)

    def readinto(view: memoryview) -> int:
        return stream.readinto(view[:max(1, sizes())])

    return readinto


def encoded(parts: dict[str, object]) -> tuple[bytes, bytes]:
    env = EnvironBuilder(method="POST", data=parts, content_type="multipart/form-data").get_environ()
    boundary = env["CONTENT_TYPE"].split("boundary=")[1].strip('"').encode()
    return env["wsgi.input"].read(), boundary


def ours(body: bytes, boundary: bytes, sizes: Callable[[], int], **caps: int
         ) -> tuple[list[tuple[str, str]], list[tuple[str, str, bytes]]]:
    fields, files = read_multipart(reader(body, sizes), boundary, lambda n, f: Sink(),
                                   max_field_bytes=caps.get("field", 10_000),
                                   max_parts=caps.get("parts", 100))
    return fields, [(n, f, bytes(s.data)) for n, f, s in files]


def werkzeugs(body: bytes, boundary: bytes) -> tuple[list[tuple[str, str]], list[tuple]]:
    form, files = MultiPartParser().parse(io.BytesIO(body), boundary, len(body))
    return list(form.items(multi=True)), [(n, f.filename, f.read()) for n, f in
                                          files.items(multi=True)]


RNG = random.Random(14)
PAYLOADS = {
    "a.jpg": bytes(RNG.randrange(256) for _ in range(70_000)),
    "empty.jpg": b"",
    "crlf.bin": b"\r\n\r\n--\r\n-" * 50,  # looks like delimiters, is not one
    "naïve café.png": b"\x89PNG" + bytes(300),
}


@pytest.mark.parametrize("sizes", [lambda: 1, lambda: 7, lambda: 4096, lambda: 1 << 20,
                                   lambda: RNG.randrange(1, 9000)],
                         ids=["1", "7", "4k", "1M", "random"])
def test_reads_what_werkzeug_reads_at_any_read_size(sizes: Callable[[], int]) -> None:
    parts: dict[str, object] = {"files": [(io.BytesIO(v), k) for k, v in PAYLOADS.items()],
                                "sizes": "512,128", "note": "ünïcode ✓"}
    body, boundary = encoded(parts)
    assert ours(body, boundary, sizes) == werkzeugs(body, boundary)


def test_a_curl_style_body_with_preamble_and_epilogue() -> None:
    body = (b"ignored preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"files\"; "
            b"filename=\"x.jpg\"\r\nContent-Type: image/jpeg\r\n\r\nDATA\r\n--XyZ\r\n"
            b"Content-Disposition: form-data; name=\"format\"\r\n\r\njpeg\r\n--XyZ--\r\nbye")
    assert ours(body, b"XyZ", lambda: 5) == ([("format", "jpeg")], [("files", "x.jpg", b"DATA")])


@pytest.mark.parametrize("body, caps, needle", [
    (b"--b\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a\"\r\n\r\nabc",
     {}, "cut short"),
    (b"--b\r\nContent-Type: text/plain\r\n\r\nabc\r\n--b--", {}, "no Content-Disposition"),
    (b"--b\r\nContent-Disposition: attachment; name=\"x\"\r\n\r\nabc\r\n--b--", {},
     "Content-Disposition"),
    (b"--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n" + b"v" * 50 + b"\r\n--b--",
     {"field": 10}, "over 10 bytes"),
    (b"--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n1\r\n--b\r\n"
     b"Content-Disposition: form-data; name=\"y\"\r\n\r\n2\r\n--b--", {"parts": 1}, "more than 1"),
    (b"--b\r\n" + b"X-Long: " + b"h" * 20_000, {}, "headers exceed"),
    (b"--bXY", {}, "neither CRLF"),
    (b"no boundary at all", {}, "cut short"),
])
def test_malformed_bodies_are_refused_with_a_reason(body: bytes, caps: dict[str, int],
                                                    needle: str) -> None:
    with pytest.raises(MultipartError, match=needle):
        ours(body, b"b", lambda: 3, **caps)
