"""Compaction: rewrite a closed partition's points grouped by series, in time order.

The writer appends points in arrival order: a group holds a little of many series, so a
day of data ends up interleaved and DuckDB's per-segment compression (constant / RLE
series ids, bit-packed time deltas, ALP values) and zone maps find little to work on.
Rewriting a closed day by series puts each series' points together, in time order
(forward in one series, backward in the next: see `STORED_ORDER`): the id column
becomes runs, timestamps become constant deltas and a read of one series touches a few
row groups instead of all of them.

Crash safety: a partition is rewritten a chunk of whole series at a time (about
`CHUNK_ROWS` rows), each chunk one DuckDB transaction (its latest rows in a temporary
table, DELETE of those series' rows of the day, INSERT of the copy); the partition is
marked clean after the last chunk. DuckDB's WAL makes each chunk all-or-nothing: after a
kill -9 at any moment every series of the day holds either its old rows or its new ones,
never both and never neither, and a partition left half done is still dirty, so the
next run finishes it. Between chunks the store's write lock is free, so ingestion
pauses for one chunk (a fraction of a second), not for a whole day.

Last write wins, defensively: the writer already replaces a stored (series, ts), but if
the day ever holds two rows for one (series, ts), only the one written last (highest
rowid) is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb
import structlog

from .embedded import EmbeddedStore
from .partitions import Partition

log = structlog.get_logger(__name__)

# The tenant's hot rows of one day, last write wins. Parameters: from, to, tenant.
DAY_LATEST = """
SELECT series_id, ts, value FROM points
WHERE ts >= make_timestamp(?::BIGINT) AND ts < make_timestamp(?::BIGINT)
  AND series_id IN (SELECT id FROM series WHERE tenant_id = ?)
QUALIFY row_number() OVER (PARTITION BY series_id, ts ORDER BY rowid DESC) = 1
"""
# The same, sorted by (series_id, ts): what the cold tier's files hold.
DAY_ROWS = DAY_LATEST + "ORDER BY series_id, ts\n"

# The rows of `compacting` in the order they are stored in the table: by series, with
# time ascending in every other series and descending in the ones between. DuckDB
# bit-packs timestamps in groups of 2,048 as deltas; within a series the delta is
# constant (0 bits), but the group holding the step from one series to the next pays
# for the size of that step: a whole day back (37 bits a value) when every series runs
# forward, a few seconds when the next one runs back. Measured on a TSBS day: the ts
# column 1.67 -> 0.97 bytes/point, the table 2.19 -> 1.7 (docs/benchmarks.md, 6). Reads
# never depend on the physical order (every query sorts), and zone maps keep their
# per-row-group min/max.
STORED_ORDER = """
SELECT c.series_id, c.ts, c.value FROM compacting c
JOIN (SELECT series_id, row_number() OVER (ORDER BY series_id) % 2 AS back
      FROM (SELECT DISTINCT series_id FROM compacting)) o USING (series_id)
ORDER BY c.series_id, CASE WHEN o.back = 1 THEN -epoch_us(c.ts) ELSE epoch_us(c.ts) END
"""

DELETE_DAY = """
DELETE FROM points
WHERE ts >= make_timestamp(?::BIGINT) AND ts < make_timestamp(?::BIGINT)
  AND series_id IN (SELECT id FROM series WHERE tenant_id = ?)
"""
CHUNK_ROWS = 500_000
# Rows per series of the tenant's day. Parameters: from, to, tenant.
DAY_COUNTS = """
SELECT series_id, count(*) FROM points
WHERE ts >= make_timestamp(?::BIGINT) AND ts < make_timestamp(?::BIGINT)
  AND series_id IN (SELECT id FROM series WHERE tenant_id = ?)
GROUP BY series_id ORDER BY series_id
"""
# Restricts DAY_LATEST / DELETE_DAY to a chunk of series (one more parameter: the ids).
IN_CHUNK = "  AND series_id IN (SELECT unnest(?::BIGINT[]))\n"


@dataclass(frozen=True, slots=True)
class Compacted:
    partition: Partition
    rows_before: int
    rows_after: int


def compact_partition(
    store: EmbeddedStore, part: Partition, now: datetime, chunk_rows: int = CHUNK_ROWS
) -> Compacted:
    """Rewrite one hot partition by series (`STORED_ORDER`), a chunk of series per
    transaction; marks it clean after the last chunk."""
    span = [part.start_us, part.end_us, part.tenant_id]
    with store.reader() as cur:
        counts = cur.execute(DAY_COUNTS, span).fetchall()
    before = after = 0
    for ids in _chunks(counts, chunk_rows):
        chunk = [*span, ids]
        with store.transaction() as con:
            latest = DAY_LATEST.replace("QUALIFY", IN_CHUNK + "QUALIFY")
            con.execute("CREATE OR REPLACE TEMP TABLE compacting AS " + latest, chunk)
            before += _count(con.execute(DELETE_DAY + IN_CHUNK, chunk))
            con.execute("INSERT INTO points " + STORED_ORDER)
            after += _count(con.execute("SELECT count(*) FROM compacting"))
            con.execute("DROP TABLE compacting")
    with store.transaction() as con:
        con.execute(
            "UPDATE partitions SET dirty = false, compacted_at = ? WHERE tenant_id = ? AND day = ?",
            [now, part.tenant_id, part.day],
        )
    log.info(
        "partition_compacted",
        tenant_id=part.tenant_id,
        day=part.day.isoformat(),
        rows=after,
        duplicates=before - after,
    )
    return Compacted(part, before, after)


def _chunks(counts: list[tuple[int, int]], chunk_rows: int) -> list[list[int]]:
    """Series ids in order, cut into runs of about `chunk_rows` rows (a series whole)."""
    chunks: list[list[int]] = []
    current: list[int] = []
    rows = 0
    for sid, n in counts:
        if current and rows + int(n) > chunk_rows:
            chunks.append(current)
            current, rows = [], 0
        current.append(int(sid))
        rows += int(n)
    if current:
        chunks.append(current)
    return chunks


def _count(rel: duckdb.DuckDBPyConnection) -> int:
    row = rel.fetchall()
    return int(row[0][0]) if row else 0
