"""The dashboard's Explorer page in a real headless browser against a real
`stats-service demo`: series picked by device and metric overlay on one chart, a second
unit gets a right-hand axis and a third is refused; range, function and zoom reload the
data with a bucket sized to the plot; the view lives in the URL; CSV, JSON and PNG
exports; the dark theme at phone width. No console errors."""

from __future__ import annotations

import csv
import io
import json
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import Page, Request

from .browser import PHONE, WAIT_MS, new_page, open_browser, sign_in
from .conftest import ServerFactory
from .harness import ADMIN_KEY

pytestmark = [pytest.mark.e2e]
PLOT = "#plot"
LAYOUT = "document.querySelector('#plot')._fullLayout"


# The page's pure helpers, called in the browser (there is no JS test runner).
HELPERS = """async () => {
    const m = await import('/ui/static/explorer.js');
    const temp = {id: '1', device: 'esp32-01', metric: 'temperature', tags: {device: 'esp32-01'},
                  unit: '°C'};
    const sir = {id: '-2', device: 'sim-sir', metric: 'infected',
                 tags: {device: 'sim-sir', run: 'r,1'}, unit: 'people'};
    const hum = {id: '3', device: 'esp32-01', metric: 'humidity', tags: {}, unit: '%'};
    const boards = {id: '4', device: null, metric: 'demo.boards', tags: {app: 'demo'}, unit: null};
    const view = {from: new Date('2026-12-06T10:00:00Z'), to: new Date('2026-12-06T11:00:00Z'),
        bucket: '1m', fn: 'mean', series: [
            {...temp, t: ['2026-12-06T10:00:00Z'], values: [20.5]},
            {...sir, t: ['2026-12-06T10:01:00Z'], values: [7]}]};
    const read = m.readQuery('?series=1,-2,1,bad&range=900&fn=p95');
    return {
        label: m.seriesLabel(sir),
        csv: m.toCsv(view).trimEnd().split('\\r\\n'),
        selections: m.aggregateSelections([temp, hum, boards]),
        query: m.writeQuery({ids: ['1', '-2'], range: 900, fn: 'p95'}),
        read: {ids: read.ids, range: read.range, fn: read.fn},
        custom: m.writeQuery({ids: [], range: 'custom', from: view.from, to: view.to, fn: 'mean'}),
        third: m.refusal([temp, hum], sir),
        same: m.refusal([temp, hum], {...temp, id: '9'}),
        stamp: m.fileStamp(view.from),
        zoomed: m.fromPlotTime('2026-12-06 10:00:05.5').toISOString(),
    };
}"""


def wait_drawn(page: Page, bucket: str | None = None, series: int | None = None) -> None:
    """Until the plot holds points (with this bucket, this many series)."""
    page.wait_for_function(
        """([bucket, series]) => {
            const plot = document.querySelector('#plot');
            if (!plot || Number(plot.dataset.points || 0) <= 0) return false;
            if (bucket && plot.dataset.bucket !== bucket) return false;
            const lines = (plot.data || []).filter((t) => t.showlegend !== false).length;
            return !series || lines === series;
        }""",
        arg=[bucket, series],
        timeout=WAIT_MS,
    )


def add_series(page: Page, device: str, metric: str) -> None:
    page.select_option("#device", device)
    page.select_option("#metric", metric)
    row = f'#results tbody tr:has-text("{device} · {metric}")'
    page.wait_for_selector(row, timeout=WAIT_MS)
    page.wait_for_function(
        "n => document.querySelectorAll('#results tbody tr').length === n", arg=1, timeout=WAIT_MS
    )
    page.click(f"{row} button.add")


def chosen_ids(page: Page) -> list[str]:
    """The ids of the series on the chart, in their order."""
    ids: list[str] = page.eval_on_selector_all("#chosen li", "l => l.map((i) => i.dataset.series)")
    return ids


def aggregate_params(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlparse(url).query).items()}


