"""Queries over many series at once: a fleet of devices, or every field of a host.

A `Selection` names series by metric, device and tag values (each a list of
alternatives); it resolves to series ids with one query over `series`. Then:

- `aggregate_fleet` computes bucketed aggregates for every matching series in one store
  query. `group_by=series` hands the ids to `query.aggregate.aggregate`, so a faster
  source (rollup tiers, cold tier) chosen there is used here too; `group_by=device`
  merges the series of one (device, metric) pair, `group_by=metric` every selected
  series of one metric (the max over 8 hosts): functions such as max, mean or p95
  cannot be merged from per-series results, so that query runs over the points of the
  whole group.
- `latest` answers from the last-value cache of `series` (`last_ts`, `last_value`)
  without touching `points`.
- `fleet_points` pages through the raw points of the matching series with a value
  filter (`value>90`), ordered by (series, time), with a cursor that holds both.

The points come from `storage.sources.points_source` (the hot table plus the cold files
of the span), like every other read.

Every answer is bounded: at most MAX_SERIES_IDS series per query, at most
MAX_AGGREGATE_CELLS buckets over all groups of one page, page sizes capped.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import orjson

from ..errors import BadParameter, NotFound
from ..model import Int64Array
from ..storage.marks_cache import ColdCatalog, MarksCache
from ..storage.sources import points_source
from . import aggregate as aggregates
from .columns import floats, ints, number, series_id, times, values
from .fill import counts, fill, place
from .params import MAX_SERIES_IDS, TimeRange, encode_cursor, function_sql
from .series import SERIES_COLUMNS, TAG_PREFIX, SeriesInfo

GROUP_BY = ("series", "device", "metric")
MAX_AGGREGATE_CELLS = 2_000_000  # buckets x groups of one page
MAX_LIST = 1000  # alternatives of one parameter (metric=a,b,...)
LATEST_DEFAULT, LATEST_MAX = 1000, 10_000
POINTS_DEFAULT, POINTS_MAX = 10_000, 100_000
_WHERE = re.compile(r"\s*value\s*(>=|<=|!=|>|<|=)\s*(\S+)\s*")
_OPS = {">": ">", ">=": ">=", "<": "<", "<=": "<=", "=": "=", "!=": "<>"}


@dataclass(frozen=True, slots=True)
class Selection:
    """Series whose metric is one of `metrics`, device one of `devices` and, for every
    tag key, value one of its alternatives. An empty list does not filter."""

    metrics: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()
    tags: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def empty(self) -> bool:
        return not self.metrics and not self.devices and not self.tags

    def where(self, tenant_id: int) -> tuple[str, list[Any]]:
        """The WHERE clause over alias `s` and its parameters."""
        clauses: list[str] = ["s.tenant_id = ?"]
        params: list[Any] = [tenant_id]
        if self.metrics:
            clauses.append(_any_of("s.metric", [], self.metrics, params))
        if self.devices:
            clauses.append(_any_of("s.device", [], self.devices, params))
        for key, alternatives in self.tags:
            pointer = "/" + key.replace("~", "~0").replace("/", "~1")
            column = "json_extract_string(s.tags, ?)"
            clauses.append(_any_of(column, [pointer], alternatives, params))
        return " AND ".join(clauses), params


def _any_of(
    column: str, column_params: list[Any], alternatives: tuple[str, ...], params: list[Any]
) -> str:
    """`column` (with its own parameters) is one of `alternatives`; a plain `=` for one
    (cheaper for DuckDB than a list parameter, and the common one-series read)."""
    if len(alternatives) == 1:
        params += [*column_params, alternatives[0]]
        return f"{column} = ?"
    params += [list(alternatives), *column_params]
    return f"list_contains(?::VARCHAR[], {column})"


def _names(param: str, text: str | None) -> tuple[str, ...]:
    if text is None:
        return ()
    names = tuple(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))
    if not names:
        raise BadParameter(param, "give at least one name, or leave the parameter out")
    if len(names) > MAX_LIST:
        raise BadParameter(param, f"at most {MAX_LIST} names")
    return names


def parse_selection(metric: str | None, device: str | None, query: Mapping[str, str]) -> Selection:
    """`metric=a,b`, `device=h1,h2` and `tag.<key>=v1,v2` of a query string."""
    tags = []
    for name, value in query.items():
        if name.startswith(TAG_PREFIX):
            key = name[len(TAG_PREFIX) :]
            if not key:
                raise BadParameter(name, "give the tag key after `tag.`, e.g. tag.room=kitchen")
            tags.append((key, _names(name, value)))
    return Selection(_names("metric", metric), _names("device", device), tuple(sorted(tags)))


def find(
    cur: duckdb.DuckDBPyConnection, tenant_id: int, selection: Selection, *, required: bool = True
) -> list[SeriesInfo]:
    """The matching series ordered by metric, device, id; at most MAX_SERIES_IDS."""
    if required and selection.empty:
        raise BadParameter("metric", "select series: give metric=, device= or tag.<key>=")
    clause, params = selection.where(tenant_id)
    rows = cur.execute(
        f"SELECT {SERIES_COLUMNS} FROM series s WHERE {clause} "
        "ORDER BY s.metric, s.device NULLS FIRST, s.id LIMIT ?",
        [*params, MAX_SERIES_IDS + 1],
    ).fetchall()
    if len(rows) > MAX_SERIES_IDS:
        raise BadParameter(
            "metric", f"more than {MAX_SERIES_IDS} series match; narrow the selection"
        )
    return [SeriesInfo.from_row(r) for r in rows]


def _key(info: SeriesInfo) -> dict[str, Any]:
    return {
        "series_id": series_id(info.id),
        "metric": info.metric,
        "device": info.device,
        "tags": info.tags,
        "unit": info.unit,
    }


# -- aggregates ---------------------------------------------------------------------------


def aggregate_fleet(
    cur: duckdb.DuckDBPyConnection,
    tenant_id: int,
    selection: Selection,
    query: aggregates.AggregateQuery,
    group_by: str,
    limit: int,
    offset: int,
    marks: MarksCache | None = None,
    cold: ColdCatalog | None = None,
) -> dict[str, Any]:
    """One chart-ready object per group (a page of `limit` groups from `offset`); `marks`
    and `cold` are the store's catalog caches (see `query.aggregate.aggregate`)."""
    if group_by not in GROUP_BY:
        raise BadParameter("group_by", f"{group_by!r} is not valid; use {' or '.join(GROUP_BY)}")
    found = find(cur, tenant_id, selection)
    groups: dict[tuple[str, str | None] | int, list[SeriesInfo]] = {}
    for info in found:
        key: tuple[str, str | None] | int = info.id
        if group_by != "series":
            key = (info.metric, info.device if group_by == "device" else None)
        groups.setdefault(key, []).append(info)
    members = list(groups.values())
    page = members[offset : offset + limit]
    query.buckets.check(query.span.from_us, query.span.to_us)
    per_group = (query.span.to_us - query.span.from_us) // query.buckets.width_us + 1
    if per_group * max(len(page), 1) > MAX_AGGREGATE_CELLS:
        raise BadParameter(
            "limit",
            f"{len(page)} groups x {per_group} buckets is over {MAX_AGGREGATE_CELLS:,} values; "
            "use a larger bucket, a shorter range or a smaller limit",
        )
    if not page:
        out: list[dict[str, Any]] = []
    elif group_by == "series":
        ids = [g[0].id for g in page]
        bodies = aggregates.aggregate(
            cur, tenant_id, ids, query, scoped=True, marks=marks, cold=cold
        )
        out = [_series_group(g[0], body) for g, body in zip(page, bodies, strict=True)]
    else:
        out = _merged_groups(cur, tenant_id, page, query, group_by, cold)
    more = offset + limit < len(members)
    span = times(ints([query.span.from_us, query.span.to_us]), micros=True)
    return {
        "from": span[0],
        "to": span[1],
        "bucket": query.bucket_label,
        "tz": query.buckets.tz,
        "fill": query.fill,
        "group_by": group_by,
        "functions": list(query.functions),
        "groups": out,
        "next_cursor": encode_cursor(offset + limit) if more else None,
    }


