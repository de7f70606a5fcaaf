"""Every endpoint, called with another tenant's keys, shows nothing of this tenant.

Tenant `default` (A) and tenant `other` (B) each hold data. Every operation in the
OpenAPI document must have an entry in CASES (a conventions test checks that), which
calls it with B's admin key aimed at A's devices, series, keys and tenant, and asserts
that the answer carries none of A's data and that A's data is unchanged.

WebSocket routes are not OpenAPI operations: `WS /v1/live` has its own isolation test,
tests/e2e/test_live_feed.py::test_tenant_isolation (B's keys, whatever they select,
never receive A's points).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from conftest import ADMIN_KEY, make_settings
from stats_service.app import create_app

A_DEVICE = "a-secret-device"
A_METRIC = "a_secret_metric"
B_DEVICE = "b-device"


@dataclass
class World:
    client: TestClient
    a: dict[str, str]  # admin key of A (default)
    b: dict[str, str]  # admin key of B (other)
    a_series: str
    a_key_id: str
    now: int

    def assert_clean(self, text: str) -> None:
        for secret in (A_DEVICE, A_METRIC, self.a_series, self.a_key_id, ADMIN_KEY):
            assert secret not in text, f"{secret!r} leaked: {text[:500]}"

    def a_points(self) -> int:
        answer = self.client.get(
            f"/v1/series/{self.a_series}/points",
            params={"from": "now-2d", "to": "now+1h", "limit": 100_000},
            headers=self.a,
        )
        assert answer.status_code == 200, answer.text
        return len(answer.json()["t"])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    settings = make_settings(Path(tmp_path_factory.mktemp("isolation")), metrics_public=False)
    with TestClient(create_app(settings)) as client:
        a = {"X-API-Key": ADMIN_KEY}
        assert (
            client.post("/v1/admin/tenants", json={"name": "other"}, headers=a).status_code == 201
        )
        created = client.post(
            "/v1/admin/keys", json={"tenant": "other", "role": "admin"}, headers=a
        )
        b = {"X-API-Key": created.json()["key"]}
        now = int(time.time())
        for device, metric, headers in ((A_DEVICE, A_METRIC, a), (B_DEVICE, "temperature", b)):
            points = [{"ts": now - 60 * i, "values": {metric: float(i)}} for i in range(30)]
            body = {"device": device, "points": points}
            answer = client.post("/v1/ingest?precision=s", json=body, headers=headers)
            assert answer.status_code == 202, answer.text
        series = client.get("/v1/series", params={"device": A_DEVICE}, headers=a).json()["items"]
        a_key_id = client.get("/v1/admin/keys", headers=a).json()[0]["id"]
        yield World(client, a, b, series[0]["id"], a_key_id, now)


Check = Callable[[World], None]


def _get(w: World, url: str, **params: object) -> tuple[int, str]:
    answer = w.client.get(url, params=params, headers=w.b)
    return answer.status_code, answer.text


def devices(w: World) -> None:
    status, text = _get(w, "/v1/devices")
    assert status == 200 and B_DEVICE in text
    w.assert_clean(text)


def device(w: World) -> None:
    assert _get(w, f"/v1/devices/{A_DEVICE}")[0] == 404


def device_metrics(w: World) -> None:
    status, text = _get(w, f"/v1/devices/{A_DEVICE}/metrics")
    assert status == 404
    w.assert_clean(text.replace(A_DEVICE, ""))  # the 404 may name what was asked for


def series_list(w: World) -> None:
    for params in ({}, {"device": A_DEVICE}, {"metric": A_METRIC}):
        status, text = _get(w, "/v1/series", **params)
        assert status == 200
        w.assert_clean(text)


def one_series(w: World) -> None:
    assert _get(w, f"/v1/series/{w.a_series}")[0] == 404


def points(w: World) -> None:
    assert _get(w, f"/v1/series/{w.a_series}/points", **{"from": "now-2d"})[0] == 404


def states(w: World) -> None:
    assert _get(w, f"/v1/series/{w.a_series}/states", **{"from": "now-2d"})[0] == 404


def thingsboard(w: World) -> None:
    made = w.client.post("/v1/admin/keys", json={"role": "ingest", "device": B_DEVICE}, headers=w.b)
    assert made.status_code == 201
    before = w.a_points()
    answer = w.client.post(f"/api/v1/{made.json()['key']}/telemetry", json={A_METRIC: -7.0})
    assert answer.status_code == 200  # B's device token writes B's own device...
    assert w.a_points() == before  # ...never A's
    assert w.client.post("/api/v1/not-a-token/telemetry", json={"x": 1}).status_code == 404


def aggregate(w: World) -> None:
    assert _get(w, f"/v1/series/{w.a_series}/aggregate", **{"from": "now-2d"})[0] == 404


def stats(w: World) -> None:
    assert _get(w, "/v1/stats", series=w.a_series, **{"from": "now-2d"})[0] == 404
    status, text = _get(w, "/v1/stats", device=A_DEVICE, metric=A_METRIC, **{"from": "now-2d"})
    assert status in (200, 404)
    if status == 200:
        assert json.loads(text)["series"] == []


def fleet(w: World) -> None:
    for url in ("/v1/aggregate", "/v1/latest", "/v1/points"):
        for params in ({"device": A_DEVICE}, {"metric": A_METRIC}, {}):
            status, text = _get(w, url, **params, **{"from": "now-2d"})
            assert status in (200, 400, 404), text
            w.assert_clean(text.replace(A_DEVICE, "").replace(A_METRIC, ""))
            if status == 200:
                body = json.loads(text)
                assert not body.get("groups") and not body.get("series")
                assert all(i["device"] == B_DEVICE for i in body.get("items", []))


def export(w: World) -> None:
    assert _get(w, "/v1/export", series=w.a_series)[0] == 404
    status, text = _get(w, "/v1/export", device=A_DEVICE, format="ndjson")
    assert status in (200, 404)
    if status == 200:
        w.assert_clean(text)
    status, text = _get(w, "/v1/export", format="csv")  # everything B may see
    w.assert_clean(text)


def usage(w: World) -> None:
    status, text = _get(w, "/v1/usage")
    assert status == 200
    assert sum(day["points"] for day in json.loads(text)["days"]) == 30  # B's own only


def ingest(w: World) -> None:
    before = w.a_points()
    body = {"device": A_DEVICE, "points": [{"ts": w.now - 60, "values": {A_METRIC: -1.0}}]}
    answer = w.client.post("/v1/ingest?precision=s", json=body, headers=w.b)
    assert answer.status_code == 202  # lands in B's own namespace...
    assert w.a_points() == before  # ...and A's series is untouched
    first = w.client.get(f"/v1/series/{w.a_series}/points", params={"from": "now-2d"}, headers=w.a)
    assert -1.0 not in first.json()["value"]


def prometheus_write(w: World) -> None:
    import cramjam

    from stats_service.ingest.protocols.prometheus_remote import WriteRequest, encode_label

    before = w.a_points()
    request = WriteRequest()
    series = request.timeseries.add()
    for name, value in (("__name__", A_METRIC), ("device", A_DEVICE)):
        series.labels.append(encode_label(name, value))
    series.samples.add(value=-2.0, timestamp=(w.now - 60) * 1000)
    body = bytes(cramjam.snappy.compress_raw(request.SerializeToString()))
    answer = w.client.post("/api/v1/write", content=body, headers=w.b)
    assert answer.status_code == 204, answer.text  # lands in B's own namespace...
    assert w.a_points() == before  # ...and A's series is untouched


def tenants(w: World) -> None:
    status, text = _get(w, "/v1/admin/tenants")
    assert status == 200 and [t["name"] for t in json.loads(text)] == ["other"]
    assert w.client.post("/v1/admin/tenants", json={"name": "x"}, headers=w.b).status_code == 403


def tenant_patch(w: World) -> None:
    answer = w.client.patch("/v1/admin/tenants/default", json={"retention_days": 1}, headers=w.b)
    assert answer.status_code == 403


def rollups(w: World) -> None:
    """B's admin can neither read nor set A's rollup policy (B reads its own)."""
    assert w.client.get("/v1/admin/tenants/default/rollups", headers=w.b).status_code == 403
    body = {"tiers": [{"resolution": "raw", "keep": "1d"}, {"resolution": "1m"}]}
    put = w.client.put("/v1/admin/tenants/default/rollups", json=body, headers=w.b)
    assert put.status_code == 403
    assert w.client.get("/v1/admin/tenants/default/rollups", headers=w.a).json()["source"] == (
        "settings"
    )
    assert w.client.get("/v1/admin/tenants/other/rollups", headers=w.b).status_code == 200


def keys(w: World) -> None:
    status, text = _get(w, "/v1/admin/keys")
    assert status == 200
    w.assert_clean(text)
    assert {k["tenant"] for k in json.loads(text)} == {"other"}
    made = w.client.post("/v1/admin/keys", json={"tenant": "default", "role": "read"}, headers=w.b)
    assert made.status_code == 403


def key_revoke(w: World) -> None:
    assert w.client.delete(f"/v1/admin/keys/{w.a_key_id}", headers=w.b).status_code == 404
    assert w.client.get("/v1/devices", headers=w.a).status_code == 200  # A's key still works


def replay(w: World) -> None:
    day = time.strftime("%Y-%m-%d", time.gmtime())
    body = {"from": day, "to": day, "tenant": "default"}
    assert w.client.post("/v1/admin/replay", json=body, headers=w.b).status_code == 403
    own = w.client.post("/v1/admin/replay", json={"from": day, "to": day}, headers=w.b)
    assert own.status_code == 200
    w.assert_clean(own.text)


def metrics(w: World) -> None:
    assert _get(w, "/metrics")[0] == 403  # it names every tenant: operators only
    assert w.client.get("/metrics", headers=w.a).status_code == 200


def public(w: World) -> None:
    for url in ("/v1/health", "/v1/ready"):
        status, text = _get(w, url)
        assert status == 200
        w.assert_clean(text)


A_RUN = "a-secret-run"  # B starts a run of the same id: a run of its own
A_ONLY = "a-only-run"  # a run only A has
RUN_START = {
    "schema": "epidemic-run/v1",
    "id": A_RUN,
    "model": "sir",
    "device": A_DEVICE,
    "parameters": {"population": 1000, "beta": 0.3, "gamma": 0.1},
}


def _a_run(w: World) -> None:
    """A's runs with two steps each (idempotent: every runs case calls it first)."""
    steps = [
        {"t": t, "susceptible": 990.0 - t, "infected": 10.0 + t, "recovered": 0.0} for t in (0, 1)
    ]
    for run in (A_RUN, A_ONLY):
        made = w.client.post("/v1/runs", json={**RUN_START, "id": run}, headers=w.a)
        assert made.status_code in (200, 201), made.text
        sent = w.client.post(
            f"/v1/runs/{run}/steps",
            json={"schema": "epidemic-run/v1", "steps": steps},
            headers={**w.a, "Idempotency-Key": f"steps-of-{run}"},
        )
        assert sent.status_code == 202, sent.text


