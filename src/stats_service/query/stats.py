"""Statistics over a period, per series of a selection, in one query."""

from __future__ import annotations

from typing import Any

import duckdb

from ..storage.sources import points_source
from .columns import number, series_id, time_or_none
from .params import TimeRange, function_sql
from .series import SCOPED_IDS, SeriesInfo

STATISTICS = (
    "count", "min", "max", "sum", "mean", "median", "stddev", "p5", "p95", "first", "last"
)  # fmt: skip

_SQL = """
SELECT series_id, {columns}, epoch_us(min(ts)) AS first_ts, epoch_us(max(ts)) AS last_ts
FROM {source}
WHERE series_id IN {scoped}
  AND ts >= make_timestamp(?::BIGINT) AND ts < make_timestamp(?::BIGINT)
GROUP BY series_id
"""


def statistics(
    cur: duckdb.DuckDBPyConnection, tenant_id: int, selection: list[SeriesInfo], span: TimeRange
) -> dict[str, Any]:
    """{"from", "to", "series": [one object per selected series, count 0 when empty]}."""
    columns = ", ".join(f'{function_sql(name)} AS "{name}"' for name in STATISTICS)
    ids = [s.id for s in selection]
    rows = cur.execute(
        _SQL.format(
            columns=columns,
            scoped=SCOPED_IDS,
            source=points_source(cur, tenant_id, span.from_us, span.to_us),
        ),
        [tenant_id, ids, span.from_us, span.to_us],
    ).fetchall()
    found = {int(row[0]): row[1:] for row in rows}
    return {
        "from": time_or_none(span.from_us),
        "to": time_or_none(span.to_us),
        "series": [_entry(info, found.get(info.id)) for info in selection],
    }


def _entry(info: SeriesInfo, row: tuple[Any, ...] | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "series_id": series_id(info.id),
        "device": info.device,
        "metric": info.metric,
        "tags": info.tags,
        "unit": info.unit,
    }
    if row is None:
        row = (0,) + (None,) * (len(STATISTICS) + 1)
    for name, value in zip(STATISTICS, row, strict=False):
        out[name] = int(value) if name == "count" else number(value)
    out["first_ts"] = time_or_none(row[-2])
    out["last_ts"] = time_or_none(row[-1])
    return out
