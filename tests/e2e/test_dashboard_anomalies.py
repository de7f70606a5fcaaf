"""Anomalies on the dashboard's charts against a real `stats-service demo`: a model is
trained on a board's temperature history, a spike is posted, real-time scoring scores
it within seconds and its anomaly band is drawn on the device page's chart; no console
errors."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from .browser import WAIT_MS, new_page, open_browser, sign_in
from .conftest import ServerFactory
from .harness import ADMIN_KEY

pytestmark = [pytest.mark.e2e]
DEVICE = "esp32-01"
CHART = '.plot[data-metric="temperature"]'


def _series(client: httpx.Client) -> str:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        answer = client.get("/v1/series", params={"device": DEVICE, "metric": "temperature"})
        if answer.status_code == 200 and answer.json()["items"]:
            return str(answer.json()["items"][0]["id"])
        time.sleep(0.2)
    raise AssertionError(f"the demo wrote no temperature of {DEVICE} in 20 s")


def _wait(client: httpx.Client, task: dict[str, Any]) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while task["state"] not in ("SUCCESS", "FAILURE") and time.monotonic() < deadline:
        time.sleep(0.1)
        task = client.get(f"/tasks/{task['task_id']}").json()
    assert task["state"] == "SUCCESS", task
    return task


def test_a_scored_spike_is_drawn_on_the_device_chart(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    demo = server_factory(command="demo").start()
    with demo.client() as client:
        series = _series(client)
        answer = client.post(
            "/v1/anomalies/train",
            json={"series": [series], "from": "now-1d", "to": "now", "window": "60s",
                  "detector": "robust_z"},
        )  # fmt: skip
        assert answer.status_code == 202, answer.text
        _wait(client, answer.json())
        time.sleep(2.5)  # the real-time scorer reads the model list every 2 s
        spike = int(time.time() * 1000)
        body = {"device": DEVICE, "points": [{"ts": spike, "values": {"temperature": 95.0}}]}
        assert client.post("/v1/ingest?precision=ms", json=body).status_code == 202
        sent = time.monotonic()
        found: list[dict[str, Any]] = []
        while not found and time.monotonic() - sent < 10:
            found = [
                a
                for a in client.get(
                    "/v1/annotations",
                    params={"series": series, "kind": "anomaly", "from": "now-10m", "to": "now+5m"},
                ).json()["items"]
                if a["meta"]["explanation"].get("value") == 95.0
            ]
            time.sleep(0.1)
        assert found, "no anomaly annotation for the spike within 10 s"
        mark = found[0]
        assert mark["source"] == "detector:robust_z" and mark["end"] is not None

    with open_browser() as browser:
        page, problems = new_page(browser)
        sign_in(page, demo.url, ADMIN_KEY, f"/ui/devices/{DEVICE}")
        page.wait_for_function(
            f"Number(document.querySelector('{CHART}')?.dataset.marks) >= 1", timeout=WAIT_MS
        )
        layout = page.evaluate(
            f"(() => {{ const p = document.querySelector('{CHART}');"
            " return { shapes: p.layout.shapes, annotations: p.layout.annotations }; })()"
        )
        bands = [s for s in layout["shapes"] if s["type"] == "rect"]
        assert (mark["start"], mark["end"]) in [(s["x0"], s["x1"]) for s in bands], bands
        labels = [a for a in layout["annotations"] if a.get("hovertext")]
        assert any("detector:robust_z" in a["hovertext"] for a in labels), labels
        page.screenshot(path=tmp_path / "anomaly-band.png", full_page=True)
        assert problems == []
