"""Compaction: rewrite a closed partition's points grouped by series, in time order.

The writer appends points in arrival order: a group holds a little of many series, so a
day of data ends up interleaved and DuckDB's per-segment compression (constant / RLE
series ids, bit-packed time deltas, ALP values) and zone maps find little to work on.
Rewriting a closed day by series puts each series' points together, in time order
(forward in one series, backward in the next: see `STORED_ORDER`): the id column
becomes runs, timestamps become constant deltas and a read of one series touches a few
row groups instead of all of them.

Crash safety: the rewrite of one partition is one DuckDB transaction (the latest rows
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


@dataclass(frozen=True, slots=True)
class Compacted:
    partition: Partition
    rows_before: int
    rows_after: int


def compact_partition(store: EmbeddedStore, part: Partition, now: datetime) -> Compacted:
    """Rewrite one hot partition by series (`STORED_ORDER`), in one transaction; marks it
    clean."""
    span = [part.start_us, part.end_us, part.tenant_id]
    with store.transaction() as con:
        con.execute("CREATE OR REPLACE TEMP TABLE compacting AS " + DAY_LATEST, span)
        before = _count(con.execute(DELETE_DAY, span))
        con.execute("INSERT INTO points " + STORED_ORDER)
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
