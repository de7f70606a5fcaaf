"""The dashboard's Runs pages in a real headless browser against a real
`stats-service demo`: the demo's SIR run in the list, its page (figures, a timeline of
every compartment, a CSV export), a second run posted over the API that refreshes while
it runs, the two compared, an unknown run; no console errors; screenshots at desktop and
phone width and in the dark theme."""

from __future__ import annotations

import csv
import io
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page

from .browser import PHONE, WAIT_MS, new_page, open_browser, sign_in
from .conftest import ServerFactory
from .harness import ADMIN_KEY, ServerProcess

pytestmark = [pytest.mark.e2e]
SCHEMA = "epidemic-run/v1"
N = 10_000


def demo_run(demo: ServerProcess) -> dict[str, Any]:
    """The demo's SIR run, once it has posted it (right after start)."""
    deadline = time.monotonic() + 30
    with demo.client() as client:
        while time.monotonic() < deadline:
            answer = client.get("/v1/runs", params={"status": "finished"})
            answer.raise_for_status()
            items: list[dict[str, Any]] = answer.json()["items"]
            if items:
                return items[0]
            time.sleep(0.25)
    pytest.fail(f"the demo posted no run: {demo.stdout()[-2000:]}")


def seir_steps(days: int, per_day: int) -> list[dict[str, float]]:
    """A deterministic SEIR run (Euler), `per_day` steps per day."""
    beta, sigma, gamma, dt = 0.5, 0.2, 0.1, 1 / per_day
    s, e, i, r = N - 20.0, 0.0, 20.0, 0.0
    steps = []
    for k in range(days * per_day + 1):
        steps.append(
            {
                "t": round(k * dt, 6),
                "susceptible": round(s, 2),
                "exposed": round(e, 2),
                "infected": round(i, 2),
                "recovered": round(r, 2),
            }
        )
        infect, onset, recover = beta * s * i / N * dt, sigma * e * dt, gamma * i * dt
        s, e, i, r = s - infect, e + infect - onset, i + onset - recover, r + recover
    return steps


def start_seir(client: httpx.Client, run_id: str, days: int) -> None:
    start = {
        "schema": SCHEMA,
        "id": run_id,
        "model": "seir",
        "name": "e2e: SEIR with a latent period",
        "time_origin": round(time.time() - days * 60, 3),
        "tick_seconds": 60,
        "parameters": {"population": N, "beta": 0.5, "sigma": 0.2, "gamma": 0.1, "seed": 7},
    }
    assert client.post("/v1/runs", json=start).status_code == 201


def post_steps(client: httpx.Client, run_id: str, steps: list[dict[str, float]]) -> None:
    answer = client.post(f"/v1/runs/{run_id}/steps", json={"schema": SCHEMA, "steps": steps})
    assert answer.status_code == 202, answer.text


def points(page: Page, selector: str) -> int:
    return int(page.get_attribute(selector, "data-points") or 0)


def not_found(demo: ServerProcess, path: str) -> str:
    """What Chromium logs for an answer 404 of the page's own request (every >= 400)."""
    return (
        "console: Failed to load resource: the server responded with a status of "
        f"404 (Not Found) ({demo.url}{path})"
    )


def wait_points(page: Page, selector: str, count: int) -> None:
    page.wait_for_function(
        "([s, n]) => document.querySelector(s)?.dataset.points === String(n)",
        arg=[selector, count],
        timeout=WAIT_MS,
    )


