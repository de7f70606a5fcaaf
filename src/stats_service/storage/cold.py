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

With a bucket configured (`cold_objects.py`), step 2 is followed by the upload of the
file, verified (size and MD5/ETag) before step 3; the catalog row then holds the object's
`s3://bucket/key#etag` and the local file becomes a cache entry. A failed upload rolls the
transaction back: the rows stay hot and the next run tries again. An object without a
catalog row (a crash between upload and commit of a first move) is deleted at start-up;
a re-export's object whose ETag is newer than the catalog's (same crash, later move) is
a superset of what the catalog promises and is adopted (hot rows still win).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import duckdb
import structlog

from .cold_objects import ColdObjectError, ColdObjects, is_object_url, parse_url
from .compaction import DAY_ROWS, DELETE_DAY
from .embedded import EmbeddedStore
from .marks_cache import cold_catalog
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


@contextmanager
def _catalog_transaction(store: EmbeddedStore) -> Iterator[duckdb.DuckDBPyConnection]:
    """A transaction that may change `cold_files`: once it has committed (or rolled
    back), reads take the catalog afresh (`marks_cache.ColdCatalog`)."""
    try:
        with store.transaction() as con:
            yield con
    finally:
        cold_catalog(store).changed()


def _local_copy(objects: ColdObjects | None, path: str, size: int) -> str:
    """A local path of the catalog's file `path` (fetched into the cache if an object)."""
    if not is_object_url(path):
        return path
    if objects is None:
        raise ColdObjectError(f"{path} is in a bucket but no cold_s3_bucket is configured")
    return str(objects.fetch(path, size))


