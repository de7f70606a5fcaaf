"""Giving the DuckDB file's free blocks back (`EmbeddedStore.reclaim`) against real
files: everything survives the copy (rows, keys, sequences, views, macros, indexes),
readers and writers that arrive meanwhile wait and then work, a reader that stays open
makes it give up without harm, a copy left by a crash is removed at open, and a day of
shuffled points is smaller on disk after compaction and reclaim, still sorted."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import duckdb
import pytest

from stats_service.storage.compaction import compact_partition
from stats_service.storage.embedded import RECLAIM_SUFFIX, EmbeddedStore
from stats_service.storage.partitions import Partition, day_start_us

DAY = date(2024, 3, 1)


OPENED: list[EmbeddedStore] = []


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EmbeddedStore]:
    yield reopen(tmp_path / "stats.duckdb")
    while OPENED:
        OPENED.pop().close()


def reopen(where: EmbeddedStore | Path) -> EmbeddedStore:
    """Open the store's file (closing the given store first: a checkpoint)."""
    if isinstance(where, EmbeddedStore):
        where.close()
        where = where.path
    OPENED.append(EmbeddedStore(where, threads=1))
    return OPENED[-1]


def fill(store: EmbeddedStore, series: int, points: int) -> None:
    """A tenant, `series` series and `points` points of DAY in arrival order, written
    so that later deletes leave free blocks."""
    t0 = day_start_us(DAY)
    store.create_tenant("t", retention_days=30, max_series=100_000, max_batch_points=1000)
    with store.transaction() as con:
        con.execute(
            "INSERT INTO series (id, tenant_id, metric, device, tags, canonical, created_at) "
            "SELECT i, 1, 'm', 'd' || i, '{}', 'm,d' || i, TIMESTAMP '2024-01-01' "
            "FROM range(?) r(i)",
            [series],
        )
        con.execute(
            f"INSERT INTO points SELECT i % {series}, "
            f"make_timestamp({t0} + (i // {series}) * 10000000), "
            "((hash(i) % 1000) / 10.0)::DOUBLE FROM range(?) r(i)",
            [points],
        )
        con.execute("INSERT INTO partitions VALUES (1, ?, true, 'hot', NULL)", [DAY])


