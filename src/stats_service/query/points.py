"""Raw points of one series in [from, to), in time order, a page at a time.

The cursor is opaque to clients: it holds the time of the last point returned, and the
next page starts strictly after it, so pages never overlap and never skip a point.
"""

from __future__ import annotations

from collections.abc import Callable
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


PageReader = Callable[
    [duckdb.DuckDBPyConnection, int, int, TimeRange, int, "int | None"], dict[str, Any]
]


def read_points(
    cur: duckdb.DuckDBPyConnection,
    tenant_id: int,
    sid: int,
    span: TimeRange,
    limit: int = DEFAULT_LIMIT,
    after_us: int | None = None,
) -> dict[str, Any]:
    """Columnar points: `t` (RFC 3339, microseconds), `value`, and `next_cursor` or None."""
    start = _start(cur, tenant_id, sid, span, after_us)
    stamps, numbers = ints([]), floats([])
    if start < span.to_us:
        source = points_source(cur, tenant_id, start, span.to_us)
        sql = _SQL.format(source=source)
        data = cur.execute(sql, [sid, start, span.to_us, limit + 1]).fetchnumpy()
        stamps, numbers = ints(data["t"]), floats(data["value"])
    more = stamps.shape[0] > limit
    return _page(sid, span, stamps[:limit], more) | {"value": values(numbers[:limit])}


_STATES_SQL = _SQL.format(source="states")


def read_states(
    cur: duckdb.DuckDBPyConnection,
    tenant_id: int,
    sid: int,
    span: TimeRange,
    limit: int = DEFAULT_LIMIT,
    after_us: int | None = None,
) -> dict[str, Any]:
    """Text values (states) of a series, paged like `read_points`: `t` and `text`."""
    start = _start(cur, tenant_id, sid, span, after_us)
    rows: list[tuple[int, str]] = []
    if start < span.to_us:
        rows = cur.execute(_STATES_SQL, [sid, start, span.to_us, limit + 1]).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    return _page(sid, span, ints([r[0] for r in rows]), more) | {"text": [str(r[1]) for r in rows]}


def _start(
    cur: duckdb.DuckDBPyConnection, tenant_id: int, sid: int, span: TimeRange, after: int | None
) -> int:
    """Where the page starts; 404 for a series the tenant does not have."""
    get_series(cur, tenant_id, sid)
    return span.from_us if after is None else max(span.from_us, after + 1)


def _page(sid: int, span: TimeRange, stamps: Any, more: bool) -> dict[str, Any]:
    return {
        "series_id": series_id(sid),
        "from": times(ints([span.from_us]), micros=True)[0],
        "to": times(ints([span.to_us]), micros=True)[0],
        "t": times(stamps, micros=True),
        "next_cursor": encode_cursor(int(stamps[-1])) if more else None,
    }