def _a_run_unchanged(w: World) -> None:
    for run in (A_RUN, A_ONLY):
        mine = w.client.get(f"/v1/runs/{run}", headers=w.a).json()
        assert mine["status"] == "running" and mine["steps"] == 2, mine
        assert mine["parameters"] == RUN_START["parameters"]


def run_start(w: World) -> None:
    _a_run(w)
    theirs = {**RUN_START, "parameters": {"population": 5, "beta": 1.0, "gamma": 1.0}}
    answer = w.client.post("/v1/runs", json=theirs, headers=w.b)
    assert answer.status_code in (200, 201), answer.text  # B's own run of that name...
    assert answer.json()["parameters"]["population"] == 5
    _a_run_unchanged(w)  # ...A's is untouched


def run_steps(w: World) -> None:
    _a_run(w)
    body = {"steps": [{"t": 5, "susceptible": 1.0, "infected": 1.0, "recovered": 1.0}]}
    answer = w.client.post(f"/v1/runs/{A_ONLY}/steps", json=body, headers=w.b)
    assert answer.status_code == 404
    _a_run_unchanged(w)


def run_finish(w: World) -> None:
    _a_run(w)
    answer = w.client.post(f"/v1/runs/{A_ONLY}/finish", json={"status": "failed"}, headers=w.b)
    assert answer.status_code == 404
    _a_run_unchanged(w)


