"""Partitions and compaction against a real DuckDB file: the writer marks the days it
writes, compaction rewrites closed days sorted (same rows, last write wins), late data
makes a day dirty again, and the job's counters move."""

from __future__ import annotations

import random
import time
from datetime import date, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from conftest import ADMIN_KEY, make_settings
from stats_service.app import create_app
from stats_service.jobs.compaction import CompactionMetrics, Compactor
from stats_service.services import Services
from stats_service.storage.compaction import compact_partition
from stats_service.storage.partitions import Partition, list_partitions

DAY1 = date(2024, 5, 1)
DAY2 = date(2024, 5, 2)
NOW = datetime(2024, 5, 10)


def post(
    client: TestClient, admin: dict[str, str], device: str, points: list[tuple[str, float]]
) -> None:
    body = {"device": device, "points": [{"ts": t, "values": {"temp": v}} for t, v in points]}
    response = client.post("/v1/ingest", json=body, headers=admin)
    assert response.status_code == 202, response.text


def stamp(day: date, second: int) -> str:
    return (datetime(day.year, day.month, day.day) + timedelta(seconds=second)).isoformat() + "Z"


def compactor(
    services: Services, registry: CollectorRegistry | None = None, cold_after_days: int = 0
) -> Compactor:
    return Compactor(
        services.store,
        CompactionMetrics(registry or CollectorRegistry()),
        timedelta(hours=1),
        services.settings.cold_path,
        cold_after_days,
    )


def rows(services: Services, order: str = "series_id, ts") -> list[tuple[int, datetime, float]]:
    with services.store.reader() as cur:
        return [
            (int(a), b, float(c))
            for a, b, c in cur.execute(
                f"SELECT series_id, ts, value FROM points ORDER BY {order}"
            ).fetchall()
        ]


def by_day(points: list[tuple[int, datetime, float]]) -> list[tuple[int, datetime, float]]:
    """The stored order after compaction: day by day, series by series, time running
    backward in the 1st, 3rd, ... series of the day and forward in the others."""
    out: list[tuple[int, datetime, float]] = []
    for day in sorted({p[1].date() for p in points}):
        ids = sorted({p[0] for p in points if p[1].date() == day})
        for rank, sid in enumerate(ids, start=1):
            run = sorted(
                (p for p in points if p[0] == sid and p[1].date() == day), key=lambda p: p[1]
            )
            out += run[::-1] if rank % 2 else run
    return out


def fill(client: TestClient, admin: dict[str, str], n: int = 200, seed: int = 1) -> None:
    """Requests interleaving 4 devices and two days, in shuffled time order."""
    rng = random.Random(seed)
    seconds = list(range(0, n * 60, 60))
    rng.shuffle(seconds)
    for chunk in range(0, n, 50):
        for dev in ("a", "b", "c", "d"):
            for day in (DAY1, DAY2):
                post(
                    client,
                    admin,
                    dev,
                    [(stamp(day, s), float(s % 97)) for s in seconds[chunk : chunk + 50]],
                )


def test_writer_marks_each_day_it_writes_dirty(
    client: TestClient, services: Services, admin: dict[str, str]
) -> None:
    post(client, admin, "a", [(stamp(DAY1, 10), 1.0), (stamp(DAY2, 86_399), 2.0)])
    tenant = services.store.get_tenant("default")
    assert tenant is not None
    with services.store.reader() as cur:
        parts = list_partitions(cur, tenant.id)
    assert parts == [
        Partition(tenant.id, DAY1, True, "hot"),
        Partition(tenant.id, DAY2, True, "hot"),
    ]


def test_compaction_keeps_the_rows_and_groups_them_by_series(
    client: TestClient, services: Services, admin: dict[str, str]
) -> None:
    fill(client, admin)
    before = rows(services)
    assert len(before) == 2 * 4 * 200
    assert rows(services, "rowid") != before  # arrival order is not sorted
    report = compactor(services).run(NOW)
    assert report.compacted == 2 and report.rows == len(before)
    assert rows(services) == before
    assert rows(services, "rowid") == by_day(before)  # stored by series, day by day
    with services.store.reader() as cur:
        assert not any(p.dirty for p in list_partitions(cur))
    assert compactor(services).run(NOW).compacted == 0  # nothing left to do


