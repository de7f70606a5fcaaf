"""The cold tier: closed days older than `cold_after_days` as Parquet files.

Layout: `<cold dir>/tenant=<id>/day=YYYY-MM-DD.parquet`, one file per tenant and UTC
day, columns (series_id BIGINT, ts TIMESTAMP, value DOUBLE), sorted by (series_id, ts),
zstd-compressed. The `cold_files` table is the catalog: a file is part of the store only
once its catalog row is committed.

Moving a day (or re-exporting it after late writes) is one DuckDB transaction under the
store's write lock:

1. COPY the day's rows (the hot rows, last write wins, merged over the existing file
   where the hot row wins) to `<name>.tmp`; fsync the file;
2. rename it over `<name>` and fsync the directory;
3. DELETE the day's hot rows, upsert the catalog row, mark the partition cold and
   clean; COMMIT.

A crash before 2 leaves a `.tmp` file: removed at start-up. A crash between 2 and 3
leaves, for a first move, a file without a catalog row (removed at start-up: its rows
are still hot) and, for a re-export, a file holding a superset of what the catalog
promises while the late rows are still hot too; reads prefer the hot row (see
`sources.py`), so both states read the same. After 3, a crash loses nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import structlog

from .compaction import DAY_ROWS, DELETE_DAY
from .embedded import EmbeddedStore
from .partitions import Partition
from .sources import parquet_scan

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class ColdWrite:
    partition: Partition
    path: Path
    rows: int
    bytes: int
    hot_rows: int


def day_path(cold_dir: Path, tenant_id: int, day: date) -> Path:
    return cold_dir / f"tenant={tenant_id}" / f"day={day.isoformat()}.parquet"


def _quote(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def export_partition(
    store: EmbeddedStore, cold_dir: Path, part: Partition, now: datetime
) -> ColdWrite:
    """Move (or re-export) one closed day of one tenant to its Parquet file."""
    path = day_path(cold_dir.resolve(), part.tenant_id, part.day)
    tmp = path.with_name(path.name + ".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    span = [part.start_us, part.end_us, part.tenant_id]
    with store.transaction() as con:
        row = con.execute(
            "SELECT path FROM cold_files WHERE tenant_id = ? AND day = ?",
            [part.tenant_id, part.day],
        ).fetchall()
        hot_rows = int(con.execute(f"SELECT count(*) FROM ({DAY_ROWS})", span).fetchall()[0][0])
        if row:
            old = parquet_scan([str(row[0][0])])
            source = (
                f"SELECT series_id, ts, value FROM ({DAY_ROWS}) UNION ALL "
                f"SELECT c.series_id, c.ts, c.value FROM {old} c WHERE NOT EXISTS "
                "(SELECT 1 FROM points h WHERE h.series_id = c.series_id AND h.ts = c.ts "
                "AND h.ts >= make_timestamp(?::BIGINT) AND h.ts < make_timestamp(?::BIGINT) "
                "AND h.series_id IN (SELECT id FROM series WHERE tenant_id = ?))"
            )
            params = span + span
        else:
            source, params = DAY_ROWS, span
        if not row and hot_rows == 0:  # nothing to move: forget the empty day
            con.execute(
                "DELETE FROM partitions WHERE tenant_id = ? AND day = ?",
                [part.tenant_id, part.day],
            )
            return ColdWrite(part, path, 0, 0, 0)
        written = con.execute(
            f"COPY (SELECT * FROM ({source}) ORDER BY series_id, ts) TO {_quote(tmp)} "
            "(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880)",
            params,
        ).fetchall()
        rows = int(written[0][0]) if written else 0
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync(path.parent)
        size = path.stat().st_size
        con.execute(DELETE_DAY, span)
        con.execute(
            "INSERT OR REPLACE INTO cold_files VALUES (?, ?, ?, ?, ?, ?)",
            [part.tenant_id, part.day, str(path), rows, size, now],
        )
        con.execute(
            "UPDATE partitions SET tier = 'cold', dirty = false, compacted_at = ? "
            "WHERE tenant_id = ? AND day = ?",
            [now, part.tenant_id, part.day],
        )
    log.info(
        "partition_moved_cold",
        tenant_id=part.tenant_id,
        day=part.day.isoformat(),
        rows=rows,
        hot_rows=hot_rows,
        bytes=size,
        path=str(path),
    )
    return ColdWrite(part, path, rows, size, hot_rows)


def reconcile(store: EmbeddedStore, cold_dir: Path) -> dict[str, int]:
    """At start-up: remove what an interrupted move left behind.

    `.tmp` files and files without a catalog row are leftovers of a move that did not
    commit (their rows are still in the hot table): removed. A catalog row whose file is
    missing means the file was deleted from outside: logged as an error, kept (the
    read then fails loudly rather than silently returning less)."""
    cold_dir = cold_dir.resolve()
    with store.reader() as cur:
        listed = {str(r[0]) for r in cur.execute("SELECT path FROM cold_files").fetchall()}
    removed = missing = 0
    if cold_dir.is_dir():
        for file in sorted(cold_dir.glob("tenant=*/day=*")):
            if file.name.endswith(".tmp") or str(file) not in listed:
                file.unlink(missing_ok=True)
                removed += 1
                log.warning("cold_leftover_removed", path=str(file))
    for path in sorted(listed):
        if not Path(path).is_file():
            missing += 1
            log.error("cold_file_missing", path=path)
    return {"removed": removed, "missing": missing}


def drop_expired(store: EmbeddedStore, tenant_id: int, cutoff: datetime) -> tuple[int, int]:
    """Retention: the tenant's cold points older than `cutoff` go. Returns (files, rows).

    Whole days before the cutoff's day: the catalog rows go first (committed), then the
    files; a crash in between leaves orphan files that `reconcile` removes. The day the
    cutoff falls in is rewritten without its expired points (temp file, fsync, rename,
    catalog updated in the same transaction; a crash after the rename leaves a file that
    already lacks only expired points)."""
    with store.transaction() as con:
        rows = con.execute(
            "DELETE FROM cold_files WHERE tenant_id = ? AND day < ? RETURNING path, rows",
            [tenant_id, cutoff.date()],
        ).fetchall()
        con.execute(
            "DELETE FROM partitions WHERE tenant_id = ? AND day < ?", [tenant_id, cutoff.date()]
        )
    for path, _ in rows:
        Path(str(path)).unlink(missing_ok=True)
    return len(rows), sum(int(r[1]) for r in rows) + _trim_day(store, tenant_id, cutoff)


def _trim_day(store: EmbeddedStore, tenant_id: int, cutoff: datetime) -> int:
    """Rewrite the cold file of the cutoff's day without its points older than `cutoff`."""
    with store.transaction() as con:
        found = con.execute(
            "SELECT path, rows FROM cold_files WHERE tenant_id = ? AND day = ?",
            [tenant_id, cutoff.date()],
        ).fetchall()
        if not found:
            return 0
        path, old_rows = Path(str(found[0][0])), int(found[0][1])
        scan = parquet_scan([str(path)])
        oldest = con.execute(f"SELECT min(ts) FROM {scan}").fetchall()
        if oldest[0][0] is None or oldest[0][0] >= cutoff:
            return 0
        tmp = path.with_name(path.name + ".tmp")
        written = con.execute(
            f"COPY (SELECT series_id, ts, value FROM {scan} WHERE ts >= ? "
            f"ORDER BY series_id, ts) TO {_quote(tmp)} "
            "(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880)",
            [cutoff],
        ).fetchall()
        rows = int(written[0][0]) if written else 0
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync(path.parent)
        con.execute(
            "UPDATE cold_files SET rows = ?, bytes = ? WHERE tenant_id = ? AND day = ?",
            [rows, path.stat().st_size, tenant_id, cutoff.date()],
        )
    return old_rows - rows


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
