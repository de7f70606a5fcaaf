"""kill -9 of a real `stats-service serve` while it reclaims the database file's free
blocks loses nothing and duplicates nothing; `stats-service db reclaim` on a stopped
server shrinks the file.

The data dir holds a dirty closed day of a million points in arrival order. The server
runs the compaction job every half second with tiny reclaim thresholds, so every start
compacts the day and then rewrites the file. The test waits until the copy
(`stats.duckdb.reclaim`) appears and SIGKILLs the server a random moment later (during
the copy, its checks or the swap; every other round just after the swap), reopens the
file offline, checks the day (count, sum, uniqueness of (series, ts)) and marks it dirty
again for the next round. Clients post points all along and retry until acknowledged;
in the end each acknowledged point is stored exactly once."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest

from stats_service.storage.embedded import RECLAIM_SUFFIX, EmbeddedStore
from stats_service.storage.partitions import day_start_us

from .conftest import ServerFactory
from .harness import Feeder, ServerProcess, assert_exactly_once, run_cli, stored_points

pytestmark = [pytest.mark.e2e]

DAY = date(2024, 3, 1)
SERIES, POINTS = 500, 1_000_000
FIRST_ID = 10**12
KILLS = 6
SEED = int(time.time())
ENV = {
    "STATS_COMPACTION_INTERVAL_S": "0.5",
    "STATS_COMPACTION_DELAY_S": "0",
    "STATS_RECLAIM_MIN_FREE_MB": "0.01",
    "STATS_RECLAIM_MIN_FREE_RATIO": "0.01",
}


def preload(db: Path) -> None:
    """The default tenant's dirty closed day, in arrival order."""
    store = EmbeddedStore(db)
    t0 = day_start_us(DAY)
    step = 86_400_000_000 // (POINTS // SERIES)
    try:
        with store.transaction() as con:
            con.execute(
                "INSERT INTO series (id, tenant_id, metric, device, tags, canonical, "
                "created_at) SELECT ? + i, 1, 'm', 'pre' || i, '{}', 'm,pre' || i, "
                "TIMESTAMP '2024-01-01' FROM range(?) r(i)",
                [FIRST_ID, SERIES],
            )
            con.execute(
                f"INSERT INTO points SELECT {FIRST_ID} + i % {SERIES}, "
                f"make_timestamp({t0} + (i // {SERIES}) * {step}), (i * 37 % 1000) / 8.0 "
                "FROM range(?) r(i)",
                [POINTS],
            )
            con.execute("INSERT INTO partitions VALUES (1, ?, true, 'hot', NULL)", [DAY])
    finally:
        store.close()


def check_and_redirty(db: Path) -> tuple[tuple[int, float, int], str | None]:
    """Open the file as a start would, return the day's (rows, sum, distinct keys) and
    the last reclaim's marker, and mark the day dirty for the next round."""
    store = EmbeddedStore(db)
    try:
        assert not Path(str(db) + RECLAIM_SUFFIX).exists()  # removed at open
        with store.transaction() as con:
            row = con.execute(
                "SELECT count(*), sum(value), count(DISTINCT (series_id, ts)) FROM points "
                "WHERE series_id IN (SELECT id FROM series WHERE device LIKE 'pre%')",
            ).fetchall()[0]
            marker = con.execute("SELECT value FROM meta WHERE key = 'reclaim_id'").fetchall()
            con.execute("UPDATE partitions SET dirty = true WHERE day = ?", [DAY])
    finally:
        store.close()
    return (int(row[0]), float(row[1]), int(row[2])), (marker[0][0] if marker else None)


def wait_for(predicate: Callable[[], bool], what: str, server: ServerProcess) -> None:
    deadline = time.monotonic() + 90
    while not predicate():
        assert time.monotonic() < deadline, f"no {what} within 90 s:\n{server.stderr()[-3000:]}"
        time.sleep(0.005)


