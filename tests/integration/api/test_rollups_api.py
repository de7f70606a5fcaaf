"""Rollup policies over HTTP: GET/PUT /v1/admin/tenants/{name}/rollups, clear 400s, the
job run by the real scheduler, its counters in /metrics and `tiers` in aggregates."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import ADMIN_KEY, make_settings, new_key, new_tenant
from stats_service.app import create_app

ADMIN = {"X-API-Key": ADMIN_KEY}
URL = "/v1/admin/tenants/default/rollups"


def test_default_policy_comes_from_settings(client: TestClient) -> None:
    body = client.get(URL, headers=ADMIN).json()
    assert body == {
        "source": "settings",
        "tiers": [
            {"resolution": "raw", "keep": "30d"},
            {"resolution": "1m", "keep": "90d"},
            {"resolution": "1h", "keep": "forever"},
        ],
        "overrides": [],
    }


def test_put_then_get_round_trips_with_overrides(client: TestClient) -> None:
    policy = {
        "tiers": [{"resolution": "raw", "keep": "2d"}, {"resolution": "5m", "keep": "30d"}],
        "overrides": [
            {"metric": "cpu_*", "tiers": [{"resolution": "raw", "keep": "forever"}]},
            {"tags": {"rack": "87"}, "tiers": [{"resolution": "raw"}, {"resolution": "1h"}]},
        ],
    }
    put = client.put(URL, json=policy, headers=ADMIN)
    assert put.status_code == 200, put.text
    got = client.get(URL, headers=ADMIN).json()
    assert got["source"] == "tenant"
    assert got["tiers"] == policy["tiers"]
    assert got["overrides"][1] == {
        "metric": None,
        "tags": {"rack": "87"},
        "tiers": [
            {"resolution": "raw", "keep": "forever"},
            {"resolution": "1h", "keep": "forever"},
        ],
    }


@pytest.mark.parametrize(
    ("tiers", "loc", "words"),
    [
        ([{"resolution": "1m", "keep": "1d"}], "body.tiers[0].resolution", "first tier is `raw`"),
        ([{"resolution": "raw"}, {"resolution": "7x"}], "body.tiers[1].resolution", "duration"),
        (
            [{"resolution": "raw"}, {"resolution": "1h"}, {"resolution": "90m"}],
            "body.tiers[2].resolution",
            "whole multiple of 1h",
        ),
        (
            [{"resolution": "raw"}, {"resolution": "1m"}, {"resolution": "150s"}],
            "body.tiers[2].resolution",
            "whole multiple of 1m",
        ),
        (
            [{"resolution": "raw"}, {"resolution": "1h", "keep": "30m"}],
            "body.tiers[1].keep",
            "shorter",
        ),
        ([], "body.tiers", "non-empty"),
    ],
)
def test_bad_policies_get_a_400_naming_the_field(
    client: TestClient, tiers: list[dict[str, str]], loc: str, words: str
) -> None:
    answer = client.put(URL, json={"tiers": tiers}, headers=ADMIN)
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    errors = answer.json()["errors"]
    assert any(e["loc"] == loc and words in e["msg"] for e in errors), errors
    assert client.get(URL, headers=ADMIN).json()["source"] == "settings"  # nothing saved


def test_override_without_selector_and_unknown_tenant(client: TestClient) -> None:
    bad = {"tiers": [{"resolution": "raw"}], "overrides": [{"tiers": [{"resolution": "raw"}]}]}
    answer = client.put(URL, json=bad, headers=ADMIN)
    assert answer.status_code == 400
    assert "give `metric` or `tags`" in answer.text
    assert client.get("/v1/admin/tenants/nope/rollups", headers=ADMIN).status_code == 404


def test_tenant_admin_manages_its_own_policy_only(client: TestClient) -> None:
    new_tenant(client, "acme")
    acme = new_key(client, "admin", "acme")
    body = {"tiers": [{"resolution": "raw", "keep": "1d"}, {"resolution": "1m"}]}
    assert client.put("/v1/admin/tenants/acme/rollups", json=body, headers=acme).status_code == 200
    assert client.put(URL, json=body, headers=acme).status_code == 403
    assert client.get(URL, headers=ADMIN).json()["source"] == "settings"
    reader = new_key(client, "read", "acme")
    assert client.get("/v1/admin/tenants/acme/rollups", headers=reader).status_code == 403


def _metric(text: str, name: str, tier: str) -> float:
    prefix = f'{name}{{tier="{tier}"}} '
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    return 0.0


def test_scheduled_job_rolls_up_counts_and_answers_aggregates(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        rollup_interval_s=0.2,
        rollup_lag_s=0,
        rollup_policy="raw 1h -> 1m forever -> 1h forever",
    )
    now = int(time.time())
    start = now - 5 * 3600
    points = [{"ts": start + 10 * i, "values": {"load": (i % 40) / 4}} for i in range(1440)]
    with TestClient(create_app(settings)) as client:
        answer = client.post("/v1/ingest", json={"device": "h1", "points": points}, headers=ADMIN)
        assert answer.status_code == 202, answer.text
        series = client.get("/v1/series", params={"metric": "load"}, headers=ADMIN).json()
        sid = series["items"][0]["id"]
        params: dict[str, Any] = {
            "from": start - start % 3600,
            "to": now - now % 3600,
            "bucket": "1h",
            "fn": "mean,min,max,sum,count,first,last",
        }
        url = f"/v1/series/{sid}/aggregate"
        deadline = time.monotonic() + 20
        text = ""
        while time.monotonic() < deadline:
            text = client.get("/metrics", headers=ADMIN).text
            if _metric(text, "stats_rollup_deleted_rows_total", "raw") > 0:
                break
            time.sleep(0.05)
        # 4 h of points touch 240 or 241 minute buckets (as `start` falls); the newest
        # bucket holds the series' newest point and is not rolled up yet
        assert _metric(text, "stats_rollup_rows_total", "1m") >= 239
        assert _metric(text, "stats_rollup_rows_total", "1h") >= 4
        assert _metric(text, "stats_rollup_deleted_rows_total", "raw") > 0
        tiered = client.get(url, params=params, headers=ADMIN).json()
        assert tiered["tiers"][0] == "1h"
        hours: dict[int, list[tuple[int, float]]] = {}
        for p in points:
            hours.setdefault(p["ts"] // 3600, []).append((p["ts"], p["values"]["load"]))
        rows = [sorted(hours[h]) for h in sorted(hours)]
        assert tiered["count"] == [len(r) for r in rows]
        assert tiered["sum"] == [sum(v for _, v in r) for r in rows]
        assert tiered["mean"] == [sum(v for _, v in r) / len(r) for r in rows]
        assert tiered["min"] == [min(v for _, v in r) for r in rows]
        assert tiered["max"] == [max(v for _, v in r) for r in rows]
        assert tiered["first"] == [r[0][1] for r in rows]
        assert tiered["last"] == [r[-1][1] for r in rows]
        gone = client.get(url, params={**params, "fn": "p95"}, headers=ADMIN)
        assert gone.status_code == 400
        assert "need(s) raw points" in gone.json()["detail"]
