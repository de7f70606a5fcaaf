"""Raw points of one series in [from, to), in time order, a page at a time.

The cursor is opaque to clients: it holds the time of the last point returned, and the
next page starts strictly after it, so pages never overlap and never skip a point.
"""

from __future__ import annotations

from typing import Any

import duckdb

from ..storage.sources import points_source
from .columns import floats, ints, series_id, times, values
from .params import TimeRange, encode_cursor
from .series import get_series

DEFAULT_LIMIT = 1000
MAX_LIMIT = 100_000

_SQL = """
SELECT epoch_us(ts) AS t, value FROM {source}
WHERE series_id = ? AND ts >= make_timestamp(?::BIGINT) AND ts < make_timestamp(?::BIGINT)
ORDER BY ts LIMIT ?
"""


def read_points(
    cur: duckdb.DuckDBPyConnection,
    tenant_id: int,
    sid: int,
    span: TimeRange,
    limit: int = DEFAULT_LIMIT,
    after_us: int | None = None,
) -> dict[str, Any]:
    """Columnar points: `t` (RFC 3339, microseconds), `value`, and `next_cursor` or None."""
    get_series(cur, tenant_id, sid)
    start = span.from_us if after_us is None else max(span.from_us, after_us + 1)
    stamps, numbers = ints([]), floats([])
    if start < span.to_us:
        source = points_source(cur, tenant_id, start, span.to_us)
        sql = _SQL.format(source=source)
        data = cur.execute(sql, [sid, start, span.to_us, limit + 1]).fetchnumpy()
        stamps, numbers = ints(data["t"]), floats(data["value"])
    more = stamps.shape[0] > limit
    stamps, numbers = stamps[:limit], numbers[:limit]
    return {
        "series_id": series_id(sid),
        "from": times(ints([span.from_us]), micros=True)[0],
        "to": times(ints([span.to_us]), micros=True)[0],
        "t": times(stamps, micros=True),
        "value": values(numbers),
        "next_cursor": encode_cursor(int(stamps[-1])) if more else None,
    }


_STATES_SQL = """
SELECT epoch_us(ts) AS t, value FROM states
WHERE series_id = ? AND ts >= make_timestamp(?::BIGINT) AND ts < make_timestamp(?::BIGINT)
ORDER BY ts LIMIT ?
"""


def read_states(
    cur: duckdb.DuckDBPyConnection,
    tenant_id: int,
    sid: int,
    span: TimeRange,
    limit: int = DEFAULT_LIMIT,
    after_us: int | None = None,
) -> dict[str, Any]:
    """Text values (states) of a series, paged like `read_points`."""
    get_series(cur, tenant_id, sid)
    start = span.from_us if after_us is None else max(span.from_us, after_us + 1)
    rows: list[tuple[int, str]] = []
    if start < span.to_us:
        rows = cur.execute(_STATES_SQL, [sid, start, span.to_us, limit + 1]).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    stamps = ints([r[0] for r in rows])
    return {
        "series_id": series_id(sid),
        "from": times(ints([span.from_us]), micros=True)[0],
        "to": times(ints([span.to_us]), micros=True)[0],
        "t": times(stamps, micros=True),
        "text": [str(r[1]) for r in rows],
        "next_cursor": encode_cursor(int(stamps[-1])) if more else None,
    }
