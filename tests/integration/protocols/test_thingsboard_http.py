"""ThingsBoard-style device API: a device token in the URL is the only credential."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from conftest import ADMIN_KEY


def device_token(client: TestClient, device: str, tenant: str = "default") -> str:
    made = client.post(
        "/v1/admin/keys",
        json={"tenant": tenant, "role": "ingest", "device": device},
        headers={"X-API-Key": ADMIN_KEY},
    )
    assert made.status_code == 201, made.text
    assert made.json()["device"] == device
    return str(made.json()["key"])


def series_of(client: TestClient, device: str) -> dict[str, dict[str, Any]]:
    answer = client.get(
        "/v1/series", params={"device": device}, headers={"X-API-Key": ADMIN_KEY}
    )
    assert answer.status_code == 200, answer.text
    return {s["metric"]: s for s in answer.json()["items"]}


def test_the_three_shapes_are_stored_for_the_tokens_device(client: TestClient) -> None:
    token = device_token(client, "pico-balcony")
    url = f"/api/v1/{token}/telemetry"
    assert client.post(url, json={"temperature": 21.5, "heater": "on"}).status_code == 200
    timed = {"ts": 1_700_000_000_000, "values": {"temperature": 19.0}}
    answer = client.post(url, json=timed)
    assert answer.status_code == 200 and answer.content == b""
    assert client.post(url, json=[timed, {"battery": 87, "ok": True}]).status_code == 200

    found = series_of(client, "pico-balcony")
    assert set(found) == {"temperature", "heater", "battery", "ok"}
    assert found["temperature"]["last_value"] == 21.5
    assert found["ok"]["last_value"] == 1.0
    assert found["heater"]["last_state"] == "on"
    states = client.get(
        f"/v1/series/{found['heater']['id']}/states",
        params={"from": "now-1h", "to": "now+1h"},
        headers={"X-API-Key": ADMIN_KEY},
    )
    assert states.status_code == 200, states.text
    assert states.json()["text"] == ["on"]
    points = client.get(
        f"/v1/series/{found['temperature']['id']}/points",
        params={"from": "2023-11-14T00:00:00Z", "to": "now+1h"},
        headers={"X-API-Key": ADMIN_KEY},
    )
    assert points.json()["value"] == [19.0, 21.5]


def test_errors_are_thingsboard_shaped(client: TestClient) -> None:
    token = device_token(client, "pico-1")
    url = f"/api/v1/{token}/telemetry"

    unknown = client.post("/api/v1/no-such-token/telemetry", json={"t": 1})
    assert unknown.status_code == 404
    assert set(unknown.json()) == {"status", "message", "errorCode", "timestamp"}
    assert unknown.json()["errorCode"] == 32

    broken = client.post(url, content=b'{"t": 1', headers={"Content-Type": "application/json"})
    assert broken.status_code == 400
    assert "not valid JSON" in broken.json()["message"]

    future = client.post(url, json={"ts": 4_102_444_800_000, "values": {"t": 1}})
    assert future.status_code == 400 and "future" in future.json()["message"]

    partial = client.post(url, json={"t": 2.5, "broken": None})
    assert partial.status_code == 400
    assert "1 value(s) skipped" in partial.json()["message"]
    assert "broken" in partial.json()["message"]
    assert series_of(client, "pico-1")["t"]["last_value"] == 2.5  # the rest was stored

    too_big = client.post(url, content=b"{" + b" " * 20_000_000 + b"}")
    assert too_big.status_code == 413
    assert too_big.json()["errorCode"] == 31


def test_an_ordinary_key_is_not_a_device_token(client: TestClient) -> None:
    made = client.post(
        "/v1/admin/keys", json={"role": "ingest"}, headers={"X-API-Key": ADMIN_KEY}
    ).json()["key"]
    answer = client.post(f"/api/v1/{made}/telemetry", json={"t": 1})
    assert answer.status_code == 401
    assert "not a device token" in answer.json()["message"]


def test_a_device_key_writes_only_its_own_device(client: TestClient) -> None:
    token = device_token(client, "esp32-own")
    headers = {"X-API-Key": token}
    mine = {"device": "esp32-own", "metrics": {"t": 1.0}}
    assert client.post("/v1/ingest", json=mine, headers=headers).status_code == 202
    other = {"device": "esp32-other", "metrics": {"t": 1.0}}
    answer = client.post("/v1/ingest", json=other, headers=headers)
    assert answer.status_code == 403
    assert "device token of 'esp32-own'" in answer.json()["detail"]
    assert series_of(client, "esp32-other") == {}


def test_device_keys_need_the_ingest_role(client: TestClient) -> None:
    answer = client.post(
        "/v1/admin/keys",
        json={"role": "read", "device": "esp32-x"},
        headers={"X-API-Key": ADMIN_KEY},
    )
    assert answer.status_code == 400
    assert "role 'ingest'" in answer.json()["detail"]


def test_anonymous_write_is_a_tenant_setting(client: TestClient) -> None:
    admin = {"X-API-Key": ADMIN_KEY}
    assert client.get("/v1/admin/tenants", headers=admin).json()[0]["anonymous_write"] is False
    answer = client.patch(
        "/v1/admin/tenants/default", json={"anonymous_write": True}, headers=admin
    )
    assert answer.status_code == 200 and answer.json()["anonymous_write"] is True


def test_text_values_follow_last_write_wins(client: TestClient) -> None:
    token = device_token(client, "pico-lww")
    url = f"/api/v1/{token}/telemetry"
    at = 1_700_000_000_000
    for mode in ("eco", "comfort"):
        assert client.post(url, json={"ts": at, "values": {"mode": mode}}).status_code == 200
    later = {"ts": at + 1000, "values": {"mode": "off"}}
    assert client.post(url, json=later).status_code == 200
    found = series_of(client, "pico-lww")["mode"]
    states = client.get(
        f"/v1/series/{found['id']}/states",
        params={"from": "2023-11-14T00:00:00Z", "to": "now", "limit": 1},
        headers={"X-API-Key": ADMIN_KEY},
    ).json()
    assert states["text"] == ["comfort"] and states["next_cursor"]
    rest = client.get(
        f"/v1/series/{found['id']}/states",
        params={"from": "2023-11-14T00:00:00Z", "to": "now", "cursor": states["next_cursor"]},
        headers={"X-API-Key": ADMIN_KEY},
    ).json()
    assert rest["text"] == ["off"] and rest["next_cursor"] is None
    assert found["last_state"] == "off"
