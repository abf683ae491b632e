"""Issue 12, points 1-2, as the curl cases against a real ``corelane serve`` (gunicorn, real
sockets): a page on a rebound name cannot post jobs or open Socket.IO, by polling or WebSocket;
an extra allowed origin works next to the page's own origin instead of replacing it."""

from __future__ import annotations

from pathlib import Path

import imaging_samples as samples
import pytest
import requests
import websocket
from service_fixtures import ServerProcess

HANDSHAKE = "/socket.io/?EIO=4&transport=polling"


@pytest.mark.timeout(90)
def test_rebinding_and_origins_against_a_real_server(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", env={
        "CORELANE_ALLOWED_ORIGINS": "https://tools.example",
        "CORELANE_ALLOWED_HOSTS": "photos.example"}).start()
    port = server.port
    evil = {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"}
    own = {"Origin": server.url}
    files = {"files": ("a.jpg", samples.photo_jpeg(64, 48), "image/jpeg")}
    try:
        # curl -H "Host: evil.example:$P" -H "Origin: http://evil.example:$P" -F files=@a.jpg
        resp = requests.post(server.url + "/api/jobs", files=files, headers=evil, timeout=10)
        assert resp.status_code == 421 and "evil.example" in resp.json()["error"]["message"]
        assert requests.get(server.url + "/", headers=evil, timeout=10).status_code == 421
        assert requests.get(server.url + HANDSHAKE, headers=evil, timeout=10).status_code == 421
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            websocket.create_connection(
                f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket",
                host=evil["Host"], origin=evil["Origin"], timeout=10)
        assert refused.value.status_code == 421
        assert requests.get(server.url + "/api/jobs", timeout=10).json()["jobs"] == []

        # The page's own origin still works with an extra origin configured (it used to get
        # "400 Not an accepted origin" on Socket.IO), and so does the listed one.
        handshake = requests.get(server.url + HANDSHAKE, headers=own, timeout=10)
        assert handshake.status_code == 200 and handshake.text.startswith("0{")
        tools = requests.get(server.url + HANDSHAKE, headers={"Origin": "https://tools.example"},
                             timeout=10)
        assert tools.status_code == 200
        ws = websocket.create_connection(
            f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket", origin=server.url,
            timeout=10)
        try:
            assert ws.recv().startswith("0{")  # engine.io "open"
        finally:
            ws.close()
        other = requests.get(server.url + HANDSHAKE, headers={"Origin": "https://other.example"},
                             timeout=10)
        assert other.status_code == 400
        resp = requests.post(server.url + "/api/jobs", files=files, headers=own, timeout=10)
        assert resp.status_code == 202
        # A name the operator listed is served.
        listed = requests.get(server.url + "/", headers={"Host": "photos.example"}, timeout=10)
        assert listed.status_code == 200
    finally:
        server.stop()
