"""Compaction: rewrite a closed partition's points sorted by (series_id, ts).

The writer appends points in arrival order: a group holds a little of many series, so a
day of data ends up interleaved and DuckDB's per-segment compression (constant / RLE
series ids, bit-packed time deltas, ALP values) and zone maps find little to work on.
Rewriting a closed day sorted by series and time puts each series' points together:
the id column becomes runs, timestamps become constant deltas and a read of one series
touches a few row groups instead of all of them.

Crash safety: the rewrite of one partition is one DuckDB transaction (the sorted copy
in a temporary table, DELETE of the day, INSERT of the copy, partition marked clean).
DuckDB's WAL makes it all-or-nothing: after a kill -9 at any moment the day holds
either the old rows or the new ones, never both and never neither.

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

# The tenant's hot rows of one day, last write wins, sorted. Parameters: from, to, tenant.
DAY_ROWS = """
SELECT series_id, ts, value FROM points
WHERE ts >= make_timestamp(?::BIGINT) AND ts < make_timestamp(?::BIGINT)
  AND series_id IN (SELECT id FROM series WHERE tenant_id = ?)
QUALIFY row_number() OVER (PARTITION BY series_id, ts ORDER BY rowid DESC) = 1
ORDER BY series_id, ts
"""

DELETE_DAY = """
DELETE FROM points
WHERE ts >= make_timestamp(?::BIGINT) AND ts < make_timestamp(?::BIGINT)
  AND series_id IN (SELECT id FROM series WHERE tenant_id = ?)
"""


@dataclass(frozen=True, slots=True)
class Compacted:
    partition: Partition
    rows_before: int
    rows_after: int


def compact_partition(store: EmbeddedStore, part: Partition, now: datetime) -> Compacted:
    """Rewrite one hot partition sorted, in one transaction; marks it clean."""
    span = [part.start_us, part.end_us, part.tenant_id]
    with store.transaction() as con:
        con.execute("CREATE OR REPLACE TEMP TABLE compacting AS " + DAY_ROWS, span)
        before = _count(con.execute(DELETE_DAY, span))
        con.execute("INSERT INTO points SELECT series_id, ts, value FROM compacting")
        after = _count(con.execute("SELECT count(*) FROM compacting"))
        con.execute("DROP TABLE compacting")
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


def _count(rel: duckdb.DuckDBPyConnection) -> int:
    row = rel.fetchall()
    return int(row[0][0]) if row else 0