def export_partition(
    store: EmbeddedStore,
    cold_dir: Path,
    part: Partition,
    now: datetime,
    objects: ColdObjects | None = None,
) -> ColdWrite:
    """Move (or re-export) one closed day of one tenant to its Parquet file (and, with
    `objects`, to the bucket). Raises ColdObjectError when the upload fails: nothing
    is committed then, the rows stay hot."""
    path = day_path(cold_dir.resolve(), part.tenant_id, part.day)
    tmp = path.with_name(path.name + ".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    span = [part.start_us, part.end_us, part.tenant_id]
    with _catalog_transaction(store) as con:
        row = con.execute(
            "SELECT path, bytes FROM cold_files WHERE tenant_id = ? AND day = ?",
            [part.tenant_id, part.day],
        ).fetchall()
        hot_rows = int(con.execute(f"SELECT count(*) FROM ({DAY_ROWS})", span).fetchall()[0][0])
        if row:
            old = parquet_scan([_local_copy(objects, str(row[0][0]), int(row[0][1]))])
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
        where = str(path)
        ref = None
        if objects is not None:  # raises before anything below: the rows stay hot
            ref = objects.upload(path, objects.key_for(part.tenant_id, part.day))
            where = ref.url
        con.execute(DELETE_DAY, span)
        con.execute(
            "INSERT OR REPLACE INTO cold_files VALUES (?, ?, ?, ?, ?, ?)",
            [part.tenant_id, part.day, where, rows, size, now],
        )
        con.execute(
            "UPDATE partitions SET tier = 'cold', dirty = false, compacted_at = ? "
            "WHERE tenant_id = ? AND day = ?",
            [now, part.tenant_id, part.day],
        )
    if objects is not None and ref is not None:
        objects.adopt(path, ref)  # the local copy becomes a cache entry
    log.info(
        "partition_moved_cold",
        tenant_id=part.tenant_id,
        day=part.day.isoformat(),
        rows=rows,
        hot_rows=hot_rows,
        bytes=size,
        path=where,
    )
    return ColdWrite(part, path, rows, size, hot_rows)


def reconcile(
    store: EmbeddedStore, cold_dir: Path, objects: ColdObjects | None = None
) -> dict[str, int]:
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
    local = {p for p in listed if not is_object_url(p)}
    for path in sorted(local):
        if not Path(path).is_file():
            missing += 1
            log.error("cold_file_missing", path=path)
    remote = {p for p in listed if is_object_url(p)}
    if objects is None:
        if remote:
            log.error("cold_objects_unreachable", files=len(remote), reason="no bucket configured")
        return {"removed": removed, "missing": missing}
    try:
        more = _reconcile_objects(store, objects, remote)
    except ColdObjectError as exc:  # the bucket is unreachable: start anyway, reads say 503
        log.error("cold_objects_not_reconciled", error=str(exc))
        return {"removed": removed, "missing": missing}
    return {"removed": removed + more["removed"], "missing": missing + more["missing"]}


def _reconcile_objects(
    store: EmbeddedStore, objects: ColdObjects, listed: set[str]
) -> dict[str, int]:
    """Objects under the prefix without a catalog row go (their rows are still hot);
    a catalog row whose object has another ETag (an interrupted re-export or trim, which
    uploaded a superset or a copy lacking only expired points) takes the object's ETag
    and size; a catalog row without its object is logged as an error."""
    known = {parse_url(p).key: parse_url(p) for p in listed}
    removed = missing = 0
    for key in list(objects.keys()):
        if key.endswith(".parquet") and key not in known:
            objects.delete(parse_url(f"s3://{objects.bucket}/{key}#orphan"))
            removed += 1
            log.warning("cold_object_leftover_removed", key=key)
    for key, ref in sorted(known.items()):
        head = objects.head(key)
        if head is None:
            missing += 1
            log.error("cold_object_missing", key=key)
        elif head[0] != ref.etag:
            fixed = parse_url(f"s3://{ref.bucket}/{key}#{head[0]}")
            with _catalog_transaction(store) as con:
                con.execute(
                    "UPDATE cold_files SET path = ?, bytes = ? WHERE path = ?",
                    [fixed.url, head[1], ref.url],
                )
            log.warning("cold_object_adopted", key=key, etag=head[0])
    return {"removed": removed, "missing": missing}


def drop_expired(
    store: EmbeddedStore, tenant_id: int, cutoff: datetime, objects: ColdObjects | None = None
) -> tuple[int, int]:
    """Retention: the tenant's cold points older than `cutoff` go. Returns (files, rows).

    Whole days before the cutoff's day: the catalog rows go first (committed), then the
    files; a crash in between leaves orphan files that `reconcile` removes. The day the
    cutoff falls in is rewritten without its expired points (temp file, fsync, rename,
    catalog updated in the same transaction; a crash after the rename leaves a file that
    already lacks only expired points)."""
    with _catalog_transaction(store) as con:
        rows = con.execute(
            "DELETE FROM cold_files WHERE tenant_id = ? AND day < ? RETURNING path, rows",
            [tenant_id, cutoff.date()],
        ).fetchall()
        con.execute(
            "DELETE FROM partitions WHERE tenant_id = ? AND day < ?", [tenant_id, cutoff.date()]
        )
    for path, _ in rows:
        if not is_object_url(str(path)):
            Path(str(path)).unlink(missing_ok=True)
        elif objects is None:
            log.error("cold_object_not_deleted", path=str(path), reason="no bucket configured")
        else:
            try:
                objects.delete(parse_url(str(path)))
            except ColdObjectError as exc:  # removed by the next start-up's reconcile
                log.error("cold_object_not_deleted", path=str(path), error=str(exc))
    trimmed = _trim_day(store, tenant_id, cutoff, objects)
    return len(rows), sum(int(r[1]) for r in rows) + trimmed


def _trim_day(
    store: EmbeddedStore, tenant_id: int, cutoff: datetime, objects: ColdObjects | None
) -> int:
    """Rewrite the cold file of the cutoff's day without its points older than `cutoff`."""
    with _catalog_transaction(store) as con:
        found = con.execute(
            "SELECT path, rows, bytes FROM cold_files WHERE tenant_id = ? AND day = ?",
            [tenant_id, cutoff.date()],
        ).fetchall()
        if not found:
            return 0
        where, old_rows = str(found[0][0]), int(found[0][1])
        path = Path(_local_copy(objects, where, int(found[0][2])))
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
        ref = None
        if objects is not None and is_object_url(where):
            try:  # raises: nothing committed, the file keeps its expired points
                ref = objects.upload(tmp, parse_url(where).key)
            except ColdObjectError:
                tmp.unlink(missing_ok=True)
                raise
            size, where = tmp.stat().st_size, ref.url
        else:
            os.replace(tmp, path)
            _fsync(path.parent)
            size = path.stat().st_size
        con.execute(
            "UPDATE cold_files SET path = ?, rows = ?, bytes = ? WHERE tenant_id = ? AND day = ?",
            [where, rows, size, tenant_id, cutoff.date()],
        )
    if objects is not None and ref is not None:
        objects.adopt(tmp, ref)
    return old_rows - rows


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
