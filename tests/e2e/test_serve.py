"""`stats-service serve` as a real process: start, ingest, graceful stop, first-start key."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

import httpx
import pytest

from .conftest import ServerFactory
from .harness import ADMIN, Feeder, ServerProcess, assert_exactly_once, stored_points

pytestmark = [pytest.mark.e2e]
KEY_LINE = re.compile(r"Admin API key of tenant 'default' \(shown once[^\n]*\n\s+(\S+)")


def test_health_ready_and_ingest(server: ServerProcess) -> None:
    health = httpx.get(f"{server.url}/v1/health", timeout=10)
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "ok"
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", body["version"])
    now = datetime.now(UTC)
    server_time = datetime.fromisoformat(body["time"].replace("Z", "+00:00"))
    assert abs((server_time - now).total_seconds()) < 60

    ready = httpx.get(f"{server.url}/v1/ready", timeout=10)
    assert ready.status_code == 200, ready.text
    assert ready.json()["ready"] is True

    reading = {
        "device": "e2e-serve",
        "ts": "2024-05-01T12:00:00.123456Z",
        "metrics": {"temperature": {"value": 21.25, "unit": "°C"}},
    }
    with server.client() as client:
        response = client.post("/v1/ingest", json=reading)
        unauthenticated = client.post("/v1/ingest", json=reading, headers={"X-API-Key": ""})
    assert response.status_code == 202, response.text
    assert response.json()["points"] == 1
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["content-type"].startswith("application/problem+json")

    with server.client() as client:  # readable at once through the read API
        (found,) = client.get("/v1/series", params={"device": "e2e-serve"}).json()["items"]
        assert (found["metric"], found["unit"], found["last_value"]) == ("temperature", "°C", 21.25)
        span = {"from": "2024-05-01T00:00:00Z", "to": "2024-05-02T00:00:00Z"}
        stored = client.get(f"/v1/series/{found['id']}/points", params=span).json()
    assert stored["value"] == [21.25]
    assert stored["t"][0].startswith("2024-05-01T12:00:00.123456")

    server.terminate()
    ts_us = int(datetime(2024, 5, 1, 12, tzinfo=UTC).timestamp()) * 1_000_000 + 123456
    assert stored_points(server.data_dir, "e2e-serve") == [
        ("e2e-serve", "temperature", ts_us, 21.25)
    ]


def test_sigterm_drains_every_acknowledged_batch(server: ServerProcess) -> None:
    feeders = [Feeder(server, f"drain-{i}", batch_points=50, until_acked=False) for i in range(3)]
    for feeder in feeders:
        feeder.start()
    deadline = time.monotonic() + 30
    while sum(f.acked_batches for f in feeders) < 30:
        assert time.monotonic() < deadline, "the feeders got no acknowledgements"
        time.sleep(0.02)

    server.terminate(timeout=30)  # the feeders keep posting while it stops
    for feeder in feeders:
        feeder.stop()
    assert not server.server_file.exists(), "server.json must be removed on a clean stop"
    for feeder in feeders:
        assert not feeder.unexpected, feeder.unexpected[:3]

    server.start()  # acknowledged data survives a restart
    server.terminate()
    acked = {k: v for f in feeders for k, v in f.acked.items()}
    assert_exactly_once(stored_points(server.data_dir, "drain-"), acked)


def test_first_start_prints_the_admin_key_once(server_factory: ServerFactory) -> None:
    server = server_factory(admin_key=None).start()
    match = KEY_LINE.search(server.stdout())
    assert match, f"no admin key on stdout:\n{server.stdout()}"
    key = match.group(1)
    with server.client(key) as client:
        assert client.get("/v1/admin/keys").status_code == 200
        assert client.get("/v1/admin/keys", headers={"X-API-Key": key + "x"}).status_code == 401
    server.terminate()

    server.start()
    assert "Admin API key" not in server.stdout()
    assert key not in server.stdout() + server.stderr()
    with server.client(key) as client:
        assert client.get("/v1/admin/keys").status_code == 200
    with server.client(ADMIN["X-API-Key"]) as client:  # STATS_ADMIN_KEY was never set here
        assert client.get("/v1/admin/keys").status_code == 401