def wait_for_reclaim(server: ServerProcess, copy: Path) -> bool:
    """Until the copy exists (True) or, should the polling miss a short copy, the server
    counts a reclaim (False)."""
    asked = 0.0
    seen = False

    def started() -> bool:
        nonlocal asked, seen
        seen = copy.exists()
        if seen:
            return True
        if time.monotonic() - asked > 0.5:
            asked = time.monotonic()
            return server.metric("stats_reclaim_runs_total") >= 1
        return False

    wait_for(started, "reclaim", server)
    return seen


def test_kill_9_during_reclaim_loses_and_duplicates_nothing(
    server_factory: ServerFactory,
) -> None:
    rng = random.Random(SEED)
    print(f"random seed {SEED}")
    server = server_factory(env=ENV).start()  # creates the default tenant
    server.terminate()
    db = server.data_dir / "stats.duckdb"
    copy = Path(str(db) + RECLAIM_SUFFIX)
    preload(db)
    expected, _ = check_and_redirty(db)
    assert expected[0] == expected[2] == POINTS

    feeders: list[Feeder] = []
    markers = set()
    copies_seen = 0
    for round_ in range(KILLS):
        server.start()
        if round_ == 0:
            feeders = [Feeder(server, f"reclaim-{i}", batch_points=50) for i in range(2)]
            for feeder in feeders:
                feeder.start()
        seen = wait_for_reclaim(server, copy)  # under way (or, if missed, over)
        copies_seen += seen
        if round_ % 2 and seen:  # right after the swap (the copy is gone), reconnecting
            wait_for(lambda: not copy.exists(), "swap", server)
            time.sleep(rng.uniform(0.0, 0.05))
        elif seen:  # during the copy, its checks or the swap
            time.sleep(rng.uniform(0.0, 0.6))  # the moment of the crash, not a wait for a state
        server.kill()
        got, marker = check_and_redirty(db)
        assert got[0] == got[2] == expected[0], (got, expected)
        assert got[1] == pytest.approx(expected[1], rel=1e-12)
        if round_ % 2 and seen:
            assert marker not in markers  # the swapped-in copy is what was opened
        markers.add(marker)

    server.start()
    wait_for(lambda: server.metric("stats_reclaim_runs_total") >= 1, "finished reclaim", server)
    for feeder in feeders:
        feeder.stop()
        assert not feeder.unexpected, feeder.unexpected[:3]
    server.terminate()

    got, marker = check_and_redirty(db)
    assert got[0] == got[2] == expected[0] and got[1] == pytest.approx(expected[1], rel=1e-12)
    acked = {k: v for f in feeders for k, v in f.acked.items()}
    stored = stored_points(server.data_dir, "reclaim-")
    assert_exactly_once(stored, acked)
    assert len(stored) == len(acked) > 0
    print(
        f"{len(acked)} points acknowledged; kills while the copy existed or just after the "
        f"swap: {copies_seen}; swaps before kills: {len(markers - {None})}"
    )
    assert copies_seen >= 1  # a loaded machine may miss a short copy; the kill still counts


def test_db_reclaim_command_shrinks_a_stopped_servers_file(
    server_factory: ServerFactory,
) -> None:
    server = server_factory().start()
    running = run_cli("db", "reclaim", "--data-dir", str(server.data_dir))
    assert running.returncode == 1 and "stop it first" in running.stderr, running
    server.terminate()
    db = server.data_dir / "stats.duckdb"
    preload(db)
    store = EmbeddedStore(db)
    with store.transaction() as con:
        con.execute("DELETE FROM points WHERE series_id % 2 = 0")
    store.close()
    size = db.stat().st_size

    done = run_cli("db", "reclaim", "--data-dir", str(server.data_dir))

    assert done.returncode == 0, done.stderr
    assert "before:" in done.stdout and "after:" in done.stdout, done.stdout
    assert db.stat().st_size < size * 0.75
    got, _ = check_and_redirty(db)
    assert got[0] == got[2] == POINTS // 2
    missing = run_cli("db", "reclaim", "--data-dir", str(server.data_dir / "nothing"))
    assert missing.returncode == 1 and "no database" in missing.stderr