def run_list(w: World) -> None:
    _a_run(w)
    for params in ({}, {"device": A_DEVICE}, {"kind": "epidemic"}):
        status, text = _get(w, "/v1/runs", **params)
        assert status == 200
        assert A_ONLY not in text
        for run in json.loads(text)["items"]:  # only B's own run named like A's
            assert run["parameters"]["population"] == 5, run


def run_reads(w: World) -> None:
    _a_run(w)
    for suffix in ("", "/timeline", "/summary", "/export"):
        status, text = _get(w, f"/v1/runs/{A_ONLY}{suffix}")
        assert status == 404, text
        w.assert_clean(text)


def run_compare(w: World) -> None:
    _a_run(w)
    status, text = _get(w, "/v1/runs/compare", ids=f"{A_ONLY},{A_RUN}")
    assert status == 404, text  # A_ONLY is no run of B's
    w.assert_clean(text)


def _a_temperature(w: World) -> None:
    """A's device sends a temperature/v1 reading (idempotent: each case calls it first)."""
    body = {"schema": "temperature/v1", "device": A_DEVICE, "ts": w.now - 30, "temperature": 4.5}
    headers = {**w.a, "Idempotency-Key": "a-temperature"}
    answer = w.client.post("/v1/contracts/temperature?precision=s", json=body, headers=headers)
    assert answer.status_code == 202, answer.text


