"""kill -9 during compaction and during a move to the cold tier loses nothing and
duplicates nothing.

A child process opens the store and compacts (or exports) a partition of a million
points over and over; the parent SIGKILLs it at a random moment, reopens the file (DuckDB
replays its WAL), runs the start-up reconciliation, and checks through the read relation
(hot table + cold files) the count, the sum and the uniqueness of (series_id, ts)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest

from stats_service.storage import cold
from stats_service.storage.embedded import EmbeddedStore
from stats_service.storage.partitions import day_start_us
from stats_service.storage.sources import points_source

pytestmark = [pytest.mark.e2e]

DAY = date(2024, 3, 1)
SERIES = 500

CHILD = """
import sys
from datetime import datetime
from pathlib import Path
from stats_service.storage.cold import export_partition
from stats_service.storage.compaction import compact_partition
from stats_service.storage.embedded import EmbeddedStore
from stats_service.storage.partitions import Partition
db, cold_dir, mode = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
store = EmbeddedStore(db)
part = Partition(1, datetime(2024, 3, 1).date(), True, "hot")
print("ready", flush=True)
while True:
    if mode == "compact":
        compact_partition(store, part, datetime(2024, 4, 1), chunk_rows=100_000)
    else:
        export_partition(store, cold_dir, part, datetime(2024, 4, 1))
    print("rewritten", flush=True)
    with store.transaction() as con:  # dirty again, so the next loop rewrites it again
        con.execute("UPDATE partitions SET dirty = true")
"""


def build(db: Path, points: int) -> None:
    """One tenant, SERIES series, `points` points of one day in arrival order."""
    store = EmbeddedStore(db)
    t0 = day_start_us(DAY)
    step = 86_400_000_000 // (points // SERIES)
    with store.transaction() as con:
        con.execute(
            "INSERT INTO tenants (id, name, created_at, retention_days, max_series, "
            "max_batch_points) VALUES (1, 't', TIMESTAMP '2024-01-01', 30, 100000, 100000)"
        )
        con.execute(
            "INSERT INTO series (id, tenant_id, metric, device, tags, canonical, created_at) "
            "SELECT i * 7919 + 3, 1, 'm', 'd' || i, '{}', 'm,d' || i, TIMESTAMP '2024-01-01' "
            "FROM range(?) r(i)",
            [SERIES],
        )
        con.execute(
            f"INSERT INTO points SELECT (i % {SERIES}) * 7919 + 3, "
            f"make_timestamp({t0} + (i // {SERIES}) * {step}), (i * 37 % 1000) / 8.0 "
            "FROM range(?) r(i)",
            [points],
        )
        con.execute("INSERT INTO partitions VALUES (1, ?, true, 'hot', NULL)", [DAY])
    store.close()


def snapshot(store: EmbeddedStore) -> tuple[int, float, int]:
    """(rows, sum of values, distinct (series_id, ts)) as reads see them."""
    with store.reader() as cur:
        source = points_source(cur, 1, day_start_us(DAY), day_start_us(DAY) + 86_400_000_000)
        row = cur.execute(
            f"SELECT count(*), sum(value), count(DISTINCT (series_id, ts)) FROM {source}"
        ).fetchall()[0]
    return int(row[0]), float(row[1]), int(row[2])


def kill_at_random(
    db: Path, cold_dir: Path, mode: str, rng: random.Random, after_rewrite: bool = False
) -> None:
    """SIGKILL the compacting child at a random moment; with `after_rewrite`, a random
    moment after its first committed rewrite (however long a loaded machine takes)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db), str(cold_dir), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == b"ready"
        while after_rewrite:  # log lines come on stdout too
            line = child.stdout.readline()
            assert line, "the compacting child died by itself"
            after_rewrite = line.strip() != b"rewritten"
        time.sleep(rng.uniform(0.0, 1.2))  # the moment of the crash, not a wait for a state
        assert child.poll() is None, "the compacting child died by itself"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        if child.stdout is not None:
            child.stdout.close()


def late_rows(store: EmbeddedStore, rng: random.Random) -> None:
    """Late writes into the (cold) day, as the writer makes them: replace and add."""
    t0 = day_start_us(DAY)
    sid = rng.randrange(SERIES) * 7919 + 3
    with store.transaction() as con:
        first = con.execute(
            "SELECT ts FROM points WHERE series_id = ? ORDER BY ts LIMIT 1", [sid]
        ).fetchall()
        if first:  # still hot: replace like the writer does
            con.execute("DELETE FROM points WHERE series_id = ? AND ts = ?", [sid, first[0][0]])
        con.execute(
            "INSERT INTO points VALUES (?, make_timestamp(?::BIGINT), -1.0), "
            "(?, make_timestamp(?::BIGINT), -2.0)",
            [sid, t0, sid, t0 + rng.randrange(1, 1000)],
        )
        con.execute("UPDATE partitions SET dirty = true")


@pytest.mark.parametrize("mode", ["compact", "cold"])
def test_kill_9_during_rewrite_loses_and_duplicates_nothing(tmp_path: Path, mode: str) -> None:
    db, cold_dir = tmp_path / "stats.duckdb", tmp_path / "cold"
    build(db, 1_000_000 if mode == "compact" else 400_000)
    rng = random.Random(20240301 if mode == "compact" else 4)
    store = EmbeddedStore(db)
    expected = snapshot(store)
    assert expected[0] == expected[2]
    store.close()
    rewritten = 0
    rounds = 5 if mode == "compact" else 4
    for round_ in range(rounds):
        # the last kill always comes after a committed rewrite, even on a slow machine
        kill_at_random(db, cold_dir, mode, rng, after_rewrite=round_ == rounds - 1)
        store = EmbeddedStore(db)
        try:
            cold.reconcile(store, cold_dir)
            got = snapshot(store)
            assert got[0] == expected[0] and got[2] == expected[0], (got, expected)
            assert got[1] == pytest.approx(expected[1], rel=1e-12)
            with store.reader() as cur:
                clean = cur.execute("SELECT compacted_at IS NOT NULL FROM partitions").fetchall()[
                    0
                ][0]
            rewritten += bool(clean)
            if mode == "cold":
                with store.reader() as cur:
                    files = cur.execute("SELECT path FROM cold_files").fetchall()
                assert all(Path(p).is_file() for (p,) in files)
                assert sorted(cold_dir.rglob("*.tmp")) == []
                late_rows(store, rng)  # the next round re-exports over an existing file
                expected = snapshot(store)
        finally:
            store.close()
    assert rewritten >= 1  # at least one kill came after a committed rewrite
