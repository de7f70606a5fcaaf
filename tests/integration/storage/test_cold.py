"""The cold tier against a real DuckDB file and real Parquet files: old days move to one
file per tenant and day, reads through the HTTP API answer the same before and after,
a late write into a cold day wins over the file and is re-exported, retention deletes
whole cold days, and start-up removes what an interrupted move left behind."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from conftest import new_key, new_tenant
from stats_service.jobs.compaction import CompactionMetrics, Compactor
from stats_service.jobs.retention import apply_retention
from stats_service.services import Services
from stats_service.storage import cold
from stats_service.storage.partitions import list_partitions

NOW = datetime(2024, 5, 20)
DAYS = (date(2024, 5, 1), date(2024, 5, 2), date(2024, 5, 18))  # two cold, one hot
SPAN = {"from": "2024-04-30T00:00:00Z", "to": "2024-05-20T00:00:00Z"}


def stamp(day: date, second: int) -> str:
    return (datetime(day.year, day.month, day.day) + timedelta(seconds=second)).isoformat() + "Z"


def post(
    client: TestClient, headers: dict[str, str], device: str, points: list[tuple[str, float]]
) -> None:
    body = {"device": device, "points": [{"ts": t, "values": {"temp": v}} for t, v in points]}
    response = client.post("/v1/ingest", json=body, headers=headers)
    assert response.status_code == 202, response.text


def fill(client: TestClient, headers: dict[str, str]) -> None:
    for day in DAYS:
        for dev in ("a", "b"):
            post(
                client,
                headers,
                dev,
                [(stamp(day, s), float((s * 7) % 101) + 0.25) for s in range(0, 86_400, 900)],
            )


def compactor(services: Services, registry: CollectorRegistry | None = None) -> Compactor:
    return Compactor(
        services.store,
        CompactionMetrics(registry or CollectorRegistry()),
        timedelta(hours=1),
        services.settings.cold_path,
        cold_after_days=7,
    )


def series_ids(client: TestClient, headers: dict[str, str]) -> list[str]:
    response = client.get("/v1/series", params={"metric": "temp"}, headers=headers)
    assert response.status_code == 200, response.text
    return sorted(s["id"] for s in response.json()["items"])


def rounded(value: Any) -> Any:
    """Floats to 9 significant digits: sums in another order differ in the last bits."""
    if isinstance(value, float):
        return float(f"{value:.9g}")
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return value


def reads(client: TestClient, headers: dict[str, str]) -> dict[str, Any]:
    """Every read endpoint over the whole span (statistics rounded, see `rounded`)."""
    ids = series_ids(client, headers)
    out: dict[str, Any] = {}
    for sid in ids:
        pts = client.get(
            f"/v1/series/{sid}/points", params={**SPAN, "limit": 100_000}, headers=headers
        )
        agg = client.get(
            f"/v1/series/{sid}/aggregate",
            params={**SPAN, "bucket": "6h", "fn": "mean,max,count"},
            headers=headers,
        )
        assert pts.status_code == 200 and agg.status_code == 200, (pts.text, agg.text)
        out[f"points {sid}"] = pts.json()
        out[f"aggregate {sid}"] = rounded(agg.json())
    stats = client.get("/v1/stats", params={**SPAN, "metric": "temp"}, headers=headers)
    assert stats.status_code == 200, stats.text
    out["stats"] = rounded(stats.json())
    for fmt in ("csv", "ndjson"):
        export = client.get(
            "/v1/export", params={**SPAN, "metric": "temp", "format": fmt}, headers=headers
        )
        assert export.status_code == 200, export.text
        out[f"export {fmt}"] = export.text
    return out


def test_old_days_move_to_parquet_and_reads_do_not_change(
    client: TestClient, services: Services, admin: dict[str, str]
) -> None:
    fill(client, admin)
    before = reads(client, admin)
    assert len(before["points " + series_ids(client, admin)[0]]["t"]) == 3 * 96
    registry = CollectorRegistry()
    report = compactor(services, registry).run(NOW)
    assert report.moved == 2 and report.compacted == 1
    root = services.settings.cold_path.resolve()
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))
    assert files == [
        "tenant=1",
        "tenant=1/day=2024-05-01.parquet",
        "tenant=1/day=2024-05-02.parquet",
    ]
    table = pq.read_table(root / "tenant=1" / "day=2024-05-01.parquet")
    assert table.num_rows == 2 * 96
    assert (
        pq.ParquetFile(root / "tenant=1" / "day=2024-05-01.parquet")
        .metadata.row_group(0)
        .column(0)
        .compression
        == "ZSTD"
    )
    keys = list(zip(table["series_id"].to_pylist(), table["ts"].to_pylist(), strict=True))
    assert keys == sorted(keys)
    with services.store.reader() as cur:
        hot = cur.execute("SELECT count(*) FROM points").fetchall()[0][0]
        tiers = {p.day: p.tier for p in list_partitions(cur)}
    assert hot == 2 * 96  # only the recent day is still in the table
    assert tiers == {DAYS[0]: "cold", DAYS[1]: "cold", DAYS[2]: "hot"}
    assert reads(client, admin) == before
    unbounded = client.get("/v1/export", params={"metric": "temp", "format": "csv"}, headers=admin)
    assert unbounded.status_code == 200, unbounded.text
    assert len(unbounded.text.splitlines()) == 1 + 2 * 3 * 96  # header + long rows, cold + hot
    assert registry.get_sample_value("stats_cold_files_total") == 2
    assert registry.get_sample_value("stats_cold_rows_total") == 4 * 96
    assert registry.get_sample_value("stats_cold_bytes_total") == sum(
        p.stat().st_size for p in root.rglob("*.parquet")
    )


def test_a_late_write_into_a_cold_day_wins_and_is_re_exported(
    client: TestClient, services: Services, admin: dict[str, str]
) -> None:
    fill(client, admin)
    compactor(services).run(NOW)
    post(
        client, admin, "a", [(stamp(DAYS[0], 0), -5.0), (stamp(DAYS[0], 30), -6.0)]
    )  # replace + new
    sid = series_ids(client, admin)
    got = [
        client.get(
            f"/v1/series/{s}/points", params={**SPAN, "limit": 100_000}, headers=admin
        ).json()
        for s in sid
    ]
    a = next(g for g in got if -5.0 in g["value"])
    assert len(a["t"]) == 3 * 96 + 1 and a["value"][:2] == [-5.0, -6.0]  # one value per time
    stats = client.get(
        "/v1/stats", params={**SPAN, "metric": "temp", "device": "a"}, headers=admin
    ).json()
    assert stats["series"][0]["count"] == 3 * 96 + 1 and stats["series"][0]["min"] == -6.0
    before = reads(client, admin)
    with services.store.reader() as cur:
        assert [p.day for p in list_partitions(cur) if p.dirty] == [DAYS[0]]
    report = compactor(services).run(NOW)
    assert report.moved == 1
    with services.store.reader() as cur:
        hot_in_cold_day = cur.execute(
            "SELECT count(*) FROM points WHERE ts < '2024-05-02'"
        ).fetchall()[0][0]
    assert hot_in_cold_day == 0
    root = services.settings.cold_path.resolve()
    assert pq.read_table(root / "tenant=1" / "day=2024-05-01.parquet").num_rows == 2 * 96 + 1
    assert reads(client, admin) == before


def test_cold_files_belong_to_their_tenant(
    client: TestClient, services: Services, admin: dict[str, str]
) -> None:
    new_tenant(client, "acme")
    acme = new_key(client, "admin", "acme")
    fill(client, admin)
    post(client, acme, "x", [(stamp(DAYS[0], 60), 1.5)])
    compactor(services).run(NOW)
    root = services.settings.cold_path.resolve()
    assert sorted(p.name for p in root.iterdir()) == ["tenant=1", "tenant=2"]
    assert pq.read_table(root / "tenant=2" / "day=2024-05-01.parquet").num_rows == 1
    mine = reads(client, acme)
    assert mine["stats"]["series"][0]["count"] == 1
    assert all(
        client.get(f"/v1/series/{s}/points", headers=acme).status_code == 404
        for s in series_ids(client, admin)
    )


def test_retention_deletes_whole_cold_days(
    client: TestClient, services: Services, admin: dict[str, str]
) -> None:
    fill(client, admin)
    compactor(services).run(NOW)
    services.store.update_tenant("default", retention_days=18)  # cutoff 2024-05-02 00:00
    deleted = apply_retention(services.store, services.metrics, NOW, 24.0)
    assert deleted["default"] == 2 * 96
    root = services.settings.cold_path.resolve()
    assert sorted(p.name for p in (root / "tenant=1").iterdir()) == ["day=2024-05-02.parquet"]
    with services.store.reader() as cur:
        assert [r[0] for r in cur.execute("SELECT day FROM cold_files").fetchall()] == [DAYS[1]]
    stats = client.get("/v1/stats", params={**SPAN, "metric": "temp"}, headers=admin).json()
    assert [s["count"] for s in stats["series"]] == [2 * 96, 2 * 96]


def test_retention_trims_the_cold_day_the_cutoff_falls_in(
    client: TestClient, services: Services, admin: dict[str, str]
) -> None:
    fill(client, admin)
    compactor(services).run(NOW)
    services.store.update_tenant("default", retention_days=18)
    later = NOW + timedelta(hours=12)  # cutoff 2024-05-02 12:00
    deleted = apply_retention(services.store, services.metrics, later, 24.0)
    assert deleted["default"] == 2 * 96 + 2 * 48
    trimmed = pq.read_table(
        services.settings.cold_path.resolve() / "tenant=1" / "day=2024-05-02.parquet"
    )
    assert trimmed.num_rows == 2 * 48
    assert min(trimmed["ts"].to_pylist()) == datetime(2024, 5, 2, 12)
    stats = client.get("/v1/stats", params={**SPAN, "metric": "temp"}, headers=admin).json()
    assert [s["count"] for s in stats["series"]] == [48 + 96, 48 + 96]
    with services.store.reader() as cur:
        assert cur.execute("SELECT rows FROM cold_files").fetchall() == [(2 * 48,)]
    assert apply_retention(services.store, services.metrics, later, 24.0)["default"] == 0


def test_reconcile_removes_leftovers_of_an_interrupted_move(
    client: TestClient, services: Services, admin: dict[str, str]
) -> None:
    fill(client, admin)
    compactor(services).run(NOW)
    root = services.settings.cold_path.resolve()
    kept = root / "tenant=1" / "day=2024-05-01.parquet"
    orphan = root / "tenant=1" / "day=2024-04-01.parquet"  # renamed, catalog row never committed
    partial = root / "tenant=1" / "day=2024-04-02.parquet.tmp"  # crashed while writing
    orphan.write_bytes(kept.read_bytes())
    partial.write_bytes(b"PAR1")
    assert cold.reconcile(services.store, services.settings.cold_path) == {
        "removed": 2,
        "missing": 0,
    }
    assert sorted(p.name for p in (root / "tenant=1").iterdir()) == [
        "day=2024-05-01.parquet",
        "day=2024-05-02.parquet",
    ]


def test_settings_default_to_a_cold_dir_under_the_data_dir(
    services: Services, tmp_path: Path
) -> None:
    assert services.settings.cold_after_days == 0
    assert services.settings.cold_path == services.settings.data_dir / "cold"
