"""Uploads stream into the object store once (corelane/service/uploads.py): the stored source is
the uploaded bytes, a refused or broken request leaves no file, the probe from the head agrees
with the whole file."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import imaging_samples as samples
import service_fixtures
from service_fixtures import make_config, upload

from corelane.service.uploads import HEAD_BYTES

api_app = service_fixtures.api_app
_error = service_fixtures.api_error


def _files(app: Any) -> list[Path]:
    return [p for p in app.extensions["corelane"].objects.root.rglob("*") if p.is_file()]


def _padded_jpeg(pad_segments: int) -> bytes:
    """A JPEG whose frame header lies past ``pad_segments`` 64 KiB APP15 segments."""
    jpeg = samples.photo_jpeg(320, 240, seed=5)
    pad = (b"\xff\xef" + (65535).to_bytes(2, "big") + b"\0" * 65533) * pad_segments
    return jpeg[:2] + pad + jpeg[2:]


def test_the_stored_source_is_the_upload_and_no_temp_file_stays(api_app: Any) -> None:
    client = api_app.test_client()
    photo = samples.photo_jpeg(900, 700, seed=1)
    assert len(photo) > HEAD_BYTES // 4
    job = upload(client, {"a.jpg": photo, "b.txt": samples.text_file()}).get_json()
    items = client.get(f"/api/jobs/{job['id']}/items").get_json()["items"]
    assert [i["state"] for i in items] == ["queued", "failed"]
    assert items[0]["source_bytes"] == len(photo)
    (stored,) = _files(api_app)
    assert stored.read_bytes() == photo and not stored.name.startswith(".tmp-")


def test_a_header_past_the_head_is_probed_from_the_whole_file(api_app: Any) -> None:
    client = api_app.test_client()
    padded = _padded_jpeg(5)
    assert padded.index(b"\xff\xc0") > HEAD_BYTES or padded.index(b"\xff\xc2") > HEAD_BYTES
    big_text = b"just words, not an image\n" * (HEAD_BYTES // 10)
    job = upload(client, {"padded.jpg": padded, "big.txt": big_text}).get_json()
    items = client.get(f"/api/jobs/{job['id']}/items").get_json()["items"]
    assert (items[0]["state"], items[0]["width"], items[0]["height"]) == ("queued", 320, 240)
    assert items[1]["state"] == "failed" and "text" in items[1]["error"]
    assert len(_files(api_app)) == 1


def test_refused_requests_leave_no_file(tmp_path: Path) -> None:
    from corelane.service.app import create_app

    app = create_app(make_config(tmp_path, run_jobs=False, max_file_bytes=64 * 1024,
                                 max_files=2))
    try:
        client = app.test_client()
        photo = samples.photo_jpeg(200, 150)
        assert "quality" in _error(upload(client, {"a.jpg": photo}, quality="high"), 400)
        assert "allowed" in _error(upload(client, {f"{i}.jpg": photo for i in range(3)}), 413)
        # A body that ends before its declared length (the client went away).
        body = (b"--b\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a.jpg\"\r\n"
                b"Content-Type: image/jpeg\r\n\r\n" + photo)
        resp = client.post("/api/jobs", input_stream=io.BytesIO(body),
                           content_type="multipart/form-data; boundary=b",
                           headers={"Content-Length": str(len(body) + 1000)})
        assert resp.status_code == 400
        # Over the per-image cap: a per-item error, and the part was not kept.
        big = samples.photo_jpeg(1600, 1200)
        assert len(big) > 64 * 1024
        job = upload(client, {"big.jpg": big}).get_json()
        assert "limit" in client.get(f"/api/jobs/{job['id']}/items").get_json()["items"][0]["error"]
        assert _files(app) == []
    finally:
        app.extensions["corelane"].close()


def test_the_fanout_folders_are_made_once_and_a_missing_one_is_made_again(
        api_app: Any, monkeypatch: Any) -> None:
    from corelane.service import uploads

    client = api_app.test_client()
    root = api_app.extensions["corelane"].objects.root
    photo = samples.photo_jpeg(320, 240, seed=2)
    assert upload(client, {"a.jpg": photo}).status_code == 202
    assert sorted(p.name for p in (root / "src").iterdir()) == [f"{i:02x}" for i in range(256)]
    # Made once per process and store: a folder removed afterwards (by hand, say) is made
    # again when a file needs it, not by the fan-out step.
    (root / "src" / "7f").rmdir()
    monkeypatch.setattr(uploads, "new_id", lambda: "7f" + "0" * 30)
    assert upload(client, {"b.jpg": photo}).status_code == 202
    assert (root / "src" / "7f" / ("7f" + "0" * 30)).read_bytes() == photo
    assert not any(p.name.startswith(".tmp-") for p in root.rglob("*"))


def test_an_incoming_file_keeps_its_head_writes_up_to_the_cap_and_is_private(
        tmp_path: Path) -> None:
    from corelane.service.objects import ObjectStore
    from corelane.service.uploads import IncomingFile

    objects = ObjectStore(tmp_path / "objects")
    data = bytes(range(256)) * (HEAD_BYTES // 128)  # twice the head
    # One big write (the head is one slice of it), then many small ones (it fills up).
    for pieces in ([data], [data[i:i + 1000] for i in range(0, len(data), 1000)]):
        part = IncomingFile(objects, cap=len(data))
        for piece in pieces:
            assert part.write(memoryview(piece)) == len(piece)
        assert part.head == data[:HEAD_BYTES] and not part.complete
        assert part.read_all() == data and part.size == len(data)
        assert oct(part.tmp.stat().st_mode & 0o777) == "0o600"
        key = part.commit()
        assert objects.read(key) == data and not part.tmp.exists()
    small = IncomingFile(objects, cap=10)
    small.write(b"0123456789abcdef")  # over the cap: counted, written only up to cap + 1
    assert small.size == 16 and small.head == b"0123456789abcdef" and small.complete
    assert small.tmp.read_bytes() == b"0123456789a"
    small.close()
    small.discard()
    assert not small.tmp.exists()