def temperature_post(w: World) -> None:
    _a_temperature(w)
    a_series = w.client.get("/v1/series", params={"device": A_DEVICE}, headers=w.a).json()
    body = {"schema": "temperature/v1", "device": A_DEVICE, "ts": w.now - 30, "temperature": -40}
    answer = w.client.post("/v1/contracts/temperature?precision=s", json=body, headers=w.b)
    assert answer.status_code == 202, answer.text  # lands in B's own namespace...
    after = w.client.get("/v1/series", params={"device": A_DEVICE}, headers=w.a).json()
    assert after == a_series  # ...A's series and last values are untouched


def temperature_summary(w: World) -> None:
    _a_temperature(w)
    for params in ({}, {"device": A_DEVICE}):
        status, text = _get(w, "/v1/temperature/summary", **params, **{"from": "now-2d"})
        assert status == 200, text
        w.assert_clean(text.replace(A_DEVICE, ""))  # B may have a device of that name...
        for device in json.loads(text)["devices"]:  # ...whose readings are B's own
            assert device["device"] != A_DEVICE or device["metrics"]["temperature"]["min"] == -40
    mine = w.client.get("/v1/temperature/summary", params={"from": "now-2d"}, headers=w.a)
    assert [d["device"] for d in mine.json()["devices"]] == [A_DEVICE]


def contracts(w: World) -> None:
    for url in ("/v1/contracts", "/v1/contracts/temperature/v1"):
        status, text = _get(w, url)
        assert status == 200
        w.assert_clean(text)


# -- the stats_service API (docs/stats-api.md) ------------------------------------------

