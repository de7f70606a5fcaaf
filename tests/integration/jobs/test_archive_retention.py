"""The retention job deletes whole days of the raw archive older than its retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from stats_service.jobs.retention import apply_retention
from stats_service.services import Services


def archived_keys(services: Services) -> list[str]:
    return list(services.archive.keys("raw/"))


def test_archive_days_past_retention_are_deleted_and_counted(
    client: TestClient, services: Services, admin: dict[str, str]
) -> None:
    assert services.settings.archive_retention_days == 7
    body = {"device": "d", "metrics": {"t": 1.0}}
    assert client.post("/v1/ingest", json=body, headers=admin).status_code == 202
    assert archived_keys(services)
    today = datetime.now(UTC).replace(tzinfo=None)

    def run(now: datetime, days: int) -> None:
        apply_retention(services.store, services.metrics, now, 24.0, None, services.archive, days)

    run(today + timedelta(days=7), 7)  # today is exactly 7 days old: kept
    assert archived_keys(services)
    run(today + timedelta(days=8), 0)  # 0 keeps the archive forever
    assert archived_keys(services)
    run(today + timedelta(days=8), 7)
    assert archived_keys(services) == []
    metrics = client.get("/metrics").text
    assert "stats_archive_deleted_objects_total 1.0" in metrics
    # the points themselves are the store's business, not the archive's
    with services.store.reader() as cur:
        assert cur.execute("SELECT count(*) FROM points").fetchone() == (1,)