def _series_group(info: SeriesInfo, body: dict[str, Any]) -> dict[str, Any]:
    group = _key(info)
    for name in ("series_id", "bucket", "tz", "fill", "from", "to"):
        body.pop(name, None)
    group.update(body)
    return group


def merged_sql(query: aggregates.AggregateQuery, source: str = "points") -> str:
    """(group, bucket, count, f0, ...) over the points of the series of each group."""
    columns = ", ".join(
        f"{function_sql(fn, 'p.value', 'p.ts')} AS f{i}" for i, fn in enumerate(query.functions)
    )
    return f"""
SELECT g.grp, {query.buckets.sql("p.ts")} AS b, count(*) AS n, {columns}
FROM {source} p
JOIN (SELECT unnest(?::BIGINT[]) AS id, unnest(?::BIGINT[]) AS grp) g ON p.series_id = g.id
WHERE p.ts >= make_timestamp(?::BIGINT) AND p.ts < make_timestamp(?::BIGINT)
GROUP BY ALL ORDER BY g.grp, b
"""


def _merged_groups(
    cur: duckdb.DuckDBPyConnection,
    tenant_id: int,
    page: list[list[SeriesInfo]],
    query: aggregates.AggregateQuery,
    group_by: str,
    cold: ColdCatalog | None = None,
) -> list[dict[str, Any]]:
    buckets, span = query.buckets, query.span
    buckets.check(span.from_us, span.to_us)
    ids = [info.id for group in page for info in group]
    grp = [i for i, group in enumerate(page) for _ in group]
    source = points_source(cur, tenant_id, span.from_us, span.to_us, cold)
    params = [ids, grp, span.from_us, span.to_us]
    data = cur.execute(merged_sql(query, source), params).fetchnumpy()
    gids, keys, n = ints(data["grp"]), ints(data["b"]), ints(data["n"])
    results = [floats(data[f"f{i}"]) for i in range(len(query.functions))]
    grid_keys = None if query.fill == "none" else buckets.keys(span.from_us, span.to_us)
    out = []
    for i, group in enumerate(page):
        lo, hi = int(np.searchsorted(gids, i)), int(np.searchsorted(gids, i, "right"))
        head: dict[str, Any] = {
            "metric": group[0].metric,
            "device": group[0].device if group_by == "device" else None,
            "series_ids": [series_id(info.id) for info in group],
            "unit": group[0].unit,
        }
        part = [r[lo:hi] for r in results]
        if grid_keys is None:
            head["t"] = times(buckets.starts(keys[lo:hi]), buckets.tz)
            head["count"] = n[lo:hi].tolist()
            for fn, column in zip(query.functions, part, strict=True):
                head[fn] = column.astype(np.int64).tolist() if fn == "count" else values(column)
        else:
            head.update(_spread(query, grid_keys, keys[lo:hi], n[lo:hi], part))
        out.append(head)
    return out


