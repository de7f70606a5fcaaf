"""The dashboard in a real headless browser (Debian's chromium, driven by Playwright)
against a real `stats-service demo`: sign-in, the overview of the demo boards, a device
page whose charts hold data; no console errors; screenshots saved."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import ConsoleMessage, Page, Response, sync_playwright

from .browser import PHONE, new_page, open_browser, sign_in
from .conftest import ServerFactory
from .harness import ADMIN_KEY

pytestmark = [pytest.mark.e2e]
CHROMIUM = Path(os.environ.get("STATS_TEST_CHROMIUM", "/usr/bin/chromium"))
BOARDS = ("esp32-01", "esp32-02", "esp32-03")
WAIT_MS = 20_000


def test_sign_in_overview_and_device_charts(server_factory: ServerFactory, tmp_path: Path) -> None:
    if not CHROMIUM.exists():  # a failure, never a skip: scripts/services.sh installs it
        pytest.fail(f"no chromium at {CHROMIUM}: apt-get install -y chromium")
    demo = server_factory(command="demo").start()
    problems: list[str] = []
    aggregates: list[tuple[str, Any]] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(f"console: {message.text}")

    def on_response(response: Response) -> None:
        if "/v1/aggregate" in response.url and response.ok:
            aggregates.append((response.url, response.json()))

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            page: Page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", on_console)
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on("response", on_response)

            page.goto(f"{demo.url}/ui/login")
            page.fill("#key", ADMIN_KEY)
            page.click("button[type=submit]")
            page.wait_for_url(re.compile(r"/ui/$"))
            for board in BOARDS:
                page.wait_for_selector(f'tr[data-device="{board}"]', timeout=WAIT_MS)
            assert page.text_content("#who") == "default · admin"
            row = page.locator('tr[data-device="esp32-01"]')
            assert "online" in row.inner_text() and "°C" in row.inner_text()
            # the last values follow the live feed: the row's value changes without a reload
            page.wait_for_selector('#live[data-status="live"]', timeout=WAIT_MS)
            first = row.inner_text()
            page.wait_for_function(
                "t => document.querySelector('tr[data-device=\"esp32-01\"]').innerText !== t",
                arg=first,
                timeout=WAIT_MS,
            )
            page.fill("#search", "esp32-02")
            assert page.locator("#devices tbody tr").count() == 1
            page.fill("#search", "")
            page.screenshot(path=tmp_path / "overview.png", full_page=True)

            page.click('a[href="/ui/devices/esp32-01"]')
            page.wait_for_url(re.compile(r"/ui/devices/esp32-01$"))
            chart = '.plot[data-metric="temperature"]'
            page.wait_for_selector(f"{chart}[data-points]", timeout=WAIT_MS)
            assert int(page.get_attribute(chart, "data-points") or 0) > 0
            assert page.locator(f"{chart} .scatterlayer path.js-line").count() >= 1
            assert "°C" in (page.text_content(f"{chart} .g-ytitle") or "")
            page.screenshot(path=tmp_path / "device.png", full_page=True)

            # live: the feed is open and a new reading redraws the chart without a reload
            page.wait_for_selector('#live[data-status="live"]', timeout=WAIT_MS)
            page.wait_for_selector("#charts[data-live-updates]", timeout=WAIT_MS)
            assert page.evaluate("performance.getEntriesByType('navigation').length") == 1

            aggregates.clear()
            page.select_option("#fn", "p95")
            page.wait_for_function("document.querySelector('#bucket').textContent !== ''")
            page.click('#presets button[data-range="86400"]')
            page.wait_for_function(
                "document.querySelector('#bucket').textContent.startsWith('bucket 2m')"
            )
            page.screenshot(path=tmp_path / "device-24h.png", full_page=True)
            width = page.evaluate("document.querySelector('.plot').clientWidth")

            # a zoom reads the zoomed range again at a finer bucket and stops following
            page.locator(chart).scroll_into_view_if_needed()
            box = page.locator(chart).bounding_box()
            assert box is not None
            y = box["y"] + box["height"] / 2
            page.mouse.move(box["x"] + box["width"] * 0.80, y)
            page.mouse.down()
            page.mouse.move(box["x"] + box["width"] * 0.97, y, steps=5)
            page.mouse.up()
            page.wait_for_function(
                "!document.querySelector('#custom').hidden && "
                "!document.querySelector('#bucket').textContent.startsWith('bucket 2m')"
            )
            page.wait_for_selector('#live[data-status="off"]')
            page.click("#theme")
            page.wait_for_function("document.documentElement.dataset.theme === 'dark'")
            page.screenshot(path=tmp_path / "device-zoom-dark.png", full_page=True)
        finally:
            browser.close()

    assert problems == []
    assert aggregates, "the device page asked for no aggregates"
    for url, body in aggregates:
        assert "p95" in body["functions"], url
        for group in body["groups"]:
            assert len(group["t"]) <= width, url
    assert (tmp_path / "overview.png").stat().st_size > 10_000


def test_an_empty_server_says_how_to_send_data_and_errors_are_shown(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    server = server_factory().start()
    with open_browser() as browser:
        page, problems = new_page(browser, viewport=PHONE)
        sign_in(page, server.url, ADMIN_KEY)
        page.wait_for_selector("#empty:not([hidden])", timeout=WAIT_MS)
        curl = page.text_content("#curl") or ""
        assert f"curl -X POST {server.url}/v1/ingest" in curl
        mqtt = page.text_content("#mqtt") or ""
        assert "mosquitto_pub" in mqtt and "stats/esp32-kitchen/temperature" in mqtt
        assert "STATS_MQTT_URL" in (page.text_content("#mqtt-hint") or "")
        assert page.is_hidden("#devices") and page.is_hidden("#loading")
        # nothing wider than the phone's screen
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        page.screenshot(path=tmp_path / "empty-phone.png", full_page=True)

        # a device that does not exist: the page says so instead of staying blank
        page.goto(f"{server.url}/ui/devices/nope")
        page.wait_for_selector("#error:not([hidden])", timeout=WAIT_MS)
        assert "404" in (page.text_content("#error") or "")
        assert "nope" in (page.text_content("#error") or "")
        page.screenshot(path=tmp_path / "unknown-device.png", full_page=True)
    # the only console line is the browser's own report of the 404 provoked above
    assert [p for p in problems if "status of 404" not in p] == []
    assert len(problems) <= 1
