"""The one-series read path keeps catalogs between requests (rollup watermarks, cold
files, principals); every change shows in the very next request over HTTP."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from conftest import new_key
from stats_service.jobs.compaction import CompactionMetrics, Compactor
from stats_service.jobs.retention import apply_retention
from stats_service.services import Services

NOW = datetime(2024, 5, 20)
DAYS = (date(2024, 5, 1), date(2024, 5, 2), date(2024, 5, 18))  # two go cold, one stays hot
SPAN = {"from": "2024-04-30T00:00:00Z", "to": "2024-05-20T00:00:00Z"}


def _post(client: TestClient, headers: dict[str, str], device: str, days: tuple[date, ...]) -> None:
    points = [
        {
            "ts": (datetime(d.year, d.month, d.day) + timedelta(seconds=s)).isoformat() + "Z",
            "values": {"temp": float((s * 7) % 101) + 0.25},
        }
        for d in days
        for s in range(0, 86_400, 900)
    ]
    response = client.post("/v1/ingest", json={"device": device, "points": points}, headers=headers)
    assert response.status_code == 202, response.text


def _reads(client: TestClient, headers: dict[str, str]) -> dict[str, Any]:
    agg = client.get(
        "/v1/aggregate",
        params={**SPAN, "metric": "temp", "bucket": "1d", "fn": "max,count"},
        headers=headers,
    )
    pts = client.get(
        "/v1/points", params={**SPAN, "metric": "temp", "where": "value>90"}, headers=headers
    )
    assert agg.status_code == 200 and pts.status_code == 200, (agg.text, pts.text)
    one: dict[str, Any] = {}
    for group in agg.json()["groups"]:
        answer = client.get(
            f"/v1/series/{group['series_id']}/aggregate",
            params={**SPAN, "bucket": "1d", "fn": "max,count"},
            headers=headers,
        )
        assert answer.status_code == 200, answer.text
        one[group["device"]] = {k: answer.json()[k] for k in ("t", "max", "count")}
    groups = {g["device"]: {k: g[k] for k in ("t", "max", "count")} for g in agg.json()["groups"]}
    assert one == groups  # the one-series form answers what the selection form answers
    return {"aggregate": groups, "points": pts.json()["series"]}


def _counts(body: dict[str, Any]) -> dict[str, int]:
    return {device: sum(g["count"]) for device, g in body["aggregate"].items()}


def test_moves_to_the_cold_tier_and_retention_show_in_the_next_read(
    client: TestClient, services: Services, admin: dict[str, str]
) -> None:
    for device in ("a", "b"):
        _post(client, admin, device, DAYS)
    before = _reads(client, admin)  # the cold catalog (empty) is now kept
    assert _counts(before) == {"a": 3 * 96, "b": 3 * 96}
    compactor = Compactor(
        services.store,
        CompactionMetrics(CollectorRegistry()),
        timedelta(hours=1),
        services.settings.cold_path,
        cold_after_days=7,
    )
    compactor.run(NOW)
    with services.store.reader() as cur:  # the hot rows of the two old days are gone now
        assert cur.execute("SELECT count(*) FROM points").fetchall() == [(2 * 96,)]
        assert len(cur.execute("SELECT path FROM cold_files").fetchall()) >= 2
    assert _reads(client, admin) == before
    services.store.update_tenant("default", retention_days=18)  # cutoff 2024-05-02 00:00
    apply_retention(services.store, services.metrics, NOW, 24.0)  # deletes a cold file
    after = _reads(client, admin)
    assert _counts(after) == {"a": 2 * 96, "b": 2 * 96}
    assert after["aggregate"]["a"]["t"] == before["aggregate"]["a"]["t"][1:]


def test_a_new_series_is_in_the_next_selection(client: TestClient, admin: dict[str, str]) -> None:
    _post(client, admin, "a", DAYS[2:])
    assert set(_reads(client, admin)["aggregate"]) == {"a"}
    _post(client, admin, "b", DAYS[2:])
    assert set(_reads(client, admin)["aggregate"]) == {"a", "b"}


def test_a_revoked_read_key_fails_on_the_next_read(
    client: TestClient, admin: dict[str, str]
) -> None:
    _post(client, admin, "a", DAYS[2:])
    key = new_key(client, "read")
    assert _counts(_reads(client, key)) == {"a": 96}  # the key's principal is now kept
    (record,) = [
        k for k in client.get("/v1/admin/keys", headers=admin).json() if k["role"] == "read"
    ]
    assert client.delete(f"/v1/admin/keys/{record['id']}", headers=admin).status_code == 200
    for path in ("/v1/aggregate", "/v1/points"):
        refused = client.get(path, params={**SPAN, "metric": "temp"}, headers=key)
        assert refused.status_code == 401
        assert "revoked" in refused.json()["detail"]