def _spread(
    query: aggregates.AggregateQuery,
    grid: Int64Array,
    at: Int64Array,
    n: Int64Array,
    results: list[Any],
) -> dict[str, Any]:
    starts = query.buckets.starts(grid)
    count = counts(grid, at, n)
    out: dict[str, Any] = {"t": times(starts, query.buckets.tz), "count": count.tolist()}
    for fn, column in zip(query.functions, results, strict=True):
        if fn != "count":
            out[fn] = values(fill(starts, place(grid, at, column), count > 0, query.fill))
    return out


# -- last values --------------------------------------------------------------------------


_LATEST_COLUMNS = "s.id, s.metric, s.device, s.tags, s.unit, epoch_us(s.last_ts), s.last_value"


def latest(
    cur: duckdb.DuckDBPyConnection, tenant_id: int, selection: Selection, limit: int, offset: int
) -> dict[str, Any]:
    """The last reading of every matching series that has one, from the series table.

    A page of 1,000 series must answer in a few milliseconds, so the tags go out as the
    stored JSON text (never parsed and dumped again) and the times are formatted in one
    vectorised call."""
    clause, params = selection.where(tenant_id)
    rows = cur.execute(
        f"SELECT {_LATEST_COLUMNS} FROM series s WHERE {clause} AND s.last_ts IS NOT NULL "
        "ORDER BY s.metric, s.device NULLS FIRST, s.id LIMIT ? OFFSET ?",
        [*params, limit + 1, offset],
    ).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    stamps = times(ints([r[5] for r in rows]), micros=True)
    items = [
        {
            "series_id": str(r[0]),
            "metric": r[1],
            "device": r[2],
            "tags": orjson.Fragment(r[3]),
            "unit": r[4],
            "t": t,
            "value": number(r[6]),
        }
        for r, t in zip(rows, stamps, strict=True)
    ]
    return {"items": items, "next_cursor": encode_cursor(offset + limit) if more else None}


# -- raw points with a value filter -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ValueFilter:
    """`value <op> number` clauses, all of which must hold."""

    clauses: tuple[tuple[str, float], ...] = ()

    def sql(self) -> tuple[str, list[float]]:
        text = "".join(f" AND p.value {_OPS[op]} ?" for op, _ in self.clauses)
        return text, [bound for _, bound in self.clauses]


