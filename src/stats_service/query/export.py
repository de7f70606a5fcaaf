"""Streamed export of raw points or bucketed aggregates, in constant memory.

`plan_export` checks every parameter and resolves the selection (so errors are answered
before the first byte); `export_chunks` then yields bytes. The range is split into
windows of a bounded number of points (`windows.py`); each window is one ordered DuckDB
query read as Arrow batches and encoded (`encoders.py`).

    layout=long   time, series_id, device, metric, value   (or count, <fn>... per bucket)
    layout=wide   time, then one column per series (`device.metric` or `metric{tags}`),
                  pivoted in DuckDB by grouping on the time
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import duckdb

from ..errors import BadParameter
from ..ingest.timestamps import MAX_US, MIN_US
from ..storage.sources import points_source
from .buckets import Buckets
from .columns import ints, times
from .encoders import ENCODERS, Column
from .params import (
    TimeRange,
    function_sql,
    parse_duration,
    parse_functions,
    parse_series_ids,
    parse_tz,
    time_range,
)
from .series import SCOPED_IDS, SeriesFilter, SeriesInfo, select_series, tag_filters
from .windows import extent, windows

LAYOUTS = ("long", "wide")
MAX_WIDE_COLUMNS = 1000
WINDOW_BATCHES = 2  # a window holds about this many batches of points


@dataclass(frozen=True, slots=True)
class ExportRequest:
    """The raw parameters of an export, as a query string or the CLI gives them."""

    series: str | None = None
    device: str | None = None
    metric: str | None = None
    tags: tuple[tuple[str, str], ...] = ()
    from_: str | None = None
    to: str | None = None
    format: str = "csv"
    layout: str = "long"
    bucket: str | None = None
    fn: str | None = None
    tz: str | None = None

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> ExportRequest:
        get = query.get
        return cls(
            series=get("series"),
            device=get("device"),
            metric=get("metric"),
            tags=tag_filters(query),
            from_=get("from"),
            to=get("to"),
            format=get("format") or "csv",
            layout=get("layout") or "long",
            bucket=get("bucket"),
            fn=get("fn"),
            tz=get("tz"),
        )


@dataclass(frozen=True, slots=True)
class ExportPlan:
    tenant_id: int
    series: tuple[SeriesInfo, ...]
    span: TimeRange
    format: str
    layout: str = "long"
    buckets: Buckets | None = None
    functions: tuple[str, ...] = ()
    batch_rows: int = 50_000

    @property
    def ids(self) -> list[int]:
        return [s.id for s in self.series]

    @property
    def media_type(self) -> str:
        return ENCODERS[self.format][0]

    @property
    def filename(self) -> str:
        extension = ENCODERS[self.format][1]
        return f"export-{_stamp(self.span.from_us)}-{_stamp(self.span.to_us)}.{extension}"


def plan_export(
    cur: duckdb.DuckDBPyConnection,
    tenant_id: int,
    request: ExportRequest,
    now_us: int,
    batch_rows: int = 50_000,
) -> ExportPlan:
    """Check the request and resolve its series; every refusal happens here."""
    if request.format not in ENCODERS:
        raise BadParameter("format", f"{request.format!r} is not one of {', '.join(ENCODERS)}")
    if request.layout not in LAYOUTS:
        raise BadParameter("layout", f"{request.layout!r} is not one of {', '.join(LAYOUTS)}")
    span = time_range(request.from_, request.to, now_us, default_span_us=None, open_end=True)
    ids = parse_series_ids("series", request.series) if request.series else None
    where = SeriesFilter(request.device, request.metric, request.tags)
    selection = tuple(select_series(cur, tenant_id, ids, where))
    buckets: Buckets | None = None
    functions: tuple[str, ...] = ()
    if request.bucket:
        buckets = Buckets(parse_duration("bucket", request.bucket), parse_tz(request.tz))
        functions = tuple(parse_functions(request.fn))
        found = extent(cur, tenant_id, [s.id for s in selection], span)
        if found is not None:
            buckets.check(found.first_us, found.end_us)
    elif request.fn:
        raise BadParameter("fn", "functions need a bucket: add bucket=1m (or another width)")
    plan = ExportPlan(
        tenant_id, selection, span, request.format, request.layout, buckets, functions, batch_rows
    )
    if plan.layout == "wide" and len(_values(plan)) > MAX_WIDE_COLUMNS:
        raise BadParameter("layout", f"wide exports hold at most {MAX_WIDE_COLUMNS} columns")
    return plan


def export_chunks(cur: duckdb.DuckDBPyConnection, plan: ExportPlan) -> Iterator[bytes]:
    """The bytes of the export, window by window, batch by batch."""
    encoder = ENCODERS[plan.format][2](_columns(plan))
    select, select_params = encoder.select()
    found = extent(cur, plan.tenant_id, plan.ids, plan.span)
    spans = (
        []
        if found is None
        else windows(cur, plan.tenant_id, plan.ids, found, plan.batch_rows * WINDOW_BATCHES)
    )
    if plan.buckets is not None:
        spans = _snap(spans, plan.buckets)
    started = False
    for lo, hi in spans or [(plan.span.from_us, plan.span.from_us)]:
        source = points_source(cur, plan.tenant_id, lo, hi)  # hot table + cold files
        sql, params = _query(plan, select, lo, hi, source)
        relation = cur.sql(sql, params=[*select_params, *params])
        assert relation is not None
        reader = relation.to_arrow_reader(plan.batch_rows)
        if not started:
            started = True
            yield encoder.begin(reader.schema)
        for batch in reader:
            if batch.num_rows and (chunk := encoder.batch(batch)):
                yield chunk
    yield encoder.end()


def _snap(spans: list[tuple[int, int]], buckets: Buckets) -> list[tuple[int, int]]:
    """Move inner window boundaries to bucket starts, so no bucket is split."""
    if not spans:
        return spans
    bounds = [spans[0][0]]
    for _, end in spans[:-1]:
        start = buckets.start_of(end)
        if start > bounds[-1]:
            bounds.append(start)
    bounds.append(spans[-1][1])
    return list(itertools.pairwise(bounds))


def _values(plan: ExportPlan) -> list[tuple[str, str, str]]:
    """(output name, inner SQL, kind) of the value columns."""
    if plan.layout == "long":
        if plan.buckets is None:
            return [("value", "value", "number")]
        rest = [(fn, function_sql(fn), "number") for fn in plan.functions if fn != "count"]
        return [("count", "count(*)", "count"), *rest]
    labels = _labels(plan.series)
    out = []
    for s in plan.series:
        only = f"FILTER (WHERE series_id = {s.id})"
        if plan.buckets is None:
            out.append((labels[s.id], f"max(value) {only}", "number"))
            continue
        for fn in plan.functions:
            name = labels[s.id] if len(plan.functions) == 1 else f"{labels[s.id]}:{fn}"
            out.append((name, f"{function_sql(fn)} {only}", "count" if fn == "count" else "number"))
    return out


def _columns(plan: ExportPlan) -> list[Column]:
    """Output columns over the window query `q` (and `m`, the series metadata)."""
    time_sql = "q._t"  # raw points: the TIMESTAMP itself
    if plan.buckets is not None:
        time_sql = "make_timestamp(q._t)"
        if plan.buckets.calendar:  # local midnight -> UTC, from Python (DuckDB as a fallback)
            zone = plan.buckets.tz.replace("'", "''")
            local = f"epoch_us(timezone('{zone}', make_timestamp(q._t)))"
            time_sql = f"make_timestamp(coalesce(k.start, {local}))"
    head = [Column("time", time_sql, "time")]
    if plan.layout == "long":
        head += [
            Column("series_id", "q._s", "id"),
            Column("device", "m.device", "text"),
            Column("metric", "m.metric", "text"),
        ]
    return head + [Column(name, f"q.v{i}", kind) for i, (name, _, kind) in enumerate(_values(plan))]


def _query(
    plan: ExportPlan, select: str, lo: int, hi: int, source: str = "points"
) -> tuple[str, list[Any]]:
    """The ordered query of one window [lo, hi) and its parameters (after the select's)."""
    long = plan.layout == "long"
    sql = f"SELECT {select} FROM ({_inner(plan, lo, hi, source)}) q"
    params: list[Any] = [plan.tenant_id, plan.ids]
    if long:
        sql += (
            " JOIN (SELECT unnest(?::BIGINT[]) AS id, unnest(?::VARCHAR[]) AS device, "
            "unnest(?::VARCHAR[]) AS metric) m ON m.id = q._s"
        )
        params += [plan.ids, [s.device for s in plan.series], [s.metric for s in plan.series]]
    if plan.buckets is not None and plan.buckets.calendar:
        keys = plan.buckets.keys(lo, hi)  # calendar keys -> UTC starts, computed in Python
        sql += " LEFT JOIN (SELECT unnest(?::BIGINT[]) AS key, unnest(?::BIGINT[]) AS start) k"
        sql += " ON k.key = q._t"
        params += [keys.tolist(), plan.buckets.starts(keys).tolist()]
    return sql + (" ORDER BY q._t, q._s" if long else " ORDER BY q._t"), params


def _inner(plan: ExportPlan, lo: int, hi: int, source: str = "points") -> str:
    """Points of the window: raw, or grouped by time (wide) and bucket (aggregates)."""
    time_sql = "ts" if plan.buckets is None else plan.buckets.sql("ts")
    values = ", ".join(f"{sql} AS v{i}" for i, (_, sql, _) in enumerate(_values(plan)))
    long = plan.layout == "long"
    grouped = plan.buckets is not None or not long
    return (
        f"SELECT {time_sql} AS _t, {'series_id AS _s, ' if long else ''}{values} FROM {source} "
        f"WHERE series_id IN {SCOPED_IDS} AND ts >= make_timestamp({lo}::BIGINT) "
        f"AND ts < make_timestamp({hi}::BIGINT)"
        + (f" GROUP BY {'_t, _s' if long else '_t'}" if grouped else "")
    )


def _labels(series: tuple[SeriesInfo, ...]) -> dict[int, str]:
    """Column names of a wide export; a repeated label gets the series id appended."""
    seen: dict[str, int] = {}
    for s in series:
        seen[s.label] = seen.get(s.label, 0) + 1
    return {s.id: s.label if seen[s.label] == 1 else f"{s.label}#{s.id}" for s in series}


def _stamp(us: int) -> str:
    if us <= MIN_US:
        return "start"
    if us >= MAX_US:
        return "end"
    return times(ints([us]))[0].replace("-", "").replace(":", "")