A_EMAIL = "a-secret-user@example.com"
A_FIELD = "a_secret_field"
_STATS_A: dict[int, dict[str, str]] = {}


def _stats_a(w: World) -> dict[str, str]:
    """A's stats API user (id 3), device, one reading and a finished analytics task."""
    if id(w) in _STATS_A:
        return _STATS_A[id(w)]
    for n in range(3):
        email = A_EMAIL if n == 2 else f"a-user-{n}@example.com"
        made = w.client.post("/users/", json={"name": "A", "email": email}, headers=w.a)
        assert made.status_code == 200, made.text
    user = made.json()["id"]
    device = w.client.post("/devices/", json={"user_id": user}, headers=w.a).json()["id"]
    posted = w.client.post(f"/devices/{device}/stats/", json={A_FIELD: 1.0}, headers=w.a)
    assert posted.status_code == 200, posted.text
    task = w.client.get(f"/devices/{device}/analytics/", headers=w.a).json()["task_id"]
    while w.client.get(f"/tasks/{task}", headers=w.a).json()["state"] in ("PENDING", "STARTED"):
        time.sleep(0.02)
    _STATS_A[id(w)] = {"user": str(user), "device": device, "task": task}
    return _STATS_A[id(w)]


def _stats_clean(w: World, text: str) -> None:
    a = _stats_a(w)
    for secret in (A_EMAIL, A_FIELD, a["device"], a["task"]):
        assert secret not in text, f"{secret!r} leaked: {text[:500]}"


def _a_readings(w: World) -> list[object]:
    answer = w.client.get(f"/stats/{_stats_a(w)['device']}/", headers=w.a)
    assert answer.status_code == 200, answer.text
    readings: list[object] = answer.json()
    return readings


def stats_users(w: World) -> None:
    _stats_a(w)
    status, text = _get(w, "/users/")
    assert status == 200
    _stats_clean(w, text)


def stats_user_create(w: World) -> None:
    _stats_a(w)
    made = w.client.post("/users/", json={"name": "B", "email": A_EMAIL}, headers=w.b)
    assert made.status_code == 200  # the email is A's, but emails are unique per tenant
    listed = w.client.get("/users/", headers=w.a).json()
    assert [u["email"] for u in listed].count(A_EMAIL) == 1


def stats_device_create(w: World) -> None:
    a = _stats_a(w)
    answer = w.client.post("/devices/", json={"user_id": int(a["user"])}, headers=w.b)
    assert answer.status_code == 404  # B has no user 3


def stats_device(w: World) -> None:
    status, _text = _get(w, f"/devices/{_stats_a(w)['device']}")
    assert status == 404


def stats_post(w: World) -> None:
    device = _stats_a(w)["device"]
    before = _a_readings(w)
    answer = w.client.post(f"/devices/{device}/stats/", json={A_FIELD: -5.0}, headers=w.b)
    assert answer.status_code == 404
    assert _a_readings(w) == before


def stats_analytics(w: World) -> None:
    assert _get(w, f"/devices/{_stats_a(w)['device']}/analytics/")[0] == 404


def stats_task(w: World) -> None:
    assert _get(w, f"/tasks/{_stats_a(w)['task']}")[0] == 404


def stats_all(w: World) -> None:
    _stats_a(w)
    status, text = _get(w, "/stats/")
    assert status == 200
    _stats_clean(w, text)


def stats_of_device(w: World) -> None:
    assert _get(w, f"/stats/{_stats_a(w)['device']}/")[0] == 404


# -- chart annotations (docs/annotations.md) ------------------------------------------

A_NOTE = "a-secret-annotation"


def _a_note(w: World) -> int:
    """A's annotation on A's series (idempotent: each case calls it first)."""
    found = w.client.get("/v1/annotations", headers=w.a).json()["items"]
    for item in found:
        if item["title"] == A_NOTE:
            return int(item["id"])
    body = {"series_id": w.a_series, "start": "now-10m", "end": "now-5m", "title": A_NOTE}
    made = w.client.post("/v1/annotations", json=body, headers=w.a)
    assert made.status_code == 201, made.text
    return int(made.json()["id"])


