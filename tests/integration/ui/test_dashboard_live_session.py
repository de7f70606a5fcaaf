"""WS /v1/live with the dashboard's session cookie: the pages' charts follow new points
without a key in the page; only this server's pages may use the cookie; signing out ends
the feed."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketTestSession
from starlette.websockets import WebSocketDisconnect

from conftest import ADMIN_KEY
from stats_service.api.routers import live

SAME_ORIGIN = {"Origin": "http://testserver"}
READING = {"device": "esp32-01", "metrics": {"temperature": 21.5}}


def sign_in(client: TestClient) -> str:
    answer = client.post("/ui/login", data={"key": ADMIN_KEY}, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    csrf: str = client.get("/ui/session").json()["csrf"]
    return csrf


def closed(ws: WebSocketTestSession) -> tuple[dict[str, object], int]:
    error = ws.receive_json()
    with pytest.raises(WebSocketDisconnect) as ended:
        ws.receive_json()
    return error, ended.value.code


def test_the_session_cookie_opens_the_feed_from_the_pages(client: TestClient) -> None:
    sign_in(client)
    with client.websocket_connect("/v1/live?device=esp32-01", headers=SAME_ORIGIN) as ws:
        hello = ws.receive_json()
        assert (hello["type"], hello["tenant"], hello["role"]) == ("hello", "default", "admin")
        answer = client.post("/v1/ingest", json=READING, headers={"X-API-Key": ADMIN_KEY})
        assert answer.status_code == 202
        points = ws.receive_json()
    assert (points["type"], points["device"], points["v"]) == ("points", "esp32-01", [21.5])


def test_another_origin_cannot_use_the_cookie(client: TestClient) -> None:
    sign_in(client)
    for headers in ({"Origin": "http://evil.example"}, {}):
        with client.websocket_connect("/v1/live", headers=headers) as ws:
            error, code = closed(ws)
        assert code == 4403 and error["status"] == 403
        assert "this server's pages" in str(error["detail"])
    # a key still works from anywhere
    with client.websocket_connect(
        f"/v1/live?key={ADMIN_KEY}", headers={"Origin": "http://evil.example"}
    ) as ws:
        assert ws.receive_json()["type"] == "hello"


def test_signing_out_ends_the_feed(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live, "KEY_RECHECK_S", 0.2)
    csrf = sign_in(client)
    with client.websocket_connect("/v1/live", headers=SAME_ORIGIN) as ws:
        assert ws.receive_json()["type"] == "hello"
        out = client.post("/ui/logout", data={"csrf": csrf}, follow_redirects=False)
        assert out.status_code == 303
        error, code = closed(ws)
    assert code == 4401 and "session has ended" in str(error["detail"])


def test_without_session_or_key_the_feed_still_asks_for_a_key(client: TestClient) -> None:
    with client.websocket_connect("/v1/live", headers=SAME_ORIGIN) as ws:
        ws.send_json({"type": "auth"})
        error, code = closed(ws)
    assert code == 4401 and "API key is required" in str(error["detail"])


def test_the_pages_poll_tasks_with_the_session_cookie(client: TestClient) -> None:
    """A forecast answered as a task (`async=true`) is followed at /tasks/{id} with the
    cookie, as the explorer does; without a session or key that is still a 401."""
    points = [
        {"device": "esp32-01", "ts": f"2026-11-20T{h:02d}:00:00Z", "metrics": {"t": 20.0 + h % 3}}
        for h in range(24)
    ]
    assert (
        client.post("/v1/ingest", json=points, headers={"X-API-Key": ADMIN_KEY}).status_code == 202
    )
    sign_in(client)
    series = client.get("/v1/devices/esp32-01/metrics").json()["metrics"][0]["series_id"]
    window = {"from": "2026-11-20T00:00:00Z", "to": "2026-11-21T00:00:00Z"}
    answer = client.get(
        f"/v1/series/{series}/forecast",
        params={"horizon": 3, "bucket": "1h", "async": "true", **window},
    )
    assert answer.status_code == 202, answer.text
    task = answer.json()["task_id"]
    polled = client.get(f"/tasks/{task}")
    assert polled.status_code == 200 and polled.json()["task_id"] == task
    client.cookies.clear()
    assert client.get(f"/tasks/{task}").status_code == 401
