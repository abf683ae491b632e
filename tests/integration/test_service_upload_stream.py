"""Uploads through a real gunicorn: the body is read from the socket by our reader
(uploads.SocketBody), the stored sources are the uploaded bytes, and the connection goes on
(keep-alive), also after a slow client and after one that went away mid-body."""

from __future__ import annotations

import http.client
import json
import socket
import time
from pathlib import Path
from typing import Any

import imaging_samples as samples
from service_fixtures import ServerProcess

from corelane.service.store import Store


def _body(files: dict[str, bytes], **fields: str) -> tuple[bytes, str]:
    b = "stream-test"
    out = b"".join((f"--{b}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{n}\""
                    "\r\nContent-Type: image/jpeg\r\n\r\n").encode() + d + b"\r\n"
                   for n, d in files.items())
    out += b"".join(f"--{b}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
                    .encode() for k, v in fields.items())
    return out + f"--{b}--\r\n".encode(), f"multipart/form-data; boundary={b}"


def _sources(data: Path, job_id: str) -> dict[str, bytes]:
    store = Store(f"sqlite:///{data / 'corelane.db'}")
    try:
        return {i["name"]: (data / "objects" / i["source_key"]).read_bytes()
                for i in store.list_items(job_id)}
    finally:
        store.close()


def test_uploads_stream_from_the_socket_and_keep_alive_goes_on(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = ServerProcess(data, env={"CORELANE_RUN_JOBS": "false"}).start()
    try:
        files = {f"p{i}.jpg": samples.photo_jpeg(1200, 900, seed=i) for i in range(3)}
        body, ctype = _body(files, sizes="256")
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        jobs: list[dict[str, Any]] = []
        for _ in range(2):  # two uploads on one connection: gunicorn's count of the body held
            conn.request("POST", "/api/jobs", body=body, headers={"Content-Type": ctype})
            resp = conn.getresponse()
            assert resp.status == 202
            jobs.append(json.loads(resp.read()))
        conn.request("GET", f"/api/jobs/{jobs[0]['id']}")
        assert json.loads(conn.getresponse().read())["options"]["sizes"] == [256]
        for job in jobs:
            assert _sources(data, job["id"]) == files

        # A slow client: the body arrives in pieces with pauses between them.
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
            head = (f"POST /api/jobs HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                    f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n").encode()
            s.sendall(head + body[:1000])
            for start in range(1000, len(body), 150_000):
                time.sleep(0.05)
                s.sendall(body[start:start + 150_000])
            reply = http.client.HTTPResponse(s)
            reply.begin()
            assert reply.status == 202
            slow = json.loads(reply.read())
        assert _sources(data, slow["id"]) == files

        # A client that goes away half-way: nothing of it stays, the server serves on.
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
            s.sendall(head + body[:len(body) // 2])
        time.sleep(0.5)
        assert server.get("/api/health")["status"] == "ok"
        leftovers = [p for p in (data / "objects").rglob(".tmp-*")]
        assert leftovers == []
        assert len(server.get("/api/jobs")["jobs"]) == 3
    finally:
        server.stop()
