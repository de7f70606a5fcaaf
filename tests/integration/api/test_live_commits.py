"""What the writer hands to the live feed, seen through WS /v1/live in-process: retries
answered from the idempotency table and replays from the raw archive are not sent again;
text values arrive as `states`.

Absence is checked with a marker point posted afterwards (messages come in commit order).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient
from starlette.testclient import WebSocketTestSession

from conftest import ADMIN_KEY
from stats_service.services import Services

MARKER = {"device": "marker", "metrics": {"m": 0.0}}


def post(client: TestClient, body: Any, **headers: str) -> None:
    answer = client.post("/v1/ingest", json=body, headers={"X-API-Key": ADMIN_KEY, **headers})
    assert answer.status_code == 202, answer.text


def until_marker(ws: WebSocketTestSession) -> list[dict[str, Any]]:
    got = []
    while True:
        message = ws.receive_json()
        if message["type"] == "ping":
            continue
        if message.get("device") == "marker":
            return got
        got.append(message)


def test_retries_and_replays_are_not_sent_again(client: TestClient, services: Services) -> None:
    reading = {"device": "retry-dev", "ts": "2026-11-20T08:00:00Z", "metrics": {"x": 1.0}}
    with client.websocket_connect(f"/v1/live?key={ADMIN_KEY}&device=retry-dev,marker") as ws:
        assert ws.receive_json()["type"] == "hello"
        post(client, reading, **{"Idempotency-Key": "once"})
        post(client, reading, **{"Idempotency-Key": "once"})  # answered from the table
        post(client, MARKER)
        got = until_marker(ws)
        assert [(m["device"], m["v"]) for m in got] == [("retry-dev", [1.0])]
        # a replay of today's archive fills gaps only: nothing is pushed for it
        today = datetime.now(UTC).date().isoformat()
        replayed = client.post(
            "/v1/admin/replay",
            json={"from": today, "to": today},
            headers={"X-API-Key": ADMIN_KEY},
        )
        assert replayed.status_code == 200, replayed.text
        assert replayed.json()["batches"] == 2  # the reading and the marker
        post(client, MARKER)
        assert until_marker(ws) == []
    assert not services.live.active


def test_text_values_arrive_as_states(client: TestClient) -> None:
    with client.websocket_connect(f"/v1/live?key={ADMIN_KEY}&device=hvac") as ws:
        assert ws.receive_json()["type"] == "hello"
        answer = client.post(
            "/api/v2/write?bucket=default&precision=s",
            content=b'climate,device=hvac mode="heat",setpoint=21.5 1795420800\n',
            headers={"Authorization": f"Token {ADMIN_KEY}"},
        )
        assert answer.status_code == 204, answer.text
        got = {m["type"]: m for m in (ws.receive_json(), ws.receive_json())}
    assert got["states"]["text"] == ["heat"]
    assert got["states"]["t"] == ["2026-11-23T08:00:00.000000Z"]
    assert got["points"]["v"] == [21.5]
    assert got["states"]["metric"] != got["points"]["metric"]