def annotation_create(w: World) -> None:
    _a_note(w)
    body = {"start": "now", "title": "b-annotation"}
    answer = w.client.post("/v1/annotations", json={**body, "series_id": w.a_series}, headers=w.b)
    assert answer.status_code == 422, answer.text  # A's series is no series of B's
    w.assert_clean(answer.text.replace(w.a_series, ""))
    answer = w.client.post("/v1/annotations", json={**body, "device": A_DEVICE}, headers=w.b)
    assert answer.status_code in (201, 422), answer.text  # B may have a device of that name
    w.assert_clean(answer.text.replace(A_DEVICE, ""))
    mine = w.client.get("/v1/annotations", headers=w.a).json()["items"]
    assert [a["title"] for a in mine] == [A_NOTE]  # A's list is untouched


def annotation_list(w: World) -> None:
    _a_note(w)
    for params in ({}, {"device": A_DEVICE}, {"series": w.a_series}, {"include_global": "true"}):
        status, text = _get(w, "/v1/annotations", **params)
        assert status == 200, text
        assert A_NOTE not in text and w.a_series not in text


def annotation_read(w: World) -> None:
    status, text = _get(w, f"/v1/annotations/{_a_note(w)}")
    assert status == 404 and A_NOTE not in text


def annotation_delete(w: World) -> None:
    note = _a_note(w)
    assert w.client.delete(f"/v1/annotations/{note}", headers=w.b).status_code == 404
    assert w.client.get(f"/v1/annotations/{note}", headers=w.a).status_code == 200



# -- analytics ---------------------------------------------------------------------------


def forecast(w: World) -> None:
    for extra in ({}, {"async": "true"}):  # no forecast and no task for another's series
        assert _get(w, f"/v1/series/{w.a_series}/forecast", **{"from": "now-2d", **extra})[0] == 404


def _a_scored(w: World) -> list[dict[str, object]]:
    """A's series has a model and window scores (idempotent); A's scores."""
    if not w.client.get("/v1/anomalies/models", headers=w.a).json()["items"]:
        selection = {"series": [w.a_series], "from": "now-2d"}
        for path, body in (
            ("/v1/anomalies/train", {**selection, "window": "60s", "detector": "robust_z"}),
            ("/v1/anomalies/score", selection),
        ):
            answer = w.client.post(path, json=body, headers=w.a)
            assert answer.status_code == 202, answer.text
            task = answer.json()
            while task["state"] not in ("SUCCESS", "FAILURE"):
                time.sleep(0.05)
                task = w.client.get(f"/tasks/{task['task_id']}", headers=w.a).json()
            assert task["state"] == "SUCCESS", task
    found: list[dict[str, object]] = w.client.get(
        "/v1/anomalies", params={"from": "now-2d"}, headers=w.a
    ).json()["items"]
    assert found
    return found


def _anomaly_selections(w: World) -> list[dict[str, object]]:
    return [{"series": w.a_series}, {"device": A_DEVICE}, {"metric": A_METRIC}]


def _asked(w: World, text: str) -> str:  # a 404 may name what was asked for
    return text.replace(w.a_series, "").replace(A_DEVICE, "").replace(A_METRIC, "")


def _anomaly_post(w: World, path: str) -> None:
    for selection in _anomaly_selections(w):
        if "series" in selection:
            selection = {"series": [w.a_series]}
        answer = w.client.post(path, json={**selection, "from": "now-2d"}, headers=w.b)
        # A's series id is no series of B's; a device or metric of that name may be B's own
        assert answer.status_code in ((404,) if "series" in selection else (202, 400, 404))
        w.assert_clean(_asked(w, answer.text))


