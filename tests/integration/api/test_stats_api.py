"""The stats_service API (docs/stats-api.md) on the real app: users, devices, stats,
analytics tasks, stored readings, errors, roles and anonymous access."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import ADMIN_KEY, make_settings, new_key, new_tenant
from stats_service.app import create_app

ADMIN = {"X-API-Key": ADMIN_KEY}


def user(client: TestClient, email: str = "user1@test.com", name: str = "User1") -> int:
    made = client.post("/users/", json={"name": name, "email": email}, headers=ADMIN)
    assert made.status_code == 200, made.text
    return int(made.json()["id"])


def device(client: TestClient, user_id: int) -> str:
    made = client.post("/devices/", json={"user_id": user_id}, headers=ADMIN)
    assert made.status_code == 200, made.text
    return str(made.json()["id"])


def finished(client: TestClient, task_id: str, headers: dict[str, str] = ADMIN) -> dict[str, Any]:
    while True:
        answer = client.get(f"/tasks/{task_id}", headers=headers)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        assert 0 <= body["progress"] <= 1
        if body["state"] not in ("PENDING", "STARTED"):
            return body
        time.sleep(0.01)


def problem(answer: Any, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = answer.json()
    assert body["status"] == status and body["detail"]
    return body


def test_users_are_numbered_per_tenant_and_emails_are_unique(client: TestClient) -> None:
    assert user(client) == 1
    assert user(client, "user2@test.com", "User2") == 2
    listed = client.get("/users/", headers=ADMIN).json()
    assert [(u["id"], u["name"], u["email"]) for u in listed] == [
        (1, "User1", "user1@test.com"),
        (2, "User2", "user2@test.com"),
    ]
    assert client.get("/users/", params={"limit": 1, "offset": 1}, headers=ADMIN).json() == [
        listed[1]
    ]
    duplicate = client.post("/users/", json={"name": "X", "email": "USER1@test.com"}, headers=ADMIN)
    assert "already exists" in problem(duplicate, 400)["detail"]
    new_tenant(client, "other")
    other = new_key(client, "admin", "other")
    again = client.post("/users/", json={"name": "O", "email": "user1@test.com"}, headers=other)
    assert again.status_code == 200 and again.json()["id"] == 1  # another tenant's user 1


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"name": "U", "email": "not-an-email"}, "body.email"),
        ({"name": "", "email": "u@test.com"}, "body.name"),
        ({"email": "u@test.com"}, "body.name"),
        ([1, 2], "body"),
    ],
)
def test_invalid_users_get_422_with_the_field(client: TestClient, body: Any, loc: str) -> None:
    answer = client.post("/users/", json=body, headers=ADMIN)
    assert [e["loc"] for e in problem(answer, 422)["errors"]] == [loc]


def test_devices_have_uuids_and_belong_to_users(client: TestClient) -> None:
    owner = user(client)
    made = client.post("/devices/", json={"user_id": owner}, headers=ADMIN)
    assert made.status_code == 200
    body = made.json()
    assert uuid.UUID(body["id"]).version == 4 and body["user_id"] == owner
    assert body["created_at"].endswith("Z")
    assert client.get(f"/devices/{body['id']}", headers=ADMIN).json() == body
    assert client.get(f"/devices/{body['id']}/", headers=ADMIN).json() == body  # twin path
    assert (
        "user 9"
        in problem(client.post("/devices/", json={"user_id": 9}, headers=ADMIN), 404)["detail"]
    )
    unknown = client.get(f"/devices/{uuid.uuid4()}", headers=ADMIN)
    assert "does not exist" in problem(unknown, 404)["detail"]
    malformed = client.get("/devices/8cb7...", headers=ADMIN)
    assert problem(malformed, 422)["errors"][0]["loc"] == "path.device_id"
    for bad in ({}, {"user_id": "one"}, {"user_id": 0}):
        answer = client.post("/devices/", json=bad, headers=ADMIN)
        assert problem(answer, 422)["errors"][0]["loc"] == "body.user_id"


def test_stats_are_stored_and_analysed(client: TestClient) -> None:
    dev = device(client, user(client))
    readings = [
        {"x": 1.5, "y": 2.3, "z": 3.8, "timestamp": "2025-03-01T00:00:00"},
        {"x": 2.5, "y": 2.3, "z": 4.8, "timestamp": "2025-03-01T00:01:00Z"},
        {"x": 3.5, "y": -1, "z": 5.8, "timestamp": 1740787320},  # 00:02:00, epoch seconds
        {"x": 100.0, "extra": 7, "timestamp": "2025-06-01T00:00:00+02:00"},
    ]
    for i, reading in enumerate(readings):
        path = f"/devices/{dev}/stats/" if i % 2 == 0 else f"/devices/{dev}/stats"  # both work
        answer = client.post(path, json=reading, headers=ADMIN)
        assert answer.status_code == 200 and answer.json() == {"status": "ok"}, answer.text

    stored = client.get(f"/stats/{dev}/", headers=ADMIN).json()
    assert stored == [
        {"device_id": dev, "user_id": 1, "timestamp": "2025-03-01T00:00:00Z", "x": 1.5,
         "y": 2.3, "z": 3.8},
        {"device_id": dev, "user_id": 1, "timestamp": "2025-03-01T00:01:00Z", "x": 2.5,
         "y": 2.3, "z": 4.8},
        {"device_id": dev, "user_id": 1, "timestamp": "2025-03-01T00:02:00Z", "x": 3.5,
         "y": -1.0, "z": 5.8},
        {"device_id": dev, "user_id": 1, "timestamp": "2025-05-31T22:00:00Z", "extra": 7.0,
         "x": 100.0},
    ]  # fmt: skip
    page = client.get("/stats/", params={"limit": 3}, headers=ADMIN)
    assert page.json() == stored[:3] and page.headers["x-next-offset"] == "3"
    rest = client.get("/stats", params={"limit": 3, "offset": 3}, headers=ADMIN)
    assert rest.json() == stored[3:] and "x-next-offset" not in rest.headers

    # the same points in the /v1 API: one series per field, the device's UUID as device
    series = client.get("/v1/series", params={"device": dev}, headers=ADMIN).json()["items"]
    assert sorted(s["metric"] for s in series) == ["extra", "x", "y", "z"]

    started = client.get(
        f"/devices/{dev}/analytics/",
        params={"start": "2025-01-01T00:00:00", "end": "2025-03-01T00:01:00"},
        headers=ADMIN,
    )
    assert started.status_code == 202
    assert started.json()["state"] in {"PENDING", "STARTED", "SUCCESS"}  # a worker may be quick
    assert started.json()["kind"] == "device_analytics"
    done = finished(client, started.json()["task_id"])
    assert done["state"] == "SUCCESS" and done["progress"] == 1 and done["error"] is None
    result = done["result"]
    assert result["device_id"] == dev
    assert result["start"] == "2025-01-01T00:00:00.000000Z"
    assert result["end"] == "2025-03-01T00:01:00.000000Z"  # inclusive
    fields = result["fields"]
    assert fields["x"] == {
        "min": 1.5, "max": 2.5, "sum": 4.0, "median": 2.0, "count": 2, "mean": 2.0,
        "stddev": pytest.approx(0.7071067811865476),
    }  # fmt: skip
    assert fields["extra"]["count"] == 0 and fields["extra"]["min"] is None

    everything = finished(client, client.get(f"/devices/{dev}/analytics", headers=ADMIN).json()[
        "task_id"
    ])  # fmt: skip
    assert everything["result"]["fields"]["x"]["count"] == 4
    assert everything["result"]["fields"]["x"]["sum"] == 107.5
    assert everything["result"]["fields"]["y"]["median"] == 2.3


def test_stats_errors_name_every_field(client: TestClient) -> None:
    dev = device(client, user(client))
    bad = client.post(
        f"/devices/{dev}/stats/",
        json={"x": "1.5", "y": True, "device_id": 1, "timestamp": "yesterday", "z": 1},
        headers=ADMIN,
    )
    assert {e["loc"] for e in problem(bad, 422)["errors"]} == {
        "body.x", "body.y", "body.device_id", "body.timestamp",
    }  # fmt: skip
    for body, loc in (
        (b"{", "body"),
        (b"[1]", "body"),
        (b"{}", "body"),
        (b'{"x": 1, "timestamp": "2999-01-01T00:00:00Z"}', "body.timestamp"),
    ):
        answer = client.post(f"/devices/{dev}/stats/", content=body, headers=ADMIN)
        assert problem(answer, 422)["errors"][0]["loc"] == loc
    assert client.get(f"/stats/{dev}/", headers=ADMIN).json() == []  # nothing half-written
    unknown = client.post(f"/devices/{uuid.uuid4()}/stats/", json={"x": 1}, headers=ADMIN)
    problem(unknown, 404)
    malformed = client.post("/devices/8cb7.../stats/", json={"x": 1}, headers=ADMIN)
    assert problem(malformed, 422)["errors"][0]["loc"] == "path.device_id"
    metrics = client.get("/metrics").text  # the fast path is measured under its route
    assert 'route="/devices/{device_id}/stats/",status="404"' in metrics
    problem(client.get(f"/stats/{uuid.uuid4()}/", headers=ADMIN), 404)
    problem(client.get(f"/devices/{uuid.uuid4()}/analytics/", headers=ADMIN), 404)
    problem(client.get(f"/tasks/{uuid.uuid4()}", headers=ADMIN), 404)
    problem(client.get("/tasks/not-a-task", headers=ADMIN), 422)
    backwards = client.get(
        f"/devices/{dev}/analytics/",
        params={"start": "2025-02-01T00:00:00", "end": "2025-01-01T00:00:00"},
        headers=ADMIN,
    )
    assert problem(backwards, 422)["errors"][0]["loc"] == "query.end"
    garbled = client.get(f"/devices/{dev}/analytics/", params={"start": "soon"}, headers=ADMIN)
    assert problem(garbled, 422)["errors"][0]["loc"] == "query.start"
    problem(client.get("/stats/", params={"limit": 0}, headers=ADMIN), 422)


def test_roles_read_for_gets_ingest_for_posts(client: TestClient) -> None:
    dev = device(client, user(client))
    reader, writer = new_key(client, "read"), new_key(client, "ingest")
    assert client.post(f"/devices/{dev}/stats/", json={"x": 1}, headers=writer).status_code == 200
    made = client.post("/users/", json={"name": "W", "email": "w@test.com"}, headers=writer)
    assert made.status_code == 200
    assert client.post("/devices/", json={"user_id": 2}, headers=writer).status_code == 200
    problem(client.post(f"/devices/{dev}/stats/", json={"x": 1}, headers=reader), 403)
    problem(client.post("/users/", json={"name": "R", "email": "r@test.com"}, headers=reader), 403)
    for url in ("/users/", f"/devices/{dev}", "/stats/", f"/stats/{dev}/"):
        assert client.get(url, headers=reader).status_code == 200
        problem(client.get(url, headers=writer), 403)
    started = client.get(f"/devices/{dev}/analytics/", headers=reader)
    assert finished(client, started.json()["task_id"], reader)["state"] == "SUCCESS"
    problem(client.get(f"/stats/{dev}/", headers={"X-API-Key": "wrong"}), 401)


def test_anonymous_access_is_off_by_default_and_per_flag(client: TestClient) -> None:
    dev = device(client, user(client))
    for answer in (
        client.get("/users/"),
        client.post("/users/", json={"name": "A", "email": "a@test.com"}),
        client.post(f"/devices/{dev}/stats/", json={"x": 1}),
        client.get(f"/stats/{dev}/"),
    ):
        assert "API key is required" in problem(answer, 401)["detail"]
        assert answer.headers["www-authenticate"].startswith("Bearer")

    patched = client.patch(
        "/v1/admin/tenants/default", json={"anonymous_write": True}, headers=ADMIN
    )
    assert patched.json()["anonymous_write"] is True and patched.json()["anonymous_read"] is False
    assert client.post(f"/devices/{dev}/stats/", json={"x": 2}).status_code == 200
    assert "anonymous_read" in problem(client.get(f"/stats/{dev}/"), 401)["detail"]
    assert client.get("/v1/series").status_code == 401  # the /v1 API always needs a key

    client.patch("/v1/admin/tenants/default", json={"anonymous_read": True}, headers=ADMIN)
    assert [r["x"] for r in client.get(f"/stats/{dev}/").json()] == [2.0]
    task = client.get(f"/devices/{dev}/analytics/").json()["task_id"]
    assert finished(client, task, {})["result"]["fields"]["x"]["count"] == 1
    assert client.get("/v1/series").status_code == 401

    client.patch(
        "/v1/admin/tenants/default",
        json={"anonymous_read": False, "anonymous_write": False},
        headers=ADMIN,
    )
    problem(client.get(f"/stats/{dev}/"), 401)
    problem(client.post(f"/devices/{dev}/stats/", json={"x": 3}), 401)


def test_demo_settings_allow_keyless_calls_for_default_only(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    with TestClient(create_app(settings, anonymous_default=True)) as client:
        made = client.post("/users/", json={"name": "User1", "email": "user1@test.com"})
        assert made.status_code == 200 and made.json()["id"] == 1
        dev = client.post("/devices/", json={"user_id": 1}).json()["id"]
        assert client.post(f"/devices/{dev}/stats/", json={"x": 1.5}).json() == {"status": "ok"}
        assert client.get(f"/stats/{dev}/", headers=ADMIN).json()[0]["x"] == 1.5  # default's
        tenants = client.get("/v1/admin/tenants", headers=ADMIN).json()
        assert [t["anonymous_read"] for t in tenants] == [False]  # nothing stored


def test_stats_and_tasks_survive_a_restart(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        dev = device(client, user(client))
        client.post(f"/devices/{dev}/stats/", json={"x": 4.0}, headers=ADMIN)
        task = finished(client, client.get(f"/devices/{dev}/analytics/", headers=ADMIN).json()[
            "task_id"
        ])  # fmt: skip
    with TestClient(create_app(settings)) as client:
        assert client.get(f"/tasks/{task['task_id']}", headers=ADMIN).json() == task
        assert [r["x"] for r in client.get(f"/stats/{dev}/", headers=ADMIN).json()] == [4.0]
        duplicate = client.post("/users/", json={"name": "U", "email": "user1@test.com"},
                                headers=ADMIN)  # fmt: skip
        problem(duplicate, 400)


def test_openapi_documents_the_seed_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path, methods in {
        "/users/": {"get", "post"},
        "/devices/": {"post"},
        "/devices/{device_id}": {"get"},
        "/devices/{device_id}/stats/": {"post"},
        "/devices/{device_id}/analytics/": {"get"},
        "/tasks/{task_id}": {"get"},
        "/stats/": {"get"},
        "/stats/{device_id}/": {"get"},
    }.items():
        assert set(paths[path]) == methods
        for method in methods:
            assert "422" in paths[path][method]["responses"]
    assert "/users" not in paths  # the twin without the slash is served, not documented