def contents(store: EmbeddedStore) -> dict[str, object]:
    """Every table's rows (a checksum for the big ones)."""
    found: dict[str, object] = {}
    with store.reader() as cur:
        tables = [r[0] for r in cur.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
        for table in tables:
            if table in ("points", "states"):
                found[table] = cur.execute(
                    f"SELECT count(*), sum(hash(series_id, ts, value)) FROM {table}"
                ).fetchall()
            elif table != "meta":  # meta gains the reclaim marker
                found[table] = sorted(map(repr, cur.execute(f"SELECT * FROM {table}").fetchall()))
    return found


def test_reclaim_keeps_rows_keys_sequences_and_objects(store: EmbeddedStore) -> None:
    fill(store, 100, 300_000)
    store.create_tenant("u", retention_days=30, max_series=10, max_batch_points=10)
    with store.transaction() as con:
        con.execute("DELETE FROM points WHERE series_id % 4 <> 0")  # free blocks
        con.execute("CREATE VIEW recent AS SELECT * FROM points WHERE ts > '2024-03-01 06:00'")
        con.execute("CREATE MACRO doubled(x) AS x * 2")
        con.execute("CREATE INDEX series_metric ON series (metric)")
        con.execute("CREATE SEQUENCE spare START 100")  # never used: next is its start
    store = reopen(store)
    before = contents(store)
    size = store.database_size()
    assert size.free_blocks > 0

    report = store.reclaim()

    assert report.done, report.status
    assert report.free_blocks_before == size.free_blocks
    assert report.bytes_after < report.bytes_before == size.file_bytes
    assert store.path.stat().st_size == report.bytes_after
    assert not Path(str(store.path) + RECLAIM_SUFFIX).exists()
    assert contents(store) == before
    with store.reader() as cur:
        assert cur.execute("SELECT doubled(21)").fetchall() == [(42,)]
        assert cur.execute("SELECT count(*) FROM recent").fetchall()[0][0] > 0
        indexes = {r[0] for r in cur.execute("SELECT index_name FROM duckdb_indexes()").fetchall()}
        assert "series_metric" in indexes
        assert cur.execute("SELECT nextval('spare')").fetchall() == [(100,)]
    # keys still conflict, and the tenant sequence does not hand out an old id again
    with pytest.raises(duckdb.ConstraintException), store.transaction() as con:
        con.execute(
            "INSERT INTO tenants VALUES (1, 'again', TIMESTAMP '2024-01-01', 1, 1, 1, false, false)"
        )
    with pytest.raises(duckdb.ConstraintException), store.transaction() as con:
        con.execute(
            "INSERT INTO tenants VALUES (99, 'u', TIMESTAMP '2024-01-01', 1, 1, 1, false, false)"
        )
    with pytest.raises(duckdb.ConstraintException), store.transaction() as con:
        con.execute(
            "INSERT INTO series (id, tenant_id, metric, tags, canonical, created_at) "
            "VALUES (4, 1, 'x', '{}', 'x', TIMESTAMP '2024-01-01')"
        )
    assert store.create_tenant("v", retention_days=1, max_series=1, max_batch_points=1).id == 3
    # and the new file is what the next open sees
    store = reopen(store)
    after = contents(store)
    assert {k: v for k, v in after.items() if k != "tenants"} == {
        k: v for k, v in before.items() if k != "tenants"
    }


def test_reclaim_of_a_fresh_store_keeps_the_sequence_start(store: EmbeddedStore) -> None:
    assert store.reclaim().done
    assert store.create_tenant("t", retention_days=1, max_series=1, max_batch_points=1).id == 1
    assert store.reclaim().done
    assert store.create_tenant("u", retention_days=1, max_series=1, max_batch_points=1).id == 2


def wait_until_gate_shut(store: EmbeddedStore) -> None:
    gate = store._readers
    with gate._cond:
        gate._cond.wait_for(lambda: gate._shut)


def test_readers_and_writers_arriving_during_reclaim_wait_and_then_work(
    store: EmbeddedStore,
) -> None:
    fill(store, 10, 10_000)
    results: dict[str, object] = {}
    errors: list[BaseException] = []

    def later_read() -> None:
        try:
            with store.reader() as cur:
                results["read"] = cur.execute("SELECT count(*) FROM points").fetchall()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def later_write() -> None:
        try:
            with store.transaction() as con:
                con.execute("INSERT INTO points VALUES (1, TIMESTAMP '2024-03-02', 7.0)")
            results["write"] = True
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    reclaimer = threading.Thread(
        target=lambda: results.update(report=store.reclaim(busy_timeout_s=600))
    )
    with store.reader() as cur:  # in flight when the reclaim starts
        reclaimer.start()
        wait_until_gate_shut(store)  # it holds the write lock and waits for this reader
        threads = [threading.Thread(target=later_read), threading.Thread(target=later_write)]
        for t in threads:
            t.start()
        first = cur.execute("SELECT count(*) FROM points").fetchall()
        assert "read" not in results and "write" not in results
    reclaimer.join()
    for t in threads:
        t.join()
    assert not errors, errors
    assert results["report"].done  # type: ignore[attr-defined]
    assert first == [(10_000,)]
    assert results["read"] in ([(10_000,)], [(10_001,)])  # either may go first after it
    assert results["write"] is True
    store = reopen(store)
    with store.reader() as cur:
        assert cur.execute("SELECT count(*) FROM points").fetchall() == [(10_001,)]


def test_a_reader_that_stays_open_makes_reclaim_give_up(store: EmbeddedStore) -> None:
    fill(store, 10, 10_000)
    size = store.path.stat().st_size
    with store.reader() as cur:
        report = store.reclaim(busy_timeout_s=0.05)
        assert report.status == "skipped: busy"
        assert cur.execute("SELECT count(*) FROM points").fetchall() == [(10_000,)]
        with store.reader() as other:  # the gate is open again
            assert other.execute("SELECT count(*) FROM series").fetchall() == [(10,)]
    assert store.path.stat().st_size == size
    assert store.reclaim().done


def test_a_failed_copy_keeps_the_old_file(store: EmbeddedStore) -> None:
    fill(store, 10, 10_000)
    blocker = Path(str(store.path) + RECLAIM_SUFFIX)
    blocker.mkdir()  # the copy cannot be created
    (blocker / "x").write_text("x")
    report = store.reclaim()
    assert report.status.startswith("aborted"), report.status
    with store.transaction() as con:
        con.execute("INSERT INTO points VALUES (1, TIMESTAMP '2024-03-02', 7.0)")
    with store.reader() as cur:
        assert cur.execute("SELECT count(*) FROM points").fetchall() == [(10_001,)]


def test_a_copy_left_by_a_crash_is_removed_at_open(tmp_path: Path) -> None:
    db = tmp_path / "stats.duckdb"
    EmbeddedStore(db, threads=1).close()
    leftover = duckdb.connect(str(db) + RECLAIM_SUFFIX)  # a half-made copy and its WAL
    leftover.execute("CREATE TABLE half (x INTEGER)")
    leftover.close()
    Path(str(db) + RECLAIM_SUFFIX + ".wal").write_bytes(b"partial")
    store = EmbeddedStore(db, threads=1)
    try:
        assert sorted(p.name for p in tmp_path.iterdir()) == ["stats.duckdb"]
        assert store.list_tenants() == []
    finally:
        store.close()


def test_compacted_day_is_smaller_on_disk_and_stays_sorted(store: EmbeddedStore) -> None:
    series, points = 500, 1_000_000
    fill(store, series, points)
    store = reopen(store)
    compact_partition(store, Partition(1, DAY, True, "hot"), datetime(2024, 4, 1))
    store = reopen(store)
    before = store.database_size()
    used = before.used_blocks * before.block_size
    assert before.free_bytes > used / 2  # the arrival-order rows' blocks

    report = store.reclaim()

    assert report.done
    after = store.database_size()
    assert after.free_blocks == 0
    # the copy is as compact as the used blocks were: the sorted order survived
    assert report.bytes_after <= used + 2 * before.block_size
    assert report.bytes_after < before.file_bytes * 0.7
    with store.reader() as cur:
        runs = cur.execute(
            "SELECT count(*) FROM (SELECT series_id, lag(series_id) OVER (ORDER BY rowid) "
            "AS prev FROM points) WHERE prev IS DISTINCT FROM series_id"
        ).fetchall()[0][0]
        total = cur.execute("SELECT count(*), count(DISTINCT (series_id, ts)) FROM points")
        assert total.fetchall() == [(points, points)]
    assert runs == series  # one run of rows per series, in storage order