def anomaly_train(w: World) -> None:
    _a_scored(w)
    before = w.client.get("/v1/anomalies/models", headers=w.a).json()["items"]
    _anomaly_post(w, "/v1/anomalies/train")
    assert w.client.get("/v1/anomalies/models", headers=w.a).json()["items"] == before


def anomaly_score(w: World) -> None:
    before = _a_scored(w)
    _anomaly_post(w, "/v1/anomalies/score")
    assert _a_scored(w) == before


def anomaly_list(w: World) -> None:
    _a_scored(w)
    status, text = _get(w, "/v1/anomalies", **{"from": "now-2d"})
    assert status == 200 and json.loads(text)["items"] == []
    w.assert_clean(text)
    for selection in [*_anomaly_selections(w), {"metric_id": A_METRIC}]:
        status, text = _get(w, "/v1/anomalies", **selection, **{"from": "now-2d"})
        assert status == 404, text
        w.assert_clean(_asked(w, text))


def anomaly_features(w: World) -> None:
    for selection in _anomaly_selections(w):
        status, text = _get(w, "/v1/anomalies/features", **selection, **{"from": "now-2d"})
        assert status == 404, text
        w.assert_clean(_asked(w, text))


def anomaly_models(w: World) -> None:
    _a_scored(w)
    status, text = _get(w, "/v1/anomalies/models")
    assert status == 200 and json.loads(text)["items"] == []
    for selection in _anomaly_selections(w):
        status, text = _get(w, "/v1/anomalies/models", **selection)
        assert status == 404, text
        w.assert_clean(_asked(w, text))



def pattern_series(w: World) -> None:
    for path in ("changepoints", "decompose", "spectrum", "motifs"):
        for extra in ({}, {"async": "true"}):
            url = f"/v1/series/{w.a_series}/{path}"
            status, text = _get(w, url, **{"from": "now-2d"}, **extra)
            assert status == 404, (path, extra, text)
            w.assert_clean(text.replace(w.a_series, ""))  # the 404 may name what was asked for


def pattern_correlation(w: World) -> None:
    b_series = w.client.get("/v1/series", headers=w.b).json()["items"][0]["id"]
    for extra in ({}, {"async": "true"}):
        pair = f"{b_series},{w.a_series}"
        status, text = _get(w, "/v1/analysis/correlation", series=pair, **extra)
        assert status == 404, text
        w.assert_clean(text.replace(w.a_series, ""))


def pattern_granger(w: World) -> None:
    b_series = w.client.get("/v1/series", headers=w.b).json()["items"][0]["id"]
    for cause, effect in ((w.a_series, b_series), (b_series, w.a_series)):
        status, text = _get(w, "/v1/analysis/granger", cause=cause, effect=effect, max_lag=2)
        assert status == 404, text
        w.assert_clean(text.replace(w.a_series, ""))