def test_explorer_two_units_range_url_and_exports(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    demo = server_factory(command="demo").start()
    requests: list[str] = []

    def on_request(request: Request) -> None:
        if "/v1/aggregate?" in request.url:
            requests.append(request.url)

    with open_browser() as browser:
        page, problems = new_page(browser)
        page.on("request", on_request)
        sign_in(page, demo.url, ADMIN_KEY, "/ui/explore")

        # the empty state says how to pick; the picker lists the demo's series
        assert page.is_visible("#empty") and "press Add" in page.inner_text("#empty")
        assert not page.is_visible(PLOT)
        page.wait_for_selector('#device option[value="esp32-01"]', state="attached")
        assert not page.is_visible("#export-csv")

        # the tag filter narrows the list (tag.<key>=<value> of GET /v1/series)
        page.fill("#tags", "device=esp32-02")
        page.wait_for_function(
            """() => {
                const rows = [...document.querySelectorAll('#results tbody tr')];
                return rows.length === 3 && rows.every((r) => r.textContent.includes('esp32-02'));
            }""",
            timeout=WAIT_MS,
        )
        page.fill("#tags", "nonsense")
        page.wait_for_function(
            "document.querySelector('#matches').textContent.includes('key=value')"
        )
        page.fill("#tags", "")

        add_series(page, "esp32-01", "temperature")
        wait_drawn(page, series=1)
        # one series: its min-max band under the line
        assert page.evaluate("document.querySelector('#plot').data.length") == 3
        assert page.evaluate(f"{LAYOUT}.yaxis.title.text") == "°C"

        add_series(page, "esp32-01", "humidity")
        wait_drawn(page, series=2)
        assert page.evaluate(f"{LAYOUT}.yaxis2 && {LAYOUT}.yaxis2.side") == "right"
        assert page.evaluate(f"{LAYOUT}.yaxis2.title.text") == "%"
        assert page.text_content(f"{PLOT} .g-y2title") == "%"
        assert "°C" in (page.text_content(f"{PLOT} .g-ytitle") or "")
        legend = page.text_content(f"{PLOT} .legend") or ""
        assert "esp32-01 · temperature (°C)" in legend and "esp32-01 · humidity (%)" in legend

        # a third unit is refused, with the reason in the page
        add_series(page, "esp32-01", "battery")
        page.wait_for_selector("#notice:not([hidden])")
        notice = page.inner_text("#notice")
        assert "battery" in notice and "two units" in notice and "°C" in notice, notice
        assert page.locator("#chosen li").count() == 2

        # the URL keeps the selection
        chosen = chosen_ids(page)
        query = parse_qs(urlparse(page.url).query)
        assert query["series"] == [",".join(chosen)]
        assert query["range"] == ["3600"] and query["fn"] == ["mean"]

        # another range and function: new requests with a bucket sized to the plot
        first_bucket = page.get_attribute(PLOT, "data-bucket")
        requests.clear()
        page.select_option("#fn", "p95")
        page.click('#presets button[data-range="86400"]')
        wait_drawn(page, series=2, bucket="2m")
        assert first_bucket != "2m"
        width = page.evaluate("document.querySelector('#plot').clientWidth")
        latest = [aggregate_params(u) for u in requests if aggregate_params(u)["bucket"] == "2m"]
        assert latest and all(p["fn"].split(",")[0] == "p95" for p in latest), requests
        assert all(p["device"] == "esp32-01" for p in latest)
        query = parse_qs(urlparse(page.url).query)
        assert query["range"] == ["86400"] and query["fn"] == ["p95"]
        points = int(page.get_attribute(PLOT, "data-points") or 0)
        assert 0 < points <= 2 * width
        assert (page.get_attribute(PLOT, "data-marks") or "").isdigit()

        # exports: CSV, JSON and PNG with the view's range in their names
        with page.expect_download() as caught:
            page.click("#export-csv")
        download = caught.value
        assert re.fullmatch(r"explore-\d{8}T\d{6}Z-\d{8}T\d{6}Z\.csv", download.suggested_filename)
        rows = list(csv.reader(io.StringIO(Path(download.path()).read_text(encoding="utf-8"))))
        assert rows[0] == ["t", "esp32-01/temperature (°C)", "esp32-01/humidity (%)"]
        assert len(rows) > 1
        for row in rows[1:]:
            assert row[0].endswith("Z")
            assert row[1] == "" or 10 < float(row[1]) < 40  # the boards' temperatures
            assert row[2] == "" or 0 <= float(row[2]) <= 100
        with page.expect_download() as caught:
            page.click("#export-json")
        download = caught.value
        assert download.suggested_filename.endswith(".json")
        body: dict[str, Any] = json.loads(Path(download.path()).read_text(encoding="utf-8"))
        assert body["fn"] == "p95" and body["bucket"] == "2m"
        assert [s["unit"] for s in body["series"]] == ["°C", "%"]
        assert [s["metric"] for s in body["series"]] == ["temperature", "humidity"]
        assert [s["id"] for s in body["series"]] == chosen
        assert sum(len(s["t"]) for s in body["series"]) == points
        assert all(len(s["t"]) == len(s["p95"]) for s in body["series"])
        with page.expect_download() as caught:
            page.click("#export-png")
        download = caught.value
        assert download.suggested_filename.endswith(".png")
        assert Path(download.path()).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

        # a zoom (Plotly's relayout) loads the zoomed range with a finer bucket
        requests.clear()
        page.evaluate(
            """() => {
                const plot = document.querySelector('#plot');
                const [a, b] = plot._fullLayout.xaxis.range;
                const end = new Date(b.endsWith('Z') ? b : b.replace(' ', 'T') + 'Z');  // UTC
                const start = new Date(end.getTime() - 10 * 60 * 1000);
                const fmt = (d) => d.toISOString().slice(0, 23).replace('T', ' ');
                const range = {'xaxis.range[0]': fmt(start), 'xaxis.range[1]': fmt(end)};
                return Plotly.relayout(plot, range);
            }"""
        )
        wait_drawn(page, series=2, bucket="1s")
        assert any(aggregate_params(u)["bucket"] == "1s" for u in requests)
        query = parse_qs(urlparse(page.url).query)
        assert "from" in query and "to" in query and "range" not in query
        span = datetime.fromisoformat(query["to"][0]) - datetime.fromisoformat(query["from"][0])
        assert abs(span.total_seconds() - 600) < 1
        assert page.get_attribute('#presets button[data-range="custom"]', "aria-pressed") == "true"

        # a double click (autorange) goes back to the range before the zoom
        page.evaluate("Plotly.relayout(document.querySelector('#plot'), {'xaxis.autorange': true})")
        wait_drawn(page, series=2, bucket="2m")
        assert parse_qs(urlparse(page.url).query)["range"] == ["86400"]

        # a reload restores the view from the URL
        page.click('#presets button[data-range="3600"]')
        wait_drawn(page, series=2, bucket="5s")
        page.reload()
        wait_drawn(page, series=2, bucket="5s")
        assert chosen_ids(page) == chosen
        assert page.get_attribute('#presets button[data-range="3600"]', "aria-pressed") == "true"
        assert page.input_value("#fn") == "p95"
        page.screenshot(path=tmp_path / "explorer.png", full_page=True)

        # removing the second unit's series drops the right-hand axis
        page.click(f'#chosen li[data-series="{chosen[1]}"] button.remove')
        wait_drawn(page, series=1)
        assert page.evaluate(f"!{LAYOUT}.yaxis2")
        assert parse_qs(urlparse(page.url).query)["series"] == [chosen[0]]
        page.click(f'#chosen li[data-series="{chosen[0]}"] button.remove')
        page.wait_for_selector("#empty:not([hidden])")
        assert page.get_attribute(PLOT, "data-points") == "0"
        assert "series" not in parse_qs(urlparse(page.url).query)
        assert problems == []

        # a link to a series that does not exist: the page says so
        page.goto(f"{demo.url}/ui/explore?series=123&range=3600")
        page.wait_for_selector("#error:not([hidden])", timeout=WAIT_MS)
        assert "series 123" in page.inner_text("#error") and "404" in page.inner_text("#error")
        assert page.is_visible("#empty")
        # the browser logs the 404 answer itself; nothing else went wrong
        assert all("404" in p and "/v1/series/123" in p for p in problems), problems
    assert (tmp_path / "explorer.png").stat().st_size > 10_000


def test_explorer_link_dark_theme_at_phone_width(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    demo = server_factory(command="demo").start()
    items: list[dict[str, Any]] = []
    with demo.client() as client:
        deadline = time.monotonic() + WAIT_MS / 1000
        while len(items) < 3 and time.monotonic() < deadline:  # the board's first post
            time.sleep(0.2)
            answer = client.get("/v1/series", params={"device": "esp32-02", "limit": 100})
            items = answer.json()["items"]
        temperature = next(s["id"] for s in items if s["metric"] == "temperature")
        humidity = next(s["id"] for s in items if s["metric"] == "humidity")
        battery = next(s["id"] for s in items if s["metric"] == "battery")
    with open_browser() as browser:
        page, problems = new_page(browser, viewport=PHONE)
        link = f"/ui/explore?series={temperature},{humidity},{battery}&range=900"
        sign_in(page, demo.url, ADMIN_KEY, "/ui/explore")
        page.goto(demo.url + link)
        wait_drawn(page, series=2)
        # the link's third unit is refused with a reason; the two others are drawn
        assert "battery" in page.inner_text("#notice") and "V" in page.inner_text("#notice")
        assert page.get_attribute('#presets button[data-range="900"]', "aria-pressed") == "true"
        light = page.evaluate(f"{LAYOUT}.font.color")
        page.click("#theme")
        page.wait_for_function(
            "c => document.querySelector('#plot')._fullLayout.font.color !== c", arg=light
        )
        assert page.evaluate("document.documentElement.dataset.theme") == "dark"
        wait_drawn(page, series=2)
        # a custom range (UTC) from the inputs
        page.click('#presets button[data-range="custom"]')
        page.fill("#from", "2026-01-01T10:00:00")
        page.fill("#to", "2026-01-01T11:00:00")
        page.click("#apply")
        page.wait_for_function(
            "document.querySelector('#plot').dataset.points === '0'", timeout=WAIT_MS
        )
        query = parse_qs(urlparse(page.url).query)
        assert query["from"] == ["2026-01-01T10:00:00.000Z"]
        assert query["to"] == ["2026-01-01T11:00:00.000Z"]
        assert "no data in this range" in (page.text_content(f"{PLOT} .annotation") or "")
        page.click('#presets button[data-range="900"]')
        wait_drawn(page, series=2)
        # nothing sticks out sideways at 390 px
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        page.screenshot(path=tmp_path / "explorer-dark-phone.png", full_page=True)
        helpers = page.evaluate(HELPERS)
    assert problems == []
    assert helpers["label"] == "sim-sir · infected {run=r,1}"
    assert helpers["csv"] == [
        't,esp32-01/temperature (°C),"sim-sir/infected{run=r,1} (people)"',
        "2026-12-06T10:00:00Z,20.5,",
        "2026-12-06T10:01:00Z,,7",
    ]
    assert helpers["selections"] == [
        {"device": "esp32-01", "metric": "temperature,humidity"},
        {"metric": "demo.boards", "tag.app": "demo"},
    ]
    assert helpers["query"] == "?series=1,-2&range=900&fn=p95"
    assert helpers["read"] == {"ids": ["1", "-2"], "range": 900, "fn": "p95"}
    custom = "?from=2026-12-06T10:00:00.000Z&to=2026-12-06T11:00:00.000Z&fn=mean"
    assert helpers["custom"] == custom
    assert "two units" in helpers["third"] and helpers["same"] == ""
    assert helpers["stamp"] == "20261206T100000Z"
    assert helpers["zoomed"] == "2026-12-06T10:00:05.500Z"
    assert problems == []
    assert (tmp_path / "explorer-dark-phone.png").stat().st_size > 10_000
