"""The web page in a real browser: Debian's chromium driven by Playwright against a real
``corelane serve``. Upload generated images, watch the bar reach 100 % over a WebSocket, see the
gallery with features, download the ZIP and check it. A screenshot goes to test-artifacts/.

Skipped locally when chromium is missing; failed under CI=true (CI installs it).
"""

from __future__ import annotations

import io
import os
import zipfile
from datetime import datetime
from pathlib import Path

import imaging_samples as samples
import pytest
from service_fixtures import ROOT, ServerProcess

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]
ARTIFACTS = ROOT / "test-artifacts"


def _need_browser() -> None:
    if os.path.exists(CHROMIUM):
        return
    message = f"{CHROMIUM} is missing (apt-get install -y chromium)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.mark.timeout(120)
def test_upload_progress_gallery_and_zip_in_a_real_browser(tmp_path: Path) -> None:
    _need_browser()
    if not (ROOT / "corelane/service/ui/static/vendor/socket.io.min.js").exists():
        pytest.fail("the Socket.IO client is missing: run scripts/fetch-assets.sh")
    from playwright.sync_api import expect, sync_playwright

    uploads = {
        "harbour.jpg": samples.photo_jpeg(1600, 1200, seed=3, make="Fujifilm", model="X-T4",
                                          taken=datetime(2024, 6, 2, 18, 30)),
        "meadow.jpg": samples.photo_jpeg(1200, 1600, seed=4),
        "sunset.jpg": samples.photo_jpeg(1400, 900, seed=11),
        "logo.png": samples.png_rgba(480, 360),
        "dusk.webp": samples.webp(640, 400),
        "notes.jpg": samples.text_file(),
    }
    files = [{"name": n, "mimeType": "image/jpeg", "buffer": b} for n, b in uploads.items()]
    server = ServerProcess(tmp_path / "data", workers=2).start()
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            try:
                page = browser.new_page(viewport={"width": 1360, "height": 1000},
                                        accept_downloads=True)
                page.goto(server.url + "/")
                conn = page.locator("#conn")
                expect(conn).to_have_attribute("data-state", "live", timeout=15000)
                expect(conn).to_have_attribute("data-transport", "websocket")

                # Drag and drop fills the selection like the file picker does.
                dropped = page.evaluate_handle("""() => {
                  const dt = new DataTransfer();
                  dt.items.add(new File([new Uint8Array([1, 2, 3])], 'dropped.png',
                                        {type: 'image/png'}));
                  return dt; }""")
                page.dispatch_event("#dropzone", "drop", {"dataTransfer": dropped})
                expect(page.locator("#picked")).to_contain_text("1 file(s)")
                expect(page.locator("#start")).to_be_enabled()
                page.set_input_files("#file-input", files)
                expect(page.locator("#picked")).to_contain_text("6 file(s)")
                page.select_option("#opt-format", "webp")
                page.fill("#opt-sizes", "1024,512,128")
                page.click("#start")

                bar = page.locator("#jv-bar")
                expect(bar).to_have_attribute("data-percent", "100", timeout=60000)
                expect(page.locator("#job-view")).to_have_attribute("data-state", "failed")
                expect(page.locator(".tile.done")).to_have_count(5)
                expect(page.locator(".tile.failed")).to_have_count(1)
                expect(page.locator(".tile.failed .err")).to_contain_text("text")
                first = page.locator(".tile.done").first
                expect(first.locator("svg.hist")).to_have_count(1)
                expect(first.locator(".dominant .swatch").first).to_be_visible()
                expect(first).to_contain_text("1600×1200")
                expect(first).to_contain_text("phash")
                expect(first.locator(".facts .exif").first).to_contain_text("Fujifilm X-T4")
                expect(first.locator(".sizes a")).to_have_count(3)
                # Every thumbnail really loaded.
                page.wait_for_function(
                    "() => [...document.querySelectorAll('.tile.done img')]"
                    ".every(i => i.complete && i.naturalWidth > 0)", timeout=15000)
                # The job list row shows the finished job too.
                row = page.locator(".job").first
                expect(row.locator(".badge")).to_have_text("failed")
                expect(row.locator(".nums")).to_contain_text("5/6 done")

                with page.expect_download(timeout=20000) as dl_info:
                    page.click("#jv-zip")
                archive = tmp_path / "job.zip"
                dl_info.value.save_as(archive)

                ARTIFACTS.mkdir(exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / "service-e2e.png"), full_page=True)
            finally:
                browser.close()
    finally:
        server.stop()

    with zipfile.ZipFile(io.BytesIO(archive.read_bytes())) as z:
        names = z.namelist()
        webps = [n for n in names if n.endswith(".webp")]
        assert len(webps) == 5 * 3
        assert "manifest.json" in names
        assert any(n.startswith("001-harbour/") for n in names)
