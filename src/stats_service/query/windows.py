"""Split a time range into windows of a bounded number of points, for streamed exports.

Each window is read by its own ordered query, so DuckDB never sorts or groups more than
about `target` rows at once: memory stays flat however much is exported. A histogram
of point counts per slice of time (refined where a slice is still too dense) places the
boundaries; adjacent sparse slices are merged.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from ..storage.sources import points_source
from .params import TimeRange
from .series import SCOPED_IDS

SLICES = 256
MAX_DEPTH = 3

_EXTENT = f"""
SELECT epoch_us(min(ts)), epoch_us(max(ts)), count(*) FROM {{source}}
WHERE series_id IN {SCOPED_IDS}
  AND ts >= make_timestamp(?::BIGINT) AND ts < make_timestamp(?::BIGINT)
"""
_HISTOGRAM = f"""
SELECT (epoch_us(ts) - ?) // ? AS k, count(*) FROM {{source}}
WHERE series_id IN {SCOPED_IDS}
  AND ts >= make_timestamp(?::BIGINT) AND ts < make_timestamp(?::BIGINT)
GROUP BY k ORDER BY k
"""


@dataclass(frozen=True, slots=True)
class Extent:
    """Where the selected points lie: [first_us, last_us + 1) and how many there are."""

    first_us: int
    end_us: int
    count: int


def extent(
    cur: duckdb.DuckDBPyConnection, tenant_id: int, ids: list[int], span: TimeRange
) -> Extent | None:
    # fetchall, not fetchone: a result left unfinished blocks the cursor's next query
    source = points_source(cur, tenant_id, span.from_us, span.to_us)
    params = [tenant_id, ids, span.from_us, span.to_us]
    row = cur.execute(_EXTENT.format(source=source), params).fetchall()[0]
    if not row[2]:
        return None
    return Extent(int(row[0]), int(row[1]) + 1, int(row[2]))


def windows(
    cur: duckdb.DuckDBPyConnection, tenant_id: int, ids: list[int], where: Extent, target: int
) -> list[tuple[int, int]]:
    """Consecutive [start, end) windows covering the extent, each about `target` points."""
    if where.count <= target:
        return [(where.first_us, where.end_us)]
    pieces = _pieces(cur, tenant_id, ids, where.first_us, where.end_us, target, 0)
    out: list[tuple[int, int]] = []
    start, rows, previous_end = where.first_us, 0, where.first_us
    for end, count in pieces:
        if rows and rows + count > target:
            out.append((start, previous_end))
            start, rows = previous_end, 0
        rows += count
        previous_end = end
    out.append((start, where.end_us))
    return out


def _pieces(
    cur: duckdb.DuckDBPyConnection,
    tenant_id: int,
    ids: list[int],
    lo: int,
    hi: int,
    target: int,
    depth: int,
) -> list[tuple[int, int]]:
    """(end of slice, points in it) for consecutive non-empty slices of [lo, hi)."""
    step = max(1, -(-(hi - lo) // SLICES))
    source = points_source(cur, tenant_id, lo, hi)
    sql = _HISTOGRAM.format(source=source)
    rows = cur.execute(sql, [lo, step, tenant_id, ids, lo, hi]).fetchall()
    out: list[tuple[int, int]] = []
    for k, count in rows:
        start, end = lo + int(k) * step, min(hi, lo + (int(k) + 1) * step)
        if count > target and step > 1 and depth < MAX_DEPTH:
            out += _pieces(cur, tenant_id, ids, start, end, target, depth + 1)
        else:
            out.append((end, int(count)))
    return out
