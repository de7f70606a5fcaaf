"""Chart marks in a real browser against a real `stats-service demo`: a note (a moment)
and an anomaly band posted through the API appear on the device page's chart as a
dashed line and a translucent band with their labels; the label's hover shows the text;
a failing annotations list leaves the chart drawn with no marks; no console errors."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page

from .browser import PHONE, WAIT_MS, new_page, open_browser, sign_in
from .conftest import ServerFactory
from .harness import ADMIN_KEY

pytestmark = [pytest.mark.e2e]
DEVICE = "esp32-01"
CHART = '.plot[data-metric="temperature"]'
NOTE = "firmware 1.2 deployed"
BAND = "temperature spike"


def _wait_for_device(client: httpx.Client) -> str:
    """The demo's board exists once its first readings are stored: its temperature series."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        answer = client.get("/v1/series", params={"device": DEVICE, "metric": "temperature"})
        if answer.status_code == 200 and answer.json()["items"]:
            return str(answer.json()["items"][0]["id"])
        time.sleep(0.2)
    raise AssertionError(f"the demo wrote no temperature of {DEVICE} in 20 s")


def _post(client: httpx.Client, **body: Any) -> dict[str, Any]:
    answer = client.post("/v1/annotations", json=body)
    assert answer.status_code == 201, answer.text
    out: dict[str, Any] = answer.json()
    return out


def _marks(page: Page) -> int:
    page.wait_for_function(
        f"(document.querySelector('{CHART}')?.dataset.marks ?? '') !== ''", timeout=WAIT_MS
    )
    return int(page.get_attribute(CHART, "data-marks") or -1)


def test_notes_and_bands_on_the_device_chart(server_factory: ServerFactory, tmp_path: Path) -> None:
    demo = server_factory(command="demo").start()
    with demo.client() as client:
        series = _wait_for_device(client)
        note = _post(client, device=DEVICE, start="now-20m", title=NOTE, text="OTA over Wi-Fi")
        band = _post(
            client,
            kind="anomaly",
            series_id=series,
            start="now-45m",
            end="now-35m",
            title=BAND,
            severity="warning",
            source="detector:zscore",
        )
        listed = client.get("/v1/annotations", params={"device": DEVICE, "series": series})
        assert [a["id"] for a in listed.json()["items"]] == [note["id"], band["id"]]

    with open_browser() as browser:
        page, problems = new_page(browser)
        sign_in(page, demo.url, ADMIN_KEY, f"/ui/devices/{DEVICE}")
        page.wait_for_function(
            f"Number(document.querySelector('{CHART}')?.dataset.marks) >= 2", timeout=WAIT_MS
        )
        assert int(page.get_attribute(CHART, "data-points") or 0) > 0  # the data is drawn too
        layout = page.evaluate(
            f"(() => {{ const p = document.querySelector('{CHART}');"
            " return { shapes: p.layout.shapes, annotations: p.layout.annotations }; })()"
        )
        shapes = layout["shapes"]
        line = [s for s in shapes if s["type"] == "line"]
        rect = [s for s in shapes if s["type"] == "rect"]
        assert len(line) == 1 and len(rect) == 1, shapes
        assert line[0]["line"]["dash"] == "dash" and line[0]["yref"] == "paper"
        assert line[0]["x0"] == line[0]["x1"] == note["start"]
        assert (rect[0]["x0"], rect[0]["x1"]) == (band["start"], band["end"])
        assert rect[0]["fillcolor"].startswith("rgba(") and rect[0]["xref"] == "x"
        labels = {a["text"]: a for a in layout["annotations"] if a.get("hovertext")}
        assert set(labels) == {NOTE, BAND}, layout["annotations"]
        assert "OTA over Wi-Fi" in labels[NOTE]["hovertext"]
        utc = note["start"][:19].replace("T", " ") + " UTC"  # times in UTC, like the axis
        assert utc in labels[NOTE]["hovertext"], labels[NOTE]["hovertext"]
        assert "anomaly · warning · detector:zscore" in labels[BAND]["hovertext"]
        # the labels are drawn in the chart, and hovering one shows its text
        drawn = page.locator(f"{CHART} .annotation-text").all_text_contents()
        assert NOTE in drawn and BAND in drawn
        page.locator(f"{CHART} .annotation", has_text=NOTE).hover()
        page.wait_for_selector(f"{CHART} .hoverlayer >> text=OTA over Wi-Fi", timeout=WAIT_MS)
        page.screenshot(path=tmp_path / "annotations.png", full_page=True)
        # the other charts of the device show the device-wide note only
        others = page.eval_on_selector_all(
            '.plot[data-marks]:not([data-metric="temperature"])',
            "ps => ps.map(p => p.dataset.marks)",
        )
        assert others and set(others) == {"1"}, others
        assert problems == []

        # the other theme: the labels take its text colour (the chart's themed font)
        label = f"{CHART} .annotation-text"
        before = page.eval_on_selector(label, "t => getComputedStyle(t).fill")
        page.click("#theme")
        page.wait_for_function(
            f"getComputedStyle(document.querySelector('{label}')).fill !== '{before}'",
            timeout=WAIT_MS,
        )
        page.screenshot(path=tmp_path / "annotations-dark.png", full_page=True)
        assert problems == []

        phone, phone_problems = new_page(browser, PHONE)  # the marks at phone width
        sign_in(phone, demo.url, ADMIN_KEY, f"/ui/devices/{DEVICE}")
        phone.wait_for_function(
            f"Number(document.querySelector('{CHART}')?.dataset.marks) >= 2", timeout=WAIT_MS
        )
        phone.locator(CHART).scroll_into_view_if_needed()
        phone.screenshot(path=tmp_path / "annotations-phone.png")
        assert phone_problems == []

    with open_browser() as browser:  # a failing list: the chart is drawn, without marks
        page, problems = new_page(browser)
        page.route("**/v1/annotations?*", lambda route: route.fulfill(status=500, body="{}"))
        sign_in(page, demo.url, ADMIN_KEY, f"/ui/devices/{DEVICE}")
        page.wait_for_selector(f"{CHART}[data-points]", timeout=WAIT_MS)
        assert _marks(page) == 0
        assert int(page.get_attribute(CHART, "data-points") or 0) > 0
        assert page.is_hidden("#error")
        shapes = page.evaluate(f"document.querySelector('{CHART}').layout.shapes || []")
        assert shapes == []
        # the browser itself reports the failed requests; the page logs nothing of its own
        assert all("Failed to load resource" in p and "/v1/annotations" in p for p in problems), (
            problems
        )