def test_a_day_is_rewritten_a_chunk_of_series_at_a_time(
    client: TestClient, services: Services, admin: dict[str, str]
) -> None:
    fill(client, admin)  # 4 series of 200 points a day
    before = rows(services)
    with services.store.reader() as cur:
        day1 = next(p for p in list_partitions(cur) if p.day == DAY1)
    done = compact_partition(services.store, day1, NOW, chunk_rows=250)  # 4 chunks
    assert done.rows_after == 4 * 200
    assert rows(services) == before
    with services.store.reader() as cur:
        stored = cur.execute(
            "SELECT series_id FROM points WHERE ts::DATE = ? ORDER BY rowid", [DAY1]
        ).fetchall()
        assert [p.dirty for p in list_partitions(cur) if p.day == DAY1] == [False]
    runs = [sid for i, (sid,) in enumerate(stored) if i == 0 or stored[i - 1][0] != sid]
    assert len(runs) == 4  # every series' rows of the day are together


def test_open_partitions_wait_for_the_delay(
    client: TestClient, services: Services, admin: dict[str, str]
) -> None:
    post(client, admin, "a", [(stamp(DAY1, 10), 1.0), (stamp(DAY2, 10), 2.0)])
    end_of_day2 = datetime(2024, 5, 3)
    report = compactor(services).run(end_of_day2 + timedelta(minutes=59))
    assert report.days == [f"1/{DAY1.isoformat()}"]
    assert compactor(services).run(end_of_day2 + timedelta(hours=1)).days == [
        f"1/{DAY2.isoformat()}"
    ]


def test_compaction_keeps_the_last_written_of_duplicates(
    client: TestClient, services: Services, admin: dict[str, str]
) -> None:
    post(client, admin, "a", [(stamp(DAY1, 10), 1.0), (stamp(DAY1, 20), 2.0)])
    sid, ts, _ = rows(services)[0]
    with services.store.transaction() as con:  # duplicates the writer itself never leaves
        con.execute("INSERT INTO points VALUES (?, ?, 5.0), (?, ?, 6.0)", [sid, ts, sid, ts])
    compactor(services).run(NOW)
    assert [(r[1], r[2]) for r in rows(services)] == [(ts, 6.0), (ts + timedelta(seconds=10), 2.0)]


def test_late_data_makes_a_compacted_day_dirty_and_is_recompacted(
    client: TestClient, services: Services, admin: dict[str, str]
) -> None:
    fill(client, admin, n=50)
    compactor(services).run(NOW)
    post(client, admin, "a", [(stamp(DAY1, 30), -1.0), (stamp(DAY1, 60), -2.0)])  # new + replaced
    with services.store.reader() as cur:
        dirty = [p.day for p in list_partitions(cur) if p.dirty]
    assert dirty == [DAY1]
    expected = rows(services)
    assert len(expected) == 2 * 4 * 50 + 1
    report = compactor(services).run(NOW)
    assert report.days == [f"1/{DAY1.isoformat()}"]
    assert rows(services) == expected
    assert rows(services, "ts::DATE, rowid") == by_day(expected)


def test_counters_are_registered_and_counted(
    client: TestClient, services: Services, admin: dict[str, str]
) -> None:
    text = client.get("/metrics", headers=admin).text
    assert "stats_compaction_rows_total 0.0" in text  # the app's job registered its counters
    registry = CollectorRegistry()
    fill(client, admin, n=50)
    compactor(services, registry).run(NOW)
    assert registry.get_sample_value("stats_compaction_rows_total") == 400
    assert registry.get_sample_value("stats_compaction_partitions_total", {"tier": "hot"}) == 2


def test_the_app_runs_the_job_on_its_interval(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, compaction_interval_s=0.05, compaction_delay_s=0.0)
    with TestClient(create_app(settings)) as client:
        services: Services = client.app.state.services  # type: ignore[attr-defined]
        post(client, {"X-API-Key": ADMIN_KEY}, "a", [(stamp(DAY1, 10), 1.0)])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with services.store.reader() as cur:
                parts = list_partitions(cur)
            if parts and not parts[0].dirty:
                break
            time.sleep(0.02)  # polling the job's result, bounded by the deadline
        assert [(p.day, p.dirty) for p in parts] == [(DAY1, False)]
        text = client.get("/metrics", headers={"X-API-Key": ADMIN_KEY}).text
        assert 'stats_compaction_partitions_total{tier="hot"} 1.0' in text
