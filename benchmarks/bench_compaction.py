"""Bytes per point of one TSBS day before and after compaction, and in the cold tier.

    .venv/bin/python benchmarks/bench_compaction.py               # 100 hosts: 8.64 M points
    .venv/bin/python benchmarks/bench_compaction.py --hosts 10    # 864 k points, quick

Loads one UTC day of TSBS devops cpu-only data (`--hosts` hosts x 10 integer fields,
every 10 s: 8,640 rows per host) through the real ingest path (InfluxDB line protocol,
POST /write of a real `stats-service serve`, compaction job off), stops the server
cleanly (CHECKPOINT), then measures the DuckDB file:

- `file`: the size of stats.duckdb (+ .wal): DuckDB never shrinks a file, it reuses
  its free blocks, so after a rewrite this still holds the blocks freed by it;
- `used`: the blocks in use (`PRAGMA database_size`), i.e. what the data takes;
- `points copy`: the points table alone copied into a fresh file, as it is stored.

Then it runs the compaction of that day (the real `Compactor`, in this process) and
measures again, then lets the job decide on a reclaim with the default thresholds
(`maybe_reclaim`: the file is rewritten without its free blocks; forced with a note when
the thresholds are not met, e.g. with few hosts) and measures again, printing the pause
(writes and reads wait for the whole reclaim), and writes the day to the cold tier
(Parquet, zstd) and measures the file. Per-column compression (pragma_storage_info) is
printed after each step.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    ADMIN_KEY,
    Server,
    dir_size,
    fmt_bytes,
    fmt_int,
    print_machine,
    print_table,
    run_clients,
    tsbs_cpu_bodies,
    wait_quiet,
)

FIELDS = 10


def used_bytes(db: Path) -> tuple[int, int]:
    """(bytes of the blocks in use, points) of a closed DuckDB file."""
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        size = con.execute("SELECT block_size * used_blocks FROM pragma_database_size()")
        used = int(size.fetchall()[0][0])
        points = int(con.execute("SELECT count(*) FROM points").fetchall()[0][0])
    finally:
        con.close()
    return used, points


def points_copy(db: Path, tmp: Path, sql: str = "SELECT * FROM src.points") -> int:
    """Bytes of a fresh file holding only the points table built by `sql`."""
    import duckdb

    path = tmp / "copy.duckdb"
    con = duckdb.connect(str(path), config={"threads": 2, "memory_limit": "2GB"})
    try:
        con.execute(f"ATTACH '{db}' AS src (READ_ONLY)")
        con.execute(f"CREATE TABLE points AS {sql}")
        con.execute("DETACH src")
        con.execute("CHECKPOINT")
    finally:
        con.close()
    size = dir_size(path) + dir_size(path.with_name(path.name + ".wal"))
    path.unlink()
    return size


def compression(db: Path) -> str:
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute(
            "SELECT column_name, compression, count(*) FROM pragma_storage_info('points') "
            "WHERE segment_type <> 'VALIDITY' GROUP BY ALL ORDER BY 1, 3 DESC"
        ).fetchall()
    finally:
        con.close()
    return ", ".join(f"{c}: {k} x{n}" for c, k, n in rows)


def measure(db: Path, tmp: Path) -> dict[str, int]:
    used, points = used_bytes(db)
    return {
        "points": points,
        "file": dir_size(db) + dir_size(db.with_name(db.name + ".wal")),
        "used": used,
        "copy": points_copy(db, tmp),
    }


def load(hosts: int, day: datetime, data_dir: Path) -> float:
    """Ingest the day through POST /write (bodies of 48 rounds of every host: 8 minutes);
    returns the seconds it took."""
    lines = hosts * 48
    bodies = tsbs_cpu_bodies(hosts, lines, 8640 // 48, int(day.timestamp()) * 10**9)
    rows = lines * len(bodies)
    print(f"{fmt_int(rows * FIELDS)} points in {len(bodies)} bodies", flush=True)
    env = {"STATS_COMPACTION_ENABLED": "false", "STATS_ARCHIVE_ENABLED": "false"}
    server = Server(env=env, data_dir=data_dir)
    server.start()
    try:
        headers = {"X-API-Key": ADMIN_KEY, "Content-Type": "text/plain; charset=utf-8"}
        t0 = time.perf_counter()
        halves = [bodies[0::2], bodies[1::2]]
        results, _ = run_clients(
            server.url, "/write?db=bench&precision=n", headers, halves, 2, 3600
        )
        seconds = time.perf_counter() - t0
        if any(r.errors for r in results):
            first = next(r.first_error for r in results if r.first_error)
            raise SystemExit(f"ingest failed: {first}\n{server.log_tail()}")
    finally:
        server.stop()
    return seconds


def compact(db: Path, cold_dir: Path, day: datetime) -> float:
    """Compact the day in place (the real job; closing the store checkpoints); returns
    the seconds of the job alone."""
    from prometheus_client import CollectorRegistry

    from stats_service.jobs.compaction import CompactionMetrics, Compactor
    from stats_service.storage.embedded import EmbeddedStore

    store = EmbeddedStore(db, memory_limit="2GB")
    try:
        metrics = CompactionMetrics(CollectorRegistry())
        after = day + timedelta(days=2)
        t0 = time.perf_counter()
        hot = Compactor(store, metrics, timedelta(hours=1), cold_dir, 0).run(after)
        compact_s = time.perf_counter() - t0
        if hot.compacted < 1:
            raise SystemExit(f"nothing compacted: {hot}")
    finally:
        store.close()
    return compact_s


def reclaim(db: Path, cold_dir: Path) -> tuple[float, str]:
    """The job's reclaim step with the default thresholds (forced if they are not met);
    returns (seconds of the reclaim, i.e. the pause of writes and reads, a note)."""
    from prometheus_client import CollectorRegistry

    from stats_service.config import Settings
    from stats_service.jobs.compaction import CompactionMetrics, Compactor
    from stats_service.storage.embedded import EmbeddedStore

    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    store = EmbeddedStore(db, memory_limit="2GB")
    try:
        job = Compactor(
            store,
            CompactionMetrics(CollectorRegistry()),
            timedelta(hours=1),
            cold_dir,
            0,
            None,
            defaults.reclaim_min_free_mb,
            defaults.reclaim_min_free_ratio,
        )
        size = store.database_size()
        note = f"free blocks before: {fmt_bytes(size.free_bytes)} of {fmt_bytes(size.file_bytes)}"
        report = job.maybe_reclaim()
        if report is None:
            note += " (below the default thresholds: forced)"
            report = store.reclaim()
        if not report.done:
            raise SystemExit(f"reclaim {report.status}")
        return report.seconds, note
    finally:
        store.close()


def to_cold(db: Path, cold_dir: Path, day: datetime) -> tuple[float, int]:
    """Move the day to the cold tier; returns (seconds, Parquet bytes)."""
    from prometheus_client import CollectorRegistry

    from stats_service.jobs.compaction import CompactionMetrics, Compactor
    from stats_service.storage.embedded import EmbeddedStore

    store = EmbeddedStore(db, memory_limit="2GB")
    try:
        metrics = CompactionMetrics(CollectorRegistry())
        t0 = time.perf_counter()
        report = Compactor(store, metrics, timedelta(hours=1), cold_dir, 1).run(
            day + timedelta(days=3)
        )
        return time.perf_counter() - t0, report.cold_bytes
    finally:
        store.close()


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--hosts", type=int, default=100, help="TSBS scale (hosts)")
    ap.add_argument("--wait-quiet", type=float, default=30.0)
    args = ap.parse_args()
    print_machine()
    if args.wait_quiet:
        wait_quiet(args.wait_quiet)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    day = today - timedelta(days=2)  # a whole UTC day in the past, inside the retention
    with tempfile.TemporaryDirectory(prefix="bench-compaction-") as tmp_name:
        tmp = Path(tmp_name)
        data_dir = tmp / "data"
        load_s = load(args.hosts, day, data_dir)
        db = data_dir / "stats.duckdb"
        before = measure(db, tmp)
        print(f"before: {compression(db)}", flush=True)
        compact_s = compact(db, data_dir / "cold", day)
        after = measure(db, tmp)
        print(f"after:  {compression(db)}", flush=True)
        reclaim_s, reclaim_note = reclaim(db, data_dir / "cold")
        reclaimed = measure(db, tmp)
        print(f"reclaimed: {compression(db)}", flush=True)
        cold_s, cold_bytes = to_cold(db, data_dir / "cold", day)
    n = before["points"]
    assert after["points"] == n == reclaimed["points"], (before, after, reclaimed)

    def per(b: int) -> str:
        return f"{b / n:.2f}"

    print(f"\nTSBS cpu-only, {args.hosts} hosts x 10 fields, one UTC day: {fmt_int(n)} points")
    print(
        f"ingest {load_s:.1f} s, compaction {compact_s:.1f} s, reclaim {reclaim_s:.2f} s "
        f"(writes and reads wait meanwhile; {reclaim_note}), move to cold {cold_s:.1f} s\n"
    )
    print_table(
        ["measure", "bytes", "bytes/point"],
        [
            ("arrival order: stats.duckdb file", fmt_bytes(before["file"]), per(before["file"])),
            ("arrival order: blocks in use", fmt_bytes(before["used"]), per(before["used"])),
            ("arrival order: points table alone", fmt_bytes(before["copy"]), per(before["copy"])),
            ("compacted: stats.duckdb file", fmt_bytes(after["file"]), per(after["file"])),
            ("compacted: blocks in use", fmt_bytes(after["used"]), per(after["used"])),
            ("compacted: points table alone", fmt_bytes(after["copy"]), per(after["copy"])),
            ("reclaimed: stats.duckdb file", fmt_bytes(reclaimed["file"]), per(reclaimed["file"])),
            ("reclaimed: blocks in use", fmt_bytes(reclaimed["used"]), per(reclaimed["used"])),
            ("cold tier: Parquet zstd file", fmt_bytes(cold_bytes), per(cold_bytes)),
        ],
    )


if __name__ == "__main__":
    main()
