"""Scheduled anomaly scoring: the job scores the windows of every series with a model
since its last scored window, each tenant at its own interval (or the setting), and
runs by itself in the app's scheduler."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from conftest import ADMIN_KEY, make_settings, new_key, new_tenant
from stats_service.app import create_app
from stats_service.jobs.anomaly_scoring import score_due, scoring_job
from stats_service.services import Services
from stats_service.storage import models

H = {"X-API-Key": ADMIN_KEY}
STEP_S = 10


def seed(client: TestClient, headers: dict[str, str], n: int = 600) -> tuple[str, int]:
    t0 = (int(time.time()) // 3600 - 3) * 3600
    points = [
        {
            "ts": t0 + STEP_S * i,
            "values": {"temp": 20 + math.sin(i / 7) + (30.0 if i == 500 else 0)},
        }
        for i in range(n)
    ]
    answer = client.post(
        "/v1/ingest?precision=s", json={"device": "d1", "points": points}, headers=headers
    )
    assert answer.status_code == 202, answer.text
    items = client.get("/v1/series", params={"device": "d1"}, headers=headers).json()["items"]
    return items[0]["id"], t0


def trained(client: TestClient, headers: dict[str, str], sid: str, to: int) -> dict[str, Any]:
    answer = client.post(
        "/v1/anomalies/train",
        json={"series": [sid], "to": str(to), "from": str(to - 86400), "window": "60s",
              "detector": "robust_z"},
        headers=headers,
    )  # fmt: skip
    assert answer.status_code == 202, answer.text
    for _ in range(300):
        task = client.get(f"/tasks/{answer.json()['task_id']}", headers=headers).json()
        if task["state"] == "SUCCESS":
            result: dict[str, Any] = task["result"]["models"][0]
            return result
        assert task["state"] != "FAILURE", task
        time.sleep(0.05)
    raise AssertionError("training did not finish")


def test_score_due_per_tenant_interval(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, realtime_scoring=False, scoring_interval_s=3600.0)
    with TestClient(create_app(settings)) as client:
        services: Services = client.app.state.services  # type: ignore[attr-defined]
        sid, t0 = seed(client, H)
        trained(client, H, sid, t0 + 4000)
        new_tenant(client, "other")
        other = new_key(client, "admin", "other")
        other_sid, _ = seed(client, other)
        trained(client, other, other_sid, t0 + 4000)
        other_id = services.auth.tenant("other").id
        models.set_tenant_interval(services.store, other_id, 60.0)
        now_us = int(time.time() * 1e6)

        last_run: dict[int, float] = {}
        first = score_due(services.store, settings, now_us, last_run, 1000.0)
        assert first == {"tenants": 2, "series": 2, "windows": 68, "alarms": 2}
        # nothing new since: the next due run scores no window again
        again = score_due(services.store, settings, now_us, last_run, 1000.0 + 3600)
        assert again["tenants"] == 2 and again["windows"] == 0
        # 120 s later only `other` (60 s interval) is due; the default tenant waits an hour
        later = score_due(services.store, settings, now_us, last_run, 1000.0 + 3600 + 120)
        assert later["tenants"] == 1
        assert last_run[other_id] == 1000.0 + 3600 + 120
        default_id = services.auth.tenant("default").id
        assert last_run[default_id] == 1000.0 + 3600

        found = client.get(
            "/v1/anomalies", params={"series": sid, "from": str(t0), "min_score": "0.9"}, headers=H
        ).json()["items"]
        assert len(found) == 1
        assert client.get("/v1/anomalies", params={"from": str(t0)}, headers=other).json()["items"]
    (job,) = scoring_job(services.store, settings)
    assert job.name == "anomaly_scoring" and job.interval_s == 60.0


def test_the_scheduler_scores_by_itself(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, realtime_scoring=False, scoring_interval_s=0.5)
    with TestClient(create_app(settings)) as client:
        sid, t0 = seed(client, H)
        model = trained(client, H, sid, t0 + 4000)
        assert model["train_to"].startswith(time.strftime("%Y-%m-%dT%H", time.gmtime(t0 + 4000)))
        deadline = time.monotonic() + 20
        found: list[dict[str, Any]] = []
        while time.monotonic() < deadline and len(found) < 34:
            found = client.get(
                "/v1/anomalies", params={"series": sid, "from": str(t0)}, headers=H
            ).json()["items"]
            time.sleep(0.2)
        assert len(found) == 34, found  # the closed windows after the training range
        assert max(r["score"] for r in found) >= 0.9