CASES: dict[tuple[str, str], Check] = {
    ("GET", "/v1/health"): public,
    ("GET", "/v1/ready"): public,
    ("GET", "/metrics"): metrics,
    ("POST", "/v1/ingest"): ingest,
    ("POST", "/api/v1/write"): prometheus_write,
    ("GET", "/v1/devices"): devices,
    ("GET", "/v1/devices/{device}"): device,
    ("GET", "/v1/devices/{device}/metrics"): device_metrics,
    ("GET", "/v1/series"): series_list,
    ("GET", "/v1/series/{series_id}"): one_series,
    ("GET", "/v1/series/{series_id}/points"): points,
    ("GET", "/v1/series/{series_id}/aggregate"): aggregate,
    ("GET", "/v1/series/{series_id}/states"): states,
    ("POST", "/api/v1/{device_token}/telemetry"): thingsboard,
    ("GET", "/v1/stats"): stats,
    ("GET", "/v1/aggregate"): fleet,
    ("GET", "/v1/latest"): fleet,
    ("GET", "/v1/points"): fleet,
    ("GET", "/v1/export"): export,
    ("GET", "/v1/usage"): usage,
    ("GET", "/v1/admin/tenants"): tenants,
    ("POST", "/v1/admin/tenants"): tenants,
    ("PATCH", "/v1/admin/tenants/{name}"): tenant_patch,
    ("GET", "/v1/admin/tenants/{name}/rollups"): rollups,
    ("PUT", "/v1/admin/tenants/{name}/rollups"): rollups,
    ("GET", "/v1/admin/keys"): keys,
    ("POST", "/v1/admin/keys"): keys,
    ("DELETE", "/v1/admin/keys/{key_id}"): key_revoke,
    ("POST", "/v1/admin/replay"): replay,
    ("POST", "/v1/runs"): run_start,
    ("POST", "/v1/runs/{run}/steps"): run_steps,
    ("POST", "/v1/runs/{run}/finish"): run_finish,
    ("GET", "/v1/runs"): run_list,
    ("GET", "/v1/runs/compare"): run_compare,
    ("GET", "/v1/runs/{run}"): run_reads,
    ("GET", "/v1/runs/{run}/timeline"): run_reads,
    ("GET", "/v1/runs/{run}/summary"): run_reads,
    ("GET", "/v1/runs/{run}/export"): run_reads,
    ("POST", "/v1/contracts/temperature"): temperature_post,
    ("GET", "/v1/temperature/summary"): temperature_summary,
    ("GET", "/v1/contracts"): contracts,
    ("GET", "/v1/contracts/{family}/{version}"): contracts,
    ("GET", "/users/"): stats_users,
    ("POST", "/users/"): stats_user_create,
    ("POST", "/devices/"): stats_device_create,
    ("GET", "/devices/{device_id}"): stats_device,
    ("POST", "/devices/{device_id}/stats/"): stats_post,
    ("GET", "/devices/{device_id}/analytics/"): stats_analytics,
    ("GET", "/tasks/{task_id}"): stats_task,
    ("GET", "/stats/"): stats_all,
    ("GET", "/stats/{device_id}/"): stats_of_device,
    ("POST", "/v1/annotations"): annotation_create,
    ("GET", "/v1/annotations"): annotation_list,
    ("GET", "/v1/annotations/{annotation_id}"): annotation_read,
    ("DELETE", "/v1/annotations/{annotation_id}"): annotation_delete,
    ("GET", "/v1/series/{series_id}/forecast"): forecast,
    ("POST", "/v1/anomalies/train"): anomaly_train,
    ("POST", "/v1/anomalies/score"): anomaly_score,
    ("GET", "/v1/anomalies"): anomaly_list,
    ("GET", "/v1/anomalies/features"): anomaly_features,
    ("GET", "/v1/anomalies/models"): anomaly_models,
    ("GET", "/v1/series/{series_id}/changepoints"): pattern_series,
    ("GET", "/v1/series/{series_id}/decompose"): pattern_series,
    ("GET", "/v1/series/{series_id}/spectrum"): pattern_series,
    ("GET", "/v1/series/{series_id}/motifs"): pattern_series,
    ("GET", "/v1/analysis/correlation"): pattern_correlation,
    ("GET", "/v1/analysis/granger"): pattern_granger,
}


def test_every_operation_has_an_isolation_case(world: World) -> None:
    spec = world.client.get("/openapi.json").json()
    operations = {(m.upper(), p) for p, item in spec["paths"].items() for m in item}
    missing = operations - CASES.keys()
    assert not missing, f"add these operations to CASES in {__file__}: {sorted(missing)}"
    assert not CASES.keys() - operations, "CASES names operations that no longer exist"


@pytest.mark.parametrize("operation", sorted(CASES), ids=lambda op: f"{op[0]} {op[1]}")
def test_another_tenant_sees_nothing(world: World, operation: tuple[str, str]) -> None:
    CASES[operation](world)
