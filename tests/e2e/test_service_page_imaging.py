"""Issue 14 on the page, in Debian's chromium against a real ``corelane serve``: the upload form
sends AVIF, smart crops and the quality resize (a malformed crop list is refused before any
upload); tiles show a BlurHash placeholder (decoded in JS, checked against the Python decoder)
until their image loads, the focal point as a marker on the face (on hover, or for all tiles with
the toggle), crop previews, and the job's duplicate groups with matches in an earlier job. No
sideways scroll at 1280x800 or 390x844; screenshots in test-artifacts/.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import imaging_samples as samples
import numpy as np
import pytest
from PIL import Image
from service_fixtures import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    ServerProcess,
    need_browser,
    no_sideways_scroll,
)

from corelane.imaging import blurhash


def _resized_jpeg(array: np.ndarray, edge: int, quality: int) -> bytes:
    im = Image.fromarray(array)
    im.thumbnail((edge, edge))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _centre(box: dict[str, float]) -> tuple[float, float]:
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


@pytest.mark.timeout(240)
def test_placeholders_focal_crops_and_duplicates_on_the_page(tmp_path: Path) -> None:
    need_browser()
    from playwright.sync_api import expect, sync_playwright

    astronaut = samples.real_photo("astronaut")
    original = samples.jpeg_from_array(astronaut, quality=90)
    uploads = {
        "astronaut.jpg": original,
        "astronaut-copy.jpg": original,                       # the same bytes
        "astronaut-small.jpg": _resized_jpeg(astronaut, 300, 70),  # resized, re-encoded
        "coffee.jpg": samples.jpeg_from_array(samples.real_photo("coffee")),
        "chelsea.jpg": samples.jpeg_from_array(samples.real_photo("chelsea")),
        "logo.png": samples.png_rgba(480, 360),
    }
    files = [{"name": n, "mimeType": "image/jpeg", "buffer": b} for n, b in uploads.items()]
    server = ServerProcess(tmp_path / "data", workers=1).start()
    try:
        earlier = server.post_files(
            {"astronaut-earlier.jpg": samples.jpeg_from_array(astronaut, quality=50)},
            sizes="128")
        server.wait(earlier["id"])
        ARTIFACTS.mkdir(exist_ok=True)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                errors: list[str] = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                page.goto(server.url + "/")
                expect(page.locator("#conn")).to_have_attribute("data-state", "live", timeout=15000)
                expect(page.locator(".job")).to_have_count(1)
                page.set_input_files("#file-input", files)
                page.fill("#opt-sizes", "512,128")
                page.select_option("#opt-format", "avif")
                page.select_option("#opt-resize", "quality")
                # A malformed crop list is refused on the page, before any upload.
                page.fill("#opt-crops", "16x9")
                page.click("#start")
                expect(page.locator("#upload-error")).to_contain_text(
                    "Smart crops: write ratios as W:H")
                expect(page.locator(".job")).to_have_count(1)
                page.fill("#opt-crops", "")
                page.click("#crop-presets .chip[data-ratio='1:1']")
                page.click("#crop-presets .chip[data-ratio='16:9']")
                expect(page.locator("#opt-crops")).to_have_value("1:1,16:9")
                expect(page.locator("#upload-error")).to_be_hidden()  # put right: it goes
                expect(page.locator("#crop-presets .chip[aria-pressed='true']")).to_have_count(2)
                page.screenshot(path=str(ARTIFACTS / "service-imaging-form-1280.png"))
                page.click("#start")

                expect(page.locator("#jv-bar")).to_have_attribute("data-percent", "100",
                                                                  timeout=120000)
                job_id = page.evaluate("location.hash").split("=", 1)[1]
                job = server.get(f"/api/jobs/{job_id}")
                assert job["state"] == "done", job
                assert job["options"]["crops"] == ["1:1", "16:9"]
                assert (job["options"]["resize"], job["options"]["format"]) == ("quality", "avif")
                expect(page.locator("#jv-meta")).to_contain_text("crops 1:1, 16:9")
                expect(page.locator("#jv-meta")).to_contain_text("quality resize")
                items = {i["name"]: i for i in server.get(f"/api/jobs/{job_id}/items")["items"]}

                # BlurHash placeholders, decoded in JS exactly like the Python decoder does.
                expect(page.locator(".tile.done canvas.blur")).to_have_count(6)
                hashes = {name: item["features"]["blurhash"] for name, item in items.items()}
                for name in ("astronaut.jpg", "coffee.jpg"):
                    js = page.evaluate("h => Array.from(corelaneBlurhash.decode(h, 8, 6))",
                                       hashes[name])
                    py = blurhash.decode(hashes[name], 8, 6)
                    rgba = np.asarray(js, np.int16).reshape(6, 8, 4)
                    assert np.abs(rgba[..., :3] - py).max() <= 1, name
                    r, g, b = blurhash.average_colour(hashes[name])
                    assert page.evaluate("h => corelaneBlurhash.average(h)", hashes[name]) == \
                        f"#{r:02x}{g:02x}{b:02x}"
                assert page.evaluate("corelaneBlurhash.decode('nonsense', 8, 6)") is None
                # AVIF thumbnails and crop previews really load in the browser, over the blur.
                page.wait_for_function(
                    "() => [...document.querySelectorAll('.tile.done img')]"
                    ".every(i => i.complete && i.naturalWidth > 0)", timeout=20000)
                expect(page.locator(".tile.done .thumb.loaded")).to_have_count(6)
                expect(page.locator(".tile.done .crops .crop")).to_have_count(12)

                # The focal point: hidden until hover; on the astronaut it sits in her face box.
                tile = page.locator(f".tile[data-item='{items['astronaut.jpg']['id']}']")
                focal = tile.locator(".focal")
                expect(focal).to_have_attribute("data-source", "face")
                page.mouse.move(1, 1)  # off every tile
                page.wait_for_timeout(300)  # the fade
                assert focal.evaluate("e => getComputedStyle(e).opacity") == "0"
                tile.locator(".thumb").hover()
                page.wait_for_function(
                    "e => getComputedStyle(e).opacity === '1'", arg=focal.element_handle())
                page.click("#jv-focal")
                expect(page.locator("#jv-focal")).to_have_attribute("aria-pressed", "true")
                expect(page.locator("#gallery")).to_have_class("gallery show-focal")
                face = tile.locator(".face-box").first.bounding_box()
                fx, fy = _centre(focal.bounding_box() or {})
                assert face and face["x"] <= fx <= face["x"] + face["width"], (fx, face)
                assert face["y"] <= fy <= face["y"] + face["height"], (fy, face)
                # The tile is shifted to the focal point: her face is inside it, not cut off.
                thumb = tile.locator(".thumb").bounding_box()
                assert thumb and thumb["y"] <= face["y"] and fy < thumb["y"] + thumb["height"] / 2
                crop = tile.locator(".crop[data-crop='16:9'] img").bounding_box()
                assert crop and abs(crop["width"] / crop["height"] - 16 / 9) < 0.05

                # Duplicates: one near group of the three astronauts, two of them the same
                # bytes; the earlier job's astronaut is listed as seen before.
                dups = page.locator("#jv-dups")
                expect(dups).to_have_attribute("data-groups", "1", timeout=10000)
                group = dups.locator(".dup-group")
                expect(group).to_have_attribute("data-kind", "near")
                expect(group.locator(".dup-member")).to_have_count(3)
                expect(group.locator(".same")).to_have_count(2)
                expect(dups.locator(".dup-earlier")).to_contain_text("astronaut-earlier.jpg")
                expect(page.locator("#dups-summary")).to_have_text("1 group · 3 images")
                expect(group.locator(".dup-head")).to_contain_text("the same perceptual hash")
                group.locator(".dup-member").nth(2).click()
                expect(page.locator(".tile.flash")).to_have_count(1)
                no_sideways_scroll(page, 1280, "imaging job view at 1280")
                page.screenshot(path=str(ARTIFACTS / "service-imaging-1280.png"), full_page=True)
                assert not errors, errors
                page.close()

                # Placeholders while the images are held back by the network.
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                held: list[Any] = []
                release = False

                def hold(route: Any) -> None:
                    if release:
                        route.continue_()
                    else:
                        held.append(route)

                page.route("**/api/jobs/*/items/*/**", hold)
                page.goto(f"{server.url}/#job={job_id}")
                expect(page.locator(".tile.done canvas.blur")).to_have_count(6, timeout=15000)
                expect(page.locator(".tile.done .thumb.loaded")).to_have_count(0)
                page.locator("#gallery").scroll_into_view_if_needed()
                colour = page.evaluate("""() => {
                  const c = document.querySelector('.tile.done canvas.blur');
                  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                  return [d[0], d[1], d[2], d[3]]; }""")
                assert colour[3] == 255 and sum(colour[:3]) > 0
                page.screenshot(path=str(ARTIFACTS / "service-imaging-placeholders-1280.png"))
                release = True
                for route in held:
                    route.continue_()
                expect(page.locator(".tile.done .thumb.loaded")).to_have_count(6, timeout=20000)
                page.close()

                # A phone: the form's new fields and the job view fit; nothing scrolls sideways.
                page = browser.new_page(viewport={"width": 390, "height": 844})
                page.goto(f"{server.url}/#job={job_id}")
                expect(page.locator(".tile.done canvas.blur")).to_have_count(6, timeout=15000)
                for n in range(6):  # lazy images load as they come into view
                    page.locator(".tile.done").nth(n).scroll_into_view_if_needed()
                expect(page.locator(".tile.done .thumb.loaded")).to_have_count(6, timeout=20000)
                expect(page.locator("#jv-dups")).to_have_attribute("data-groups", "1")
                for control in ("#opt-crops", "#opt-resize", "#crop-presets", "#jv-focal",
                                "#dups-refresh"):
                    box = page.locator(control).bounding_box()
                    assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390, control
                page.click("#jv-focal")
                no_sideways_scroll(page, 390, "imaging job view at 390")
                page.screenshot(path=str(ARTIFACTS / "service-imaging-390.png"), full_page=True)
                page.close()
            finally:
                browser.close()
    finally:
        server.stop()