def parse_value_filter(where: str | None, low: str | None, high: str | None) -> ValueFilter:
    """`where=value>90` (also >=, <, <=, =, !=) and/or `min=` (>=) / `max=` (<=)."""
    clauses: list[tuple[str, float]] = []
    if where is not None and where.strip():
        match = _WHERE.fullmatch(where)
        if match is None:
            raise BadParameter(
                "where", f"{where!r} is not a filter; use value>90 (>, >=, <, <=, =, !=)"
            )
        clauses.append((match[1], _bound("where", match[2])))
    if low is not None:
        clauses.append((">=", _bound("min", low)))
    if high is not None:
        clauses.append(("<=", _bound("max", high)))
    return ValueFilter(tuple(clauses))


def _bound(param: str, text: str) -> float:
    try:
        bound = float(text)
    except ValueError:
        raise BadParameter(param, f"{text!r} is not a number") from None
    if not math.isfinite(bound):
        raise BadParameter(param, "must be a finite number")
    return bound


def encode_points_cursor(sid: int, ts_us: int) -> str:
    return base64.urlsafe_b64encode(f"{sid}:{ts_us}".encode()).decode().rstrip("=")


def decode_points_cursor(text: str | None) -> tuple[int, int] | None:
    """(series id, time) of the last point of the page before."""
    if not text:
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii")
        match = re.fullmatch(r"(-?\d{1,20}):(-?\d{1,20})", raw)
        if match is None:
            raise ValueError(raw)
        return int(match[1]), int(match[2])
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadParameter(
            "cursor", "not a cursor returned by this API; pass `next_cursor` unchanged"
        ) from None


_POINTS_SQL = """
SELECT p.series_id, epoch_us(p.ts) AS t, p.value FROM {source} p
WHERE p.series_id IN {ids}
  AND p.ts >= make_timestamp(?::BIGINT) AND p.ts < make_timestamp(?::BIGINT)
  AND (p.series_id > ? OR (p.series_id = ? AND p.ts > make_timestamp(?::BIGINT))){filter}
ORDER BY p.series_id, p.ts LIMIT ?
"""


def fleet_points(
    cur: duckdb.DuckDBPyConnection,
    tenant_id: int,
    selection: Selection,
    span: TimeRange,
    where: ValueFilter,
    limit: int,
    after: tuple[int, int] | None,
    cold: ColdCatalog | None = None,
) -> dict[str, Any]:
    """Raw points of the matching series in [from, to) that pass `where`, by series and
    time; one object per series with points on this page (`cold`: the store's cold-file
    catalog cache)."""
    found = find(cur, tenant_id, selection)
    if not found:
        raise NotFound("no series matches the selection")
    info = {s.id: s for s in found}
    sid0, ts0 = after if after is not None else (-(2**63), span.from_us - 1)
    text, bounds = where.sql()
    source = points_source(cur, tenant_id, span.from_us, span.to_us, cold)
    ids_sql, ids_params = aggregates.ids_filter(list(info))  # found scoped to the tenant
    sql = _POINTS_SQL.format(source=source, filter=text, ids=ids_sql)
    params = [*ids_params, span.from_us, span.to_us, sid0, sid0, ts0, *bounds, limit + 1]
    data = cur.execute(sql, params).fetchnumpy()
    sids, stamps, numbers = ints(data["series_id"]), ints(data["t"]), floats(data["value"])
    more = sids.shape[0] > limit
    sids, stamps, numbers = sids[:limit], stamps[:limit], numbers[:limit]
    labels = np.array(times(stamps, micros=True), dtype=object)
    unique, starts = np.unique(sids, return_index=True)
    ends = [*starts[1:].tolist(), sids.shape[0]]
    items = []
    for sid, lo, hi in zip(unique.tolist(), starts.tolist(), ends, strict=True):
        item = _key(info[sid])
        item["t"] = labels[lo:hi].tolist()
        item["value"] = values(numbers[lo:hi])
        items.append(item)
    bounds_text = times(ints([span.from_us, span.to_us]), micros=True)
    cursor = encode_points_cursor(int(sids[-1]), int(stamps[-1])) if more else None
    return {"from": bounds_text[0], "to": bounds_text[1], "series": items, "next_cursor": cursor}
