"""Forecast bands on the Explorer chart, in a real headless browser against a real
`stats-service demo`: the Forecast toggle asks GET /v1/series/{id}/forecast in the
chart's bucket for a fifth of the range, and draws the point forecast dashed with its
80 % and 95 % bands after the last point; the theme and a second series redraw the chart
(no forecast for two series). No console errors."""

from __future__ import annotations

import time
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

TRACES = """() => (document.querySelector('#plot').data || []).map((t) => ({
    kind: t.meta && t.meta.forecast || null, level: t.meta && t.meta.level || null,
    fill: t.fill || null, dash: t.line && t.line.dash || null, x: t.x, y: t.y,
    legend: t.showlegend !== false,
}))"""


def traces(page: Page) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = page.evaluate(TRACES)
    return found


def wait_forecast(page: Page) -> None:
    page.wait_for_function(
        "() => (document.querySelector('#plot').dataset.forecast || '') !== ''", timeout=WAIT_MS
    )


def test_forecast_bands_on_the_explorer_chart(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    demo = server_factory(command="demo").start()
    items: list[dict[str, Any]] = []
    with demo.client() as client:
        deadline = time.monotonic() + WAIT_MS / 1000
        while len(items) < 3 and time.monotonic() < deadline:  # the board's first post
            time.sleep(0.2)
            answer = client.get("/v1/series", params={"device": "esp32-01", "limit": 100})
            items = answer.json()["items"]
    temperature = next(s["id"] for s in items if s["metric"] == "temperature")
    humidity = next(s["id"] for s in items if s["metric"] == "humidity")
    asked: list[str] = []

    def on_request(request: Request) -> None:
        if "/forecast?" in request.url:
            asked.append(request.url)

    with open_browser() as browser:
        page, problems = new_page(browser)
        page.on("request", on_request)
        sign_in(page, demo.url, ADMIN_KEY, "/ui/explore")
        page.goto(f"{demo.url}/ui/explore?series={temperature}&range=86400")
        page.wait_for_function(
            "Number(document.querySelector('#plot').dataset.points || 0) > 0", timeout=WAIT_MS
        )
        assert not page.is_disabled("#forecast") and not page.is_checked("#forecast")
        assert not any(t["kind"] for t in traces(page)) and asked == []

        page.check("#forecast")
        wait_forecast(page)
        assert parse_qs(urlparse(page.url).query)["forecast"] == ["1"]
        drawn = traces(page)
        bands = [t for t in drawn if t["kind"] == "band"]
        lows = [t for t in drawn if t["kind"] == "lo"]
        mean = [t for t in drawn if t["kind"] == "mean"]
        assert sorted(t["level"] for t in bands) == ["80", "95"]
        assert all(t["fill"] == "tonexty" for t in bands) and len(lows) == 2
        assert len(mean) == 1 and mean[0]["dash"] == "dash"
        # after the last point: the forecast starts where the line ends
        line = next(t for t in drawn if t["kind"] is None and t["legend"])
        points = [x for x, y in zip(line["x"], line["y"], strict=True) if y is not None]
        assert mean[0]["x"][0] == points[-1] and mean[0]["x"][1] > points[-1]
        # 95 % band around the 80 % band around the forecast
        b95 = next(t for t in bands if t["level"] == "95")
        b80 = next(t for t in bands if t["level"] == "80")
        lo95 = next(t for t in lows if t["level"] == "95")
        for i in range(1, len(mean[0]["y"])):
            assert lo95["y"][i] <= mean[0]["y"][i] <= b80["y"][i] <= b95["y"][i]
        # the x axis reaches the end of the forecast
        end = page.evaluate("document.querySelector('#plot')._fullLayout.xaxis.range[1]")
        assert str(end).replace(" ", "T") >= mean[0]["x"][-1].replace("Z", "")[:19]
        info = page.inner_text("#forecast-info")
        assert info.startswith("Forecast: ") and "MASE" in info, info
        # asked in the chart's bucket, a fifth of the range ahead
        params = {k: v[0] for k, v in parse_qs(urlparse(asked[-1]).query).items()}
        assert params["bucket"] == page.get_attribute(PLOT, "data-bucket")
        assert params["levels"] == "80,95"
        assert len(mean[0]["x"]) - 1 == int(params["horizon"]) > 0
        page.screenshot(path=tmp_path / "forecast.png", full_page=True)

        # the dark theme redraws the chart with the forecast
        light = page.evaluate("document.querySelector('#plot')._fullLayout.font.color")
        page.click("#theme")
        page.wait_for_function(
            "c => document.querySelector('#plot')._fullLayout.font.color !== c", arg=light
        )
        wait_forecast(page)
        page.wait_for_function(
            "() => (document.querySelector('#plot').data || []).some((t) => t.meta?.forecast)",
            timeout=WAIT_MS,
        )
        page.set_viewport_size(PHONE)
        page.wait_for_timeout(600)  # the resize observer settles and may redraw
        wait_forecast(page)
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        page.screenshot(path=tmp_path / "forecast-dark-phone.png", full_page=True)

        # two series: no forecast, the toggle says why
        page.goto(f"{demo.url}/ui/explore?series={temperature},{humidity}&range=86400&forecast=1")
        page.wait_for_function(
            "Number(document.querySelector('#plot').dataset.points || 0) > 0", timeout=WAIT_MS
        )
        assert page.is_disabled("#forecast")
        assert "single series" in (page.get_attribute("label.forecast-toggle", "title") or "")
        assert not any(t["kind"] for t in traces(page))
        assert page.is_hidden("#forecast-info")
    assert problems == []
    assert (tmp_path / "forecast.png").stat().st_size > 10_000
