"""The compaction job reclaims the file's free blocks after a run that compacted
something, only past both thresholds (0 turns it off), and counts what it did."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from stats_service.config import Settings
from stats_service.jobs.compaction import CompactionMetrics, Compactor
from stats_service.storage.embedded import EmbeddedStore
from stats_service.storage.partitions import day_start_us

DAY = date(2024, 3, 1)
NOW = datetime(2024, 4, 1)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EmbeddedStore]:
    """A dirty closed day of 400,000 points of 200 series in arrival order."""
    s = EmbeddedStore(tmp_path / "stats.duckdb", threads=1)
    t0 = day_start_us(DAY)
    s.create_tenant("t", retention_days=30, max_series=1000, max_batch_points=1000)
    with s.transaction() as con:
        con.execute(
            "INSERT INTO series (id, tenant_id, metric, device, tags, canonical, created_at) "
            "SELECT i, 1, 'm', 'd' || i, '{}', 'm,d' || i, TIMESTAMP '2024-01-01' "
            "FROM range(200) r(i)"
        )
        con.execute(
            f"INSERT INTO points SELECT i % 200, make_timestamp({t0} + (i // 200) * 10000000), "
            "(hash(i) % 100)::DOUBLE FROM range(400000) r(i)"
        )
        con.execute("INSERT INTO partitions VALUES (1, ?, true, 'hot', NULL)", [DAY])
    s.close()
    s = EmbeddedStore(s.path, threads=1)
    yield s
    s.close()


def compactor(
    store: EmbeddedStore, registry: CollectorRegistry, mb: float, ratio: float
) -> Compactor:
    return Compactor(
        store,
        CompactionMetrics(registry),
        timedelta(hours=1),
        store.path.parent / "cold",
        0,
        None,
        mb,
        ratio,
    )


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def test_a_run_that_compacted_reclaims_past_both_thresholds(store: EmbeddedStore) -> None:
    registry = CollectorRegistry()
    size = store.path.stat().st_size
    job = compactor(store, registry, 0.5, 0.1)
    report = job.run(NOW)
    assert report.compacted == 1
    assert report.reclaim is not None and report.reclaim.done, report.reclaim
    assert report.reclaim.bytes_before > size  # compaction had grown the file
    assert store.path.stat().st_size == report.reclaim.bytes_after < report.reclaim.bytes_before
    assert store.database_size().free_blocks == 0
    assert sample(registry, "stats_reclaim_runs_total", result="done") == 1
    assert sample(registry, "stats_reclaim_bytes_total") == report.reclaim.reclaimed_bytes > 0
    assert sample(registry, "stats_reclaim_seconds_total") > 0
    # nothing compacted: no reclaim, whatever is free
    job.reclaim_min_free_mb = job.reclaim_min_free_ratio = 0.001
    assert job.run(NOW).reclaim is None
    assert sample(registry, "stats_reclaim_runs_total", result="done") == 1


@pytest.mark.parametrize(("mb", "ratio"), [(1024.0, 0.1), (0.5, 0.99), (0.0, 0.5), (32.0, 0.0)])
def test_below_a_threshold_or_turned_off_nothing_is_rewritten(
    store: EmbeddedStore, mb: float, ratio: float
) -> None:
    registry = CollectorRegistry()
    report = compactor(store, registry, mb, ratio).run(NOW)
    assert report.compacted == 1 and report.reclaim is None
    assert store.database_size(checkpoint=True).free_blocks > 0  # nothing rewritten
    assert sample(registry, "stats_reclaim_runs_total", result="done") == 0


def test_settings_defaults_and_validation() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (settings.reclaim_min_free_mb, settings.reclaim_min_free_ratio) == (32.0, 0.5)
    with pytest.raises(ValueError):
        Settings(_env_file=None, reclaim_min_free_ratio=1.5)  # type: ignore[call-arg]
