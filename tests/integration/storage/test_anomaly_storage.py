"""Storage of anomaly scoring (schema migration 8): a version-7 database opens with the
new tables and keeps its data; models upsert on (tenant, series, detector); scores
upsert on (tenant, series, window_end) and count windows scored per tenant and day."""

from __future__ import annotations

from pathlib import Path

import duckdb

from stats_service.storage import anomaly_scores, models
from stats_service.storage.anomaly_scores import WindowScore
from stats_service.storage.embedded import EmbeddedStore
from stats_service.storage.schema import MIGRATIONS

T0 = 1_772_366_400_000_000
W = 300_000_000


def test_migration_from_version_7(tmp_path: Path) -> None:
    path = tmp_path / "v7.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
    for number, sql in enumerate(MIGRATIONS[:7], start=1):
        con.execute(sql)
        con.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [str(number)])
    con.execute(
        "INSERT INTO tenants (id, name, created_at, retention_days, max_series, "
        "max_batch_points) VALUES (nextval('tenant_ids'), 'default', now(), 30, 10, 10)"
    )
    con.execute("INSERT INTO usage VALUES (1, DATE '2026-03-01', 5, 50, 1, 0)")
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert not {"models", "anomaly_scores", "usage_analytics", "tenant_scoring"} & tables
    con.close()

    store = EmbeddedStore(path)
    try:
        with store.reader() as cur:
            version = cur.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            assert version == (str(len(MIGRATIONS)),) and len(MIGRATIONS) >= 8
            assert cur.execute("SELECT name FROM tenants").fetchall() == [("default",)]
            assert cur.execute("SELECT points FROM usage").fetchall() == [(5,)]
            assert models.tenant_interval(cur, 1) is None
        models.set_tenant_interval(store, 1, 60.0)
        with store.transaction() as con:
            anomaly_scores.upsert_scores(con, 1, 7, "robust_z", [WindowScore(T0, T0 + W, 0.5, {})])
    finally:
        store.close()
    again = EmbeddedStore(path)  # reopening runs no migration twice
    try:
        with again.reader() as cur:
            assert models.tenant_interval(cur, 1) == 60.0
            assert anomaly_scores.last_window_end(cur, 1, 7) == T0 + W
    finally:
        again.close()


def test_models_upsert_keeps_id_and_created(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "m.duckdb")
    try:
        first = models.upsert_model(
            store,
            1,
            series_id=3,
            detector="robust_z",
            params={"window_us": W},
            train_from_us=T0,
            train_to_us=T0 + W,
            path="a.json",
            metrics={"points": 10},
        )
        other = models.upsert_model(
            store,
            2,
            series_id=3,
            detector="robust_z",
            params={},
            train_from_us=T0,
            train_to_us=T0 + W,
            path="b.json",
            metrics={},
        )
        again = models.upsert_model(
            store,
            1,
            series_id=3,
            detector="robust_z",
            params={"window_us": 2 * W},
            train_from_us=T0,
            train_to_us=T0 + 4 * W,
            path="a.json",
            metrics={"points": 40},
        )
        assert again.id == first.id != other.id
        assert again.created_us == first.created_us <= again.updated_us
        assert (again.window_us, again.train_to_us, again.metrics) == (
            2 * W,
            T0 + 4 * W,
            {"points": 40},
        )
        with store.reader() as cur:
            assert [m.id for m in models.list_models(cur, 1)] == [first.id]
            assert models.get_model(cur, 2, 3, "robust_z") == other
            assert models.get_model(cur, 2, 3, "ensemble") is None
    finally:
        store.close()


def test_scores_upsert_on_window_end_and_count_usage(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "s.duckdb")
    try:
        with store.transaction() as con:
            anomaly_scores.upsert_scores(
                con,
                1,
                3,
                "robust_z",
                [
                    WindowScore(T0, T0 + W, 0.2, {"rule": "a"}),
                    WindowScore(T0 + W, T0 + 2 * W, 0.3, {}),
                ],
            )
            anomaly_scores.upsert_scores(con, 2, 3, "robust_z", [WindowScore(T0, T0 + W, 0.9, {})])
        with store.transaction() as con:
            anomaly_scores.upsert_scores(
                con, 1, 3, "ensemble", [WindowScore(T0, T0 + W, 0.95, {"rule": "b"})]
            )
        with store.reader() as cur:
            rows, cursor = anomaly_scores.list_scores(cur, 1, [3], T0, T0 + 10 * W)
            assert cursor is None
            assert [(r.window_end_us, r.score, r.detector, r.explanation) for r in rows] == [
                (T0 + W, 0.95, "ensemble", {"rule": "b"}),
                (T0 + 2 * W, 0.3, "robust_z", {}),
            ]
            high, _ = anomaly_scores.list_scores(cur, 1, [], T0, T0 + 10 * W, min_score=0.5)
            assert [r.score for r in high] == [0.95]
            page, cursor = anomaly_scores.list_scores(cur, 1, [3], T0, T0 + 10 * W, limit=1)
            assert cursor is not None and [r.score for r in page] == [0.95]
            rest, last = anomaly_scores.list_scores(
                cur, 1, [3], T0, T0 + 10 * W, limit=1, cursor=cursor
            )
            assert last is None and [r.score for r in rest] == [0.3]
            today = anomaly_scores.today()
            assert anomaly_scores.windows_scored(cur, 1, today, today) == {today: 3}
            assert anomaly_scores.windows_scored(cur, 2, today, today) == {today: 1}
    finally:
        store.close()