def test_runs_list_run_page_export_and_unknown_run(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    demo = server_factory(command="demo").start()
    run = demo_run(demo)
    run_id = run["id"]
    with open_browser() as browser:
        page, problems = new_page(browser)
        sign_in(page, demo.url, ADMIN_KEY, "/ui/runs")
        row = f'#runs tr[data-run="{run_id}"]'
        page.wait_for_selector(row, timeout=WAIT_MS)
        text = page.inner_text(row)
        assert "SIR" in text and "finished" in text and "161" in text and "β 0.3" in text
        page.select_option("#status", "running")
        page.wait_for_selector("#nomatch:not([hidden])", timeout=WAIT_MS)
        page.select_option("#status", "finished")
        page.wait_for_selector(row, timeout=WAIT_MS)
        page.fill("#search", "no-such-words")
        assert page.locator("#runs tbody tr").count() == 0
        page.fill("#search", "sir-demo")
        assert page.locator("#runs tbody tr").count() == 1
        page.screenshot(path=tmp_path / "runs.png", full_page=True)

        page.click(f'{row} a[href="/ui/runs/{run_id}"]')
        page.wait_for_url(re.compile(re.escape(f"/ui/runs/{run_id}") + "$"))
        plot = "#timeline"
        page.wait_for_selector(f"{plot}[data-points]", timeout=WAIT_MS)
        assert points(page, plot) == 161  # 161 daily steps: fewer than the chart's pixels
        width = page.evaluate("document.querySelector('#timeline').clientWidth")
        assert points(page, plot) <= width
        assert page.locator(f"{plot} .scatterlayer .trace").count() == 3
        legend = page.text_content(f"{plot} .legend") or ""
        assert all(name in legend for name in ("susceptible", "infected", "recovered"))
        assert "people" in (page.text_content(f"{plot} .g-ytitle") or "")
        assert "t (simulated time)" in (page.text_content(f"{plot} .g-xtitle") or "")
        figures = page.inner_text("#figures")
        for label in ("Peak infected", "Attack rate", "R0 (from growth)", "Duration", "Final"):
            assert label in figures, figures
        with demo.client() as client:
            summary = client.get(f"/v1/runs/{run_id}/summary").json()["epidemic"]
        attack = f"{summary['attack_rate'] * 100:.1f} %"
        assert attack in page.inner_text('[data-figure="attack_rate"]')
        assert "at t = " in page.inner_text('[data-figure="peak"]')
        assert "beta (β)" in page.inner_text("#params") and "0.3" in page.inner_text("#params")
        assert page.get_attribute("#status [data-status]", "data-status") == "finished"
        assert page.is_hidden("#live")
        page.hover(f"{plot} .nsewdrag")  # hover labels, no errors
        page.screenshot(path=tmp_path / "run.png", full_page=True)

        with page.expect_download() as download_info:
            page.click("#export-csv")
        download = download_info.value
        assert download.suggested_filename == f"run-{run_id}.csv"
        saved = tmp_path / download.suggested_filename
        download.save_as(saved)
        table = list(csv.reader(io.StringIO(saved.read_text())))
        assert len(table) == 1 + 161, table[:3]  # wide: one row per step
        assert any("infected" in column for column in table[0]), table[0]

        page.goto(f"{demo.url}/ui/runs/no-such-run")
        page.wait_for_selector("#missing:not([hidden])", timeout=WAIT_MS)
        assert "No run named “no-such-run”" in page.inner_text("#missing")
        assert page.is_hidden("#content") and page.is_hidden("#error")
        page.screenshot(path=tmp_path / "missing.png", full_page=True)

        phone, phone_problems = new_page(browser, viewport=PHONE)
        sign_in(phone, demo.url, ADMIN_KEY, f"/ui/runs/{run_id}")
        phone.wait_for_selector("#timeline[data-points]", timeout=WAIT_MS)
        width = phone.evaluate("document.querySelector('#timeline').clientWidth")
        assert 0 < points(phone, "#timeline") <= width  # bucketed to the phone's width
        assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        phone.screenshot(path=tmp_path / "run-phone.png", full_page=True)
        phone.goto(f"{demo.url}/ui/runs")
        phone.wait_for_selector(f'#runs tr[data-run="{run_id}"]', timeout=WAIT_MS)
        phone.screenshot(path=tmp_path / "runs-phone.png", full_page=True)
    # exactly the 404 provoked on purpose, nothing else
    assert problems == [not_found(demo, "/v1/runs/no-such-run")]
    assert phone_problems == []


def test_a_running_run_refreshes_and_two_runs_compare(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    demo = server_factory(command="demo").start()
    sir_id = demo_run(demo)["id"]
    seir_id = "seir-e2e-1"
    steps = seir_steps(120, 10)  # 1201 steps: more than the chart has pixels
    timelines: list[str] = []
    with demo.client() as client, open_browser() as browser:
        start_seir(client, seir_id, 120)
        post_steps(client, seir_id, steps[:600])
        page, problems = new_page(browser)
        page.on("request", lambda r: timelines.append(r.url) if "/timeline" in r.url else None)
        sign_in(page, demo.url, ADMIN_KEY, f"/ui/runs/{seir_id}")
        wait_points(page, "#timeline", 600)  # every step: fewer than the pixels
        assert page.get_attribute("#timeline", "data-traces") == "4"  # S, E, I, R
        assert page.is_visible("#live")
        assert page.get_attribute("#status [data-status]", "data-status") == "running"
        assert "?bucket=" not in timelines[-1]
        post_steps(client, seir_id, steps[600:])
        # no reload: the page refreshes itself, and now buckets t to the chart's width
        page.wait_for_function(
            "document.querySelector('#timeline').dataset.points !== '600'", timeout=WAIT_MS
        )
        pixels = page.evaluate("document.querySelector('#timeline .nsewdrag').getBBox().width")
        assert 120 / 0.5 < points(page, "#timeline") <= pixels
        assert "?bucket=" in timelines[-1]
        assert "mean per" in page.inner_text("#bucket")
        finish = {"schema": SCHEMA, "status": "finished", "message": "reached day 120"}
        assert client.post(f"/v1/runs/{seir_id}/finish", json=finish).status_code == 200
        page.wait_for_selector('#status [data-status="finished"]', timeout=WAIT_MS)
        assert page.is_hidden("#live")
        assert "1,201" in page.inner_text('[data-figure="steps"]')

        page.click("#compare-link")  # the list, this run picked
        page.wait_for_selector(f'#runs tr[data-run="{sir_id}"]', timeout=WAIT_MS)
        assert page.is_checked(f'input[data-run="{seir_id}"]')
        assert page.is_disabled("#compare")
        page.check(f'input[data-run="{sir_id}"]')
        page.click("#compare")
        page.wait_for_url(re.compile(r"/ui/runs/compare\?ids="))
        page.wait_for_selector("#plot[data-points]", timeout=WAIT_MS)
        pixels = page.evaluate("document.querySelector('#plot .nsewdrag').getBBox().width")
        assert 160 / 0.5 < points(page, "#plot") <= pixels  # t 0-160, bucketed to the width
        assert page.locator("#plot .scatterlayer .trace").count() == 2
        assert page.input_value("#field") == "infected"
        options = page.locator("#field option").all_inner_texts()
        assert options == ["susceptible", "infected", "recovered"]  # common to both runs
        legend = page.text_content("#plot .legend") or ""
        assert seir_id in legend and sir_id in legend
        summary = page.inner_text("#summary")
        assert "Peak infected" in summary and "Attack rate" in summary
        assert "sigma (\N{GREEK SMALL LETTER SIGMA})" in summary
        page.select_option("#field", "recovered")
        page.wait_for_function(
            "document.querySelector('#chart-title').textContent.startsWith('recovered')"
        )
        assert "recovered (people)" in (page.text_content("#plot .g-ytitle") or "")
        page.screenshot(path=tmp_path / "compare.png", full_page=True)
        page.click("#theme")
        page.wait_for_function("document.documentElement.dataset.theme === 'dark'")
        page.screenshot(path=tmp_path / "compare-dark.png", full_page=True)

        page.goto(f"{demo.url}/ui/runs/compare?ids={sir_id},nope-1,bad%20id")
        page.wait_for_selector("#problem:not([hidden])", timeout=WAIT_MS)
        assert "No runs named “nope-1”, “bad id”" in page.inner_text("#problem")
        page.goto(f"{demo.url}/ui/runs/compare?ids={sir_id}")
        page.wait_for_selector("#problem:not([hidden])", timeout=WAIT_MS)
        assert "at least 2 runs" in page.inner_text("#problem")
    assert problems == [not_found(demo, "/v1/runs/nope-1")]  # provoked on purpose


def test_no_runs_yet_shows_how_to_post_one(server_factory: ServerFactory, tmp_path: Path) -> None:
    server = server_factory().start()
    with open_browser() as browser:
        page, problems = new_page(browser, viewport=PHONE)
        sign_in(page, server.url, ADMIN_KEY, "/ui/runs")
        page.wait_for_selector("#empty:not([hidden])", timeout=WAIT_MS)
        curl = page.inner_text("#curl")
        assert f"curl -X POST {server.url}/v1/runs " in curl
        assert f"{server.url}/v1/runs/sir-1/steps" in curl and "/v1/runs/sir-1/finish" in curl
        assert page.is_hidden("#runs") and page.is_hidden("#more")
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        page.screenshot(path=tmp_path / "runs-empty-phone.png", full_page=True)
        page.select_option("#status", "failed")
        page.wait_for_selector("#nomatch:not([hidden])", timeout=WAIT_MS)
        assert page.is_hidden("#empty")
        assert "status=failed" in page.url  # the filters are kept in the address

        # 51 runs without steps: a page of 50, then "More"; at most 10 picked
        with server.client() as client:
            for i in range(51):
                start = {"schema": SCHEMA, "id": f"r{i:02d}", "model": "sir", "name": f"run {i}"}
                start["parameters"] = {"population": N, "beta": 0.3, "gamma": 0.1}
                assert client.post("/v1/runs", json=start).status_code == 201
        page.goto(f"{server.url}/ui/runs")
        page.wait_for_selector("#runs tbody tr", timeout=WAIT_MS)
        assert page.locator("#runs tbody tr").count() == 50
        assert page.inner_text("#count") == "50 runs (more to load)"
        page.click("#more")
        page.wait_for_selector('#runs tr[data-run="r00"]', timeout=WAIT_MS)
        assert page.locator("#runs tbody tr").count() == 51 and page.is_hidden("#more")
        for i in range(10):
            page.check(f'input[data-run="r{i:02d}"]')
        assert page.is_disabled('input[data-run="r10"]') and page.is_enabled("#compare")
        assert page.inner_text("#compare") == "Compare 10"

        page.goto(f"{server.url}/ui/runs/r05")  # no steps yet
        page.wait_for_selector("#timeline[data-points]", timeout=WAIT_MS)
        assert points(page, "#timeline") == 0
        assert "no steps yet" in (page.text_content("#timeline .annotation") or "")
        assert page.is_hidden("#export-csv") and page.is_visible("#export-none")
        assert page.is_visible("#live")  # still running: refreshed
        page.screenshot(path=tmp_path / "run-no-steps-phone.png", full_page=True)

        ids = ",".join(f"r{i}" for i in range(11))
        page.goto(f"{server.url}/ui/runs/compare?ids={ids}")
        page.wait_for_selector("#problem:not([hidden])", timeout=WAIT_MS)
        assert "At most 10 runs" in page.inner_text("#problem")
        page.goto(f"{server.url}/ui/runs/compare")
        page.wait_for_selector("#problem:not([hidden])", timeout=WAIT_MS)
        assert "No runs were given" in page.inner_text("#problem")
    assert problems == []
