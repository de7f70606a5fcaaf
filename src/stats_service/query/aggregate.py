"""Bucketed aggregates of one or many series, chart-ready (columnar arrays).

One DuckDB query computes every function of every bucket of every series; numpy then
spreads the results over the bucket grid and fills the empty buckets. No per-point
Python work, so a day of 10-second data is a few milliseconds per series.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np

from ..model import Int64Array
from ..storage.marks_cache import ColdCatalog, MarksCache
from ..storage.sources import points_source
from . import tiers
from .buckets import Buckets
from .columns import floats, ints, series_id, times, values
from .fill import counts, fill, place
from .params import TimeRange, function_sql
from .series import SCOPED_IDS, series_by_ids


@dataclass(frozen=True, slots=True)
class AggregateQuery:
    span: TimeRange
    buckets: Buckets
    functions: tuple[str, ...] = ("mean",)
    fill: str = "none"
    bucket_label: str = ""


def aggregate_sql(query: AggregateQuery, source: str = "points", ids: str = SCOPED_IDS) -> str:
    """The one query: (series_id, bucket start, count, f0, f1, ...) ordered. `ids`: the SQL
    after `series_id IN` (default: the ids of parameter 2 that are the tenant's, parameter
    1; `ids_filter` for ids already checked)."""
    columns = ", ".join(f"{function_sql(fn)} AS f{i}" for i, fn in enumerate(query.functions))
    return f"""
SELECT series_id, {query.buckets.sql("ts")} AS b, count(*) AS n, {columns}
FROM {source}
WHERE series_id IN {ids}
  AND ts >= make_timestamp(?::BIGINT) AND ts < make_timestamp(?::BIGINT)
GROUP BY ALL ORDER BY series_id, b
"""


def ids_filter(ids: list[int]) -> tuple[str, list[Any]]:
    """SQL after `series_id IN` and its parameters, for ids already known to be the
    tenant's; one id is a one-constant list, which DuckDB reads as `series_id = ?` (zone
    maps skip the other row groups, no join)."""
    if len(ids) == 1:
        return "(?::BIGINT)", [ids[0]]
    return "(SELECT unnest(?::BIGINT[]))", [ids]


def aggregate(
    cur: duckdb.DuckDBPyConnection,
    tenant_id: int,
    ids: list[int],
    query: AggregateQuery,
    *,
    scoped: bool = False,
    marks: MarksCache | None = None,
    cold: ColdCatalog | None = None,
) -> list[dict[str, Any]]:
    """One chart-ready object per series of `ids` (in that order); NotFound for a foreign id.

    `scoped`: the caller took `ids` from a look-up scoped to the tenant (`fleet.find`),
    so the ownership check (one more query) is skipped. Either way the ids are the
    tenant's when the points are read, so that SQL filters by id alone.
    `marks`: the store's watermark cache, so the tier choice needs no query when the
    watermarks did not change since the last read of these series; `cold`: the store's
    cold-file catalog cache, likewise for the cold files of the span."""
    if not scoped:
        series_by_ids(cur, tenant_id, ids)
    buckets = query.buckets
    grid = None if query.fill == "none" else _Grid.of(buckets, query.span)
    buckets.check(query.span.from_us, query.span.to_us)
    ids_sql, ids_params = ids_filter(ids)  # the tenant's: checked above, or by the caller
    params = [*ids_params, query.span.from_us, query.span.to_us]
    source = points_source(cur, tenant_id, query.span.from_us, query.span.to_us, cold)
    answered = tiers.plan(cur, ids, query.span, buckets, query.functions, marks)
    if answered.labels == ["raw"]:
        data = cur.execute(aggregate_sql(query, source, ids_sql), params).fetchnumpy()
    else:  # rollup tiers (exact for these functions) plus the raw points around them
        data = tiers.read(cur, answered, query.span, buckets, query.functions, source)
    sids, keys, n = ints(data["series_id"]), ints(data["b"]), ints(data["n"])
    results = [floats(data[f"f{i}"]) for i in range(len(query.functions))]
    unique, inverse = np.unique(keys, return_inverse=True)
    labels = np.array(times(buckets.starts(unique), buckets.tz), dtype=object)
    span = times(ints([query.span.from_us, query.span.to_us]), micros=True)
    out = []
    for sid in ids:
        lo, hi = int(np.searchsorted(sids, sid)), int(np.searchsorted(sids, sid, "right"))
        head = _head(query, sid, span)
        head.update(answered.head)
        part = [r[lo:hi] for r in results]
        if grid is None:
            head["t"] = labels[inverse[lo:hi]].tolist()
            head["count"] = n[lo:hi].tolist()
            head.update(_columns(query, part))
        else:
            head["t"] = grid.labels
            head.update(grid.spread(query, keys[lo:hi], n[lo:hi], part))
        out.append(head)
    return out


@dataclass(frozen=True, slots=True)
class _Grid:
    """Every bucket of the range: keys (to place data), UTC starts (to interpolate in time)
    and labels."""

    keys: Int64Array
    starts: Int64Array
    labels: list[str]

    @classmethod
    def of(cls, buckets: Buckets, span: TimeRange) -> _Grid:
        keys = buckets.keys(span.from_us, span.to_us)
        starts = buckets.starts(keys)
        return cls(keys, starts, times(starts, buckets.tz))

    def spread(
        self, query: AggregateQuery, at: Int64Array, n: Int64Array, results: list[Any]
    ) -> dict[str, Any]:
        count = counts(self.keys, at, n)
        has_data = count > 0
        out: dict[str, Any] = {"count": count.tolist()}
        for fn, column in zip(query.functions, results, strict=True):
            if fn != "count":
                placed = place(self.keys, at, column)
                out[fn] = values(fill(self.starts, placed, has_data, query.fill))
        return out


def _head(query: AggregateQuery, sid: int, span: list[str]) -> dict[str, Any]:
    return {
        "series_id": series_id(sid),
        "bucket": query.bucket_label,
        "tz": query.buckets.tz,
        "fill": query.fill,
        "from": span[0],
        "to": span[1],
    }


def _columns(query: AggregateQuery, results: list[Any]) -> dict[str, Any]:
    return {
        fn: column.astype(np.int64).tolist() if fn == "count" else values(column)
        for fn, column in zip(query.functions, results, strict=True)
    }
