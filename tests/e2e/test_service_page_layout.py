"""Issue 12, points 4-9, in Debian's chromium against a real ``corelane serve``: at 390x844 and
1280x800 the page never scrolls sideways (``/`` with running, done, failed, partly done and
cancelled jobs listed, a job view, ``/workers``); each job's badge tells the truth (partly done is
not failed; queued and processing images are told apart); a job is deleted from the page with
its rows and files. Screenshots of each state land in test-artifacts/.
"""

from __future__ import annotations

from pathlib import Path

import imaging_samples as samples
import pytest
import requests
from service_fixtures import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    ServerProcess,
    need_browser,
    no_sideways_scroll,
)

VIEWPORTS = [(1280, 800), (390, 844)]




def _source_files(data: Path) -> int:
    return sum(1 for p in (data / "objects" / "src").rglob("*") if p.is_file())


@pytest.mark.timeout(180)
def test_layout_status_and_delete_at_phone_and_desktop_widths(tmp_path: Path) -> None:
    need_browser()
    from playwright.sync_api import expect, sync_playwright

    data = tmp_path / "data"
    # One running job at a time, so the later jobs wait in line (fair turns need no page check).
    server = ServerProcess(data, workers=1, env={"CORELANE_MAX_RUNNING_JOBS": "1"}).start()
    text = samples.text_file()
    try:
        partial = server.post_files({"harbour.jpg": samples.photo_jpeg(900, 600, seed=1),
                                     "meadow.jpg": samples.photo_jpeg(600, 900, seed=2),
                                     "notes.jpg": text, "empty.jpg": samples.zero_bytes()},
                                    sizes="512,128")
        done = server.post_files({"logo.png": samples.png_rgba(480, 360)}, sizes="256")
        failed = server.post_files({"readme.jpg": text})
        for job in (partial, done, failed):
            server.wait(job["id"], ("done", "failed"))
        big = samples.photo_jpeg(2400, 1800, seed=5)
        running = server.post_files({f"scan-{i:02d}.jpg": big for i in range(40)},
                                    sizes="2048,1024,512,256", timeout=120)
        cancelled = server.post_files({"later.jpg": samples.photo_jpeg(300, 200)})
        waiting = server.post_files({"next.jpg": samples.photo_jpeg(300, 200)})
        server.wait(running["id"], ("running",))
        assert server.get(f"/api/jobs/{waiting['id']}")["queue_position"] == 2
        assert requests.post(f"{server.url}/api/jobs/{cancelled['id']}/cancel",
                             timeout=10).status_code == 202
        expected = {partial["id"]: "partly done", done["id"]: "done", failed["id"]: "failed",
                    running["id"]: "processing", cancelled["id"]: "cancelled",
                    waiting["id"]: "queued"}
        ARTIFACTS.mkdir(exist_ok=True)

        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                for width, height in VIEWPORTS:
                    page = browser.new_page(viewport={"width": width, "height": height})
                    page.goto(server.url + "/")
                    expect(page.locator("#conn")).to_have_attribute("data-state", "live",
                                                                    timeout=15000)
                    expect(page.locator(".job")).to_have_count(6)
                    # The cancel moved the waiting job up: it starts next.
                    expect(page.locator(f".job[data-job='{waiting['id']}'] .counts .position")
                           ).to_have_text("next in line")
                    for job_id, label in expected.items():
                        row = page.locator(f".job[data-job='{job_id}']")
                        expect(row.locator(".badge")).to_have_text(label)
                    row = page.locator(f".job[data-job='{partial['id']}']")
                    expect(row.locator(".counts")).to_contain_text("2 done")
                    expect(row.locator(".counts")).to_contain_text("2 failed")
                    expect(row.locator(".bar .label")).to_have_text("2 / 4 done")
                    no_sideways_scroll(page, width, f"/ at {width}")
                    for control in ("#opt-sizes", "#opt-format", "#start", "#dropzone"):
                        box = page.locator(control).bounding_box()
                        assert box and box["x"] >= 0 and box["x"] + box["width"] <= width, control
                    page.screenshot(path=str(ARTIFACTS / f"service-jobs-{width}.png"),
                                    full_page=True)

                    # The partly done job: counts, bar and badge say what happened.
                    row.get_by_role("button", name="View").click()
                    view = page.locator("#job-view")
                    expect(view).to_have_attribute("data-outcome", "partial")
                    expect(page.locator("#jv-state")).to_have_text("partly done")
                    expect(page.locator("#jv-stats")).to_contain_text("2 done")
                    expect(page.locator("#jv-stats")).to_contain_text("2 failed")
                    expect(page.locator(".tile.done")).to_have_count(2)
                    expect(page.locator(".tile.failed")).to_have_count(2)
                    no_sideways_scroll(page, width, f"partial job view at {width}")
                    page.screenshot(path=str(ARTIFACTS / f"service-job-partial-{width}.png"),
                                    full_page=True)

                    # The running job: one worker, so one image processing, the rest queued.
                    page.locator(f".job[data-job='{running['id']}']").get_by_role(
                        "button", name="View").click()
                    expect(page.locator("#jv-state")).to_have_text("processing")
                    expect(page.locator(".tile[data-shown='processing']")).to_have_count(1)
                    assert page.locator(".tile[data-shown='queued']").count() >= 5
                    expect(page.locator("#jv-stats")).to_contain_text("1 processing")
                    no_sideways_scroll(page, width, f"running job view at {width}")
                    page.screenshot(path=str(ARTIFACTS / f"service-job-running-{width}.png"))
                    page.keyboard.press("Escape")  # closes the job view
                    expect(page.locator("#job-view")).to_be_hidden()

                    page.goto(server.url + "/workers")
                    expect(page.locator("#workers-body tr td").first).not_to_have_text(
                        "loading…", timeout=10000)
                    no_sideways_scroll(page, width, f"/workers at {width}")
                    table = page.locator("table.workers").bounding_box()
                    card = page.locator("main .card").bounding_box()
                    assert table and card and table["width"] >= card["width"] - 48
                    page.screenshot(path=str(ARTIFACTS / f"service-workers-{width}.png"),
                                    full_page=True)
                    page.close()
                assert server.get(f"/api/jobs/{running['id']}")["state"] == "running", \
                    "the long job ended before the checks: give it more images"

                # Delete the partly done job from the page: its row, rows and files go.
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                page.on("dialog", lambda dialog: dialog.accept())
                page.goto(server.url + "/")
                expect(page.locator(".job")).to_have_count(6, timeout=15000)
                items = server.get(f"/api/jobs/{partial['id']}/items")["items"]
                sources_before = _source_files(data)
                outputs = [data / "objects" / "out" / i["id"][:2] / i["id"]
                           for i in items if i["state"] == "done"]
                assert all(folder.is_dir() for folder in outputs)
                running_row = page.locator(f".job[data-job='{running['id']}'] .delete")
                expect(running_row).to_be_disabled()  # cancel first
                page.locator(f".job[data-job='{partial['id']}'] .delete").click()
                expect(page.locator(f".job[data-job='{partial['id']}']")).to_have_count(0)
                expect(page.locator(".job")).to_have_count(5)
                gone = requests.get(f"{server.url}/api/jobs/{partial['id']}", timeout=10)
                assert gone.status_code == 404
                assert not any(folder.exists() for folder in outputs)
                assert _source_files(data) == sources_before - 2
                page.screenshot(path=str(ARTIFACTS / "service-jobs-after-delete.png"))
            finally:
                browser.close()
        requests.post(f"{server.url}/api/jobs/{running['id']}/cancel", timeout=10)
    finally:
        server.stop()
