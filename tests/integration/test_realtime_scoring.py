"""Real-time anomaly scoring: once a series has a model, new points are scored as they
are committed, and a planted spike is in `GET /v1/anomalies` (and on the charts as an
anomaly annotation) within seconds, without any scoring request; off by the setting."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from conftest import ADMIN_KEY, make_settings
from stats_service.app import create_app
from stats_service.services import Services

H = {"X-API-Key": ADMIN_KEY}


def ingest(client: TestClient, points: list[tuple[int, float]]) -> None:
    body = {"device": "d1", "points": [{"ts": t, "values": {"temp": v}} for t, v in points]}
    answer = client.post("/v1/ingest?precision=ms", json=body, headers=H)
    assert answer.status_code == 202, answer.text


def train_on_history(client: TestClient, services: Services) -> tuple[str, int]:
    """Two hours of history ending a few seconds ago, a model trained on all of it and
    loaded by the real-time scorer; (series, now in ms)."""
    now_ms = int(time.time() * 1000)
    start = now_ms - 7200_000
    ingest(client, [(start + 10_000 * i, 20 + math.sin(i / 7)) for i in range(719)])
    sid = client.get("/v1/series", params={"device": "d1"}, headers=H).json()["items"][0]["id"]
    answer = client.post(
        "/v1/anomalies/train",
        json={"series": [sid], "from": str(start), "to": str(now_ms), "window": "60s",
              "detector": "robust_z"},
        headers=H,
    )  # fmt: skip
    assert answer.status_code == 202, answer.text
    for _ in range(200):
        if client.get(f"/tasks/{answer.json()['task_id']}", headers=H).json()["state"] == "SUCCESS":
            break
        time.sleep(0.05)
    scorer = services.scorer
    assert scorer is not None
    deadline = time.monotonic() + 10
    while not scorer.active and time.monotonic() < deadline:
        time.sleep(0.05)  # the scorer reads the model list every 2 s
    assert scorer.active
    return sid, now_ms


def high_scores(client: TestClient, sid: str, since_ms: int) -> list[dict[str, Any]]:
    answer = client.get(
        "/v1/anomalies",
        params={"series": sid, "from": str(since_ms - 120_000), "min_score": "0.9"},
        headers=H,
    )
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


def test_a_planted_spike_is_visible_within_seconds(tmp_path: Path) -> None:
    with TestClient(create_app(make_settings(tmp_path))) as client:
        services: Services = client.app.state.services  # type: ignore[attr-defined]
        sid, now_ms = train_on_history(client, services)
        time.sleep(0.01)
        base = now_ms + 1000
        ingest(client, [(base + 100 * i, 20 + math.sin(i / 7)) for i in range(5)])
        assert services.scorer is not None and services.scorer.wait_idle()
        assert high_scores(client, sid, now_ms) == []  # ordinary points: no anomaly

        sent = time.monotonic()
        spike_ms = base + 1000
        ingest(client, [(spike_ms, 95.0)])
        found: list[dict[str, Any]] = []
        while not found and time.monotonic() - sent < 5:
            found = high_scores(client, sid, now_ms)
            time.sleep(0.05)
        took = time.monotonic() - sent
        assert found, "the spike was not scored within 5 s"
        assert took < 5
        (row,) = found
        assert row["detector"] == "robust_z" and row["explanation"]["realtime"] is True
        assert row["explanation"]["value"] == 95.0 and row["explanation"]["z"] > 10
        window_start_ms = spike_ms // 60_000 * 60_000
        assert row["window_start"] == time.strftime(
            "%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(window_start_ms / 1000)
        )
        marks: list[dict[str, Any]] = []
        deadline = time.monotonic() + 5
        while not marks and time.monotonic() < deadline:
            marks = client.get(
                "/v1/annotations",
                params={"series": sid, "from": str(now_ms - 120_000), "to": "now+1h"},
                headers=H,
            ).json()["items"]
            time.sleep(0.05)
        assert [m["kind"] for m in marks] == ["anomaly"]
        assert marks[0]["start"] == row["window_start"]
        usage = client.get("/v1/usage", headers=H).json()["days"][-1]
        assert usage["windows_scored"] >= 1


def test_off_by_the_setting(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, realtime_scoring=False)
    with TestClient(create_app(settings)) as client:
        services: Services = client.app.state.services  # type: ignore[attr-defined]
        assert services.scorer is None
        now_ms = int(time.time() * 1000)
        ingest(client, [(now_ms - 10_000 * i, 20.0) for i in range(50)])
        sid = client.get("/v1/series", params={"device": "d1"}, headers=H).json()["items"][0]["id"]
        answer = client.post(
            "/v1/anomalies/train", json={"series": [sid], "from": "now-1d"}, headers=H
        )
        assert answer.status_code == 202
        time.sleep(0.5)
        ingest(client, [(now_ms + 1000, 500.0)])
        time.sleep(1.0)
        assert high_scores(client, sid, now_ms) == []
