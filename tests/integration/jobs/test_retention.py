"""Retention: each tenant's old points are deleted, counted and exposed as a metric."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime, timedelta

from fastapi.testclient import TestClient

from conftest import new_key
from stats_service.jobs.retention import apply_retention
from stats_service.jobs.scheduler import Job, Scheduler
from stats_service.services import Services

NOW = datetime(2024, 6, 1, 0, 0)  # naive UTC, as the job gets it


def iso(days_ago: float) -> str:
    return (NOW - timedelta(days=days_ago)).isoformat() + "Z"


def ingest(client: TestClient, headers: dict[str, str], device: str, *days_ago: float) -> None:
    body = {
        "device": device,
        "points": [{"ts": iso(d), "values": {"t": float(d)}} for d in days_ago],
    }
    response = client.post("/v1/ingest", json=body, headers=headers)
    assert response.status_code == 202, response.text


def tenant(client: TestClient, admin: dict[str, str], name: str, days: int) -> dict[str, str]:
    body = {"name": name, "retention_days": days}
    assert client.post("/v1/admin/tenants", json=body, headers=admin).status_code == 201
    return new_key(client, "ingest", name)


def remaining(services: Services) -> dict[str, list[float]]:
    with services.store.reader() as cur:
        rows = cur.execute(
            "SELECT t.name, p.value FROM points p JOIN series s ON s.id = p.series_id "
            "JOIN tenants t ON t.id = s.tenant_id ORDER BY t.name, p.value"
        ).fetchall()
    out: dict[str, list[float]] = {}
    for name, value in rows:
        out.setdefault(name, []).append(value)
    return out


def test_points_older_than_each_tenants_retention_are_deleted(
    client: TestClient, services: Services, admin: dict[str, str]
) -> None:
    assert services.settings.retention_days == 30
    acme = tenant(client, admin, "acme", 7)
    globex = tenant(client, admin, "globex", 365)
    ingest(client, admin, "d", 400, 31, 30.5, 29, 1, 0)
    ingest(client, acme, "a", 29, 8, 7.01, 6.99, 1)
    ingest(client, globex, "g", 400, 364, 31)

    deleted = apply_retention(services.store, services.metrics, NOW, 24.0)

    assert deleted == {"default": 3, "acme": 3, "globex": 1}
    assert remaining(services) == {
        "acme": [1.0, 6.99],
        "default": [0.0, 1.0, 29.0],
        "globex": [31.0, 364.0],
    }
    metrics = client.get("/metrics").text
    assert 'stats_retention_deleted_points_total{tenant="default"} 3.0' in metrics
    assert 'stats_retention_deleted_points_total{tenant="acme"} 3.0' in metrics

    # a second run finds nothing more, and the counter stays
    assert apply_retention(services.store, services.metrics, NOW, 24.0) == {
        "default": 0,
        "acme": 0,
        "globex": 0,
    }
    assert 'stats_retention_deleted_points_total{tenant="acme"} 3.0' in client.get("/metrics").text


def test_retention_follows_a_patched_tenant(
    client: TestClient, services: Services, admin: dict[str, str]
) -> None:
    ingest(client, admin, "d", 20, 10, 2)
    assert apply_retention(services.store, services.metrics, NOW, 24.0) == {"default": 0}
    patch = client.patch("/v1/admin/tenants/default", json={"retention_days": 5}, headers=admin)
    assert patch.status_code == 200
    assert apply_retention(services.store, services.metrics, NOW, 24.0) == {"default": 2}
    assert remaining(services) == {"default": [2.0]}
    assert (
        'stats_retention_deleted_points_total{tenant="default"} 2.0' in client.get("/metrics").text
    )


def test_stale_idempotency_keys_are_forgotten(
    client: TestClient, services: Services, admin: dict[str, str]
) -> None:
    headers = admin | {"Idempotency-Key": "old-upload"}
    body = {"device": "d", "metrics": {"t": 1}}
    first = client.post("/v1/ingest", json=body, headers=headers)
    with services.store.reader() as cur:
        row = cur.execute("SELECT created_at FROM idempotency").fetchone()
    assert row is not None
    apply_retention(services.store, services.metrics, row[0] + timedelta(hours=23), 24.0)
    assert client.post("/v1/ingest", json=body, headers=headers).json() == first.json()
    apply_retention(services.store, services.metrics, row[0] + timedelta(hours=25), 24.0)
    with services.store.reader() as cur:
        assert cur.execute("SELECT count(*) FROM idempotency").fetchone() == (0,)


def test_scheduler_runs_jobs_and_survives_a_failing_one() -> None:
    ran = threading.Event()
    failures: list[int] = []

    def fail() -> None:
        failures.append(1)
        raise RuntimeError("boom")

    async def main() -> None:
        scheduler = Scheduler([Job("fails", 0.001, fail), Job("works", 0.001, ran.set)])
        scheduler.start()
        try:
            while not ran.is_set() or len(failures) < 2:
                await asyncio.sleep(0)  # yield to the jobs; no wall-clock wait
        finally:
            await scheduler.stop()

    asyncio.run(asyncio.wait_for(main(), 10))
    assert ran.is_set()
    assert len(failures) >= 2  # it ran again after failing
