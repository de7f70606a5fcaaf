"""GET /v1/aggregate, /v1/latest, /v1/points: many series in one request.

Series are selected by `metric=`, `device=` and `tag.<key>=`, each a comma-separated
list of alternatives (`device=h1,h2`). Handlers only parse parameters and hand on to
`query.fleet`; every answer is bounded (at most 1,000 series, pages of groups or points).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from ...query import fleet
from ...query.params import decode_offset, time_range
from ...storage.marks_cache import cold_catalog, marks_cache
from ..deps import ReadPrincipal, ServicesDep
from ..read_models import READ_PROBLEMS, FleetAggregateOut, FleetPointsOut, LatestPage
from ..read_params import (
    Bucket,
    Cursor,
    Fill,
    From,
    Functions,
    To,
    Tz,
    aggregate_query,
    json_response,
    now_us,
)

router = APIRouter(tags=["fleet"])

Metric = Annotated[
    str | None,
    Query(description="Metric names, comma-separated (any of them).", examples=["cpu_usage_user"]),
]
Device = Annotated[
    str | None, Query(description="Device names, comma-separated.", examples=["h1,h2"])
]
TAGS_NOTE = " Filter by tags with `tag.<key>=v1,v2` (any of the values), e.g. `tag.rack=12`."

_AGGREGATE_EXAMPLE = {
    "from": "2026-11-23T00:00:00.000000Z",
    "to": "2026-11-23T00:02:00.000000Z",
    "bucket": "1m",
    "tz": "UTC",
    "fill": "none",
    "group_by": "series",
    "functions": ["max", "mean"],
    "groups": [
        {
            "series_id": "7310295818716523531",
            "metric": "cpu_usage_user",
            "device": "h1",
            "tags": {"device": "h1"},
            "unit": None,
            "t": ["2026-11-23T00:00:00Z", "2026-11-23T00:01:00Z"],
            "count": [6, 6],
            "max": [91.0, 88.0],
            "mean": [75.5, 80.1],
        }
    ],
    "next_cursor": None,
}
_LATEST_EXAMPLE = {
    "items": [
        {
            "series_id": "7310295818716523531",
            "metric": "cpu_usage_user",
            "device": "h1",
            "tags": {"device": "h1"},
            "unit": None,
            "t": "2026-11-23T23:59:50.000000Z",
            "value": 42.0,
        }
    ],
    "next_cursor": None,
}
_POINTS_EXAMPLE = {
    "from": "2026-11-23T00:00:00.000000Z",
    "to": "2026-11-23T12:00:00.000000Z",
    "series": [
        {
            "series_id": "7310295818716523531",
            "metric": "cpu_usage_user",
            "device": "h1",
            "tags": {"device": "h1"},
            "unit": None,
            "t": ["2026-11-23T03:10:20.000000Z", "2026-11-23T03:10:30.000000Z"],
            "value": [93.0, 95.0],
        }
    ],
    "next_cursor": None,
}


def _responses(example: dict[str, Any]) -> dict[int | str, dict[str, Any]]:
    return {200: {"content": {"application/json": {"example": example}}}, **READ_PROBLEMS}


@router.get(
    "/v1/aggregate",
    response_model=FleetAggregateOut,
    responses=_responses(_AGGREGATE_EXAMPLE),
    description="Aligned buckets of every matching series in one query, columnar per group: "
    "`group_by=series` (one group per series) or `group_by=device` (the series of one device "
    "and metric merged) or `group_by=metric` (every selected series of a metric merged). "
    "At most 1,000 series and 2,000,000 buckets per page." + TAGS_NOTE,
)
def get_aggregate(
    request: Request,
    principal: ReadPrincipal,
    services: ServicesDep,
    metric: Metric = None,
    device: Device = None,
    from_: From = None,
    to: To = None,
    bucket: Bucket = "1m",
    fn: Functions = "mean",
    group_by: Annotated[
        str, Query(description="`series`, `device` (device and metric) or `metric`.")
    ] = "series",
    fill: Fill = "none",
    tz: Tz = "UTC",
    limit: Annotated[int, Query(ge=1, le=1000, description="Groups per page.")] = 100,
    cursor: Cursor = None,
) -> Response:
    """Bucketed aggregates of many series (chart-ready, one object per group)."""
    selection = fleet.parse_selection(metric, device, request.query_params)
    query = aggregate_query(from_, to, bucket, fn, fill, tz)
    offset = decode_offset("cursor", cursor)
    group = group_by.strip().lower()
    marks, cold = marks_cache(services.store), cold_catalog(services.store)
    with services.store.reader() as cur:
        body = fleet.aggregate_fleet(
            cur, principal.tenant_id, selection, query, group, limit, offset, marks, cold
        )
    return json_response(body)


@router.get(
    "/v1/latest",
    response_model=LatestPage,
    responses=_responses(_LATEST_EXAMPLE),
    description="The last reading of every matching series, from the last-value cache "
    "(no scan of the points); every series of the tenant when no filter is given, paged."
    + TAGS_NOTE,
)
def get_latest(
    request: Request,
    principal: ReadPrincipal,
    services: ServicesDep,
    metric: Metric = None,
    device: Device = None,
    limit: Annotated[int, Query(ge=1, le=fleet.LATEST_MAX)] = fleet.LATEST_DEFAULT,
    cursor: Cursor = None,
) -> Response:
    """Last value and time of each matching series."""
    selection = fleet.parse_selection(metric, device, request.query_params)
    offset = decode_offset("cursor", cursor)
    with services.store.reader() as cur:
        body = fleet.latest(cur, principal.tenant_id, selection, limit, offset)
    return json_response(body)


@router.get(
    "/v1/points",
    response_model=FleetPointsOut,
    responses=_responses(_POINTS_EXAMPLE),
    description="Raw points of the matching series in [from, to) that pass a value filter "
    "(`where=value>90`, or `min=`/`max=`, both included), ordered by series and time, "
    "`limit` points per page." + TAGS_NOTE,
)
def get_points(
    request: Request,
    principal: ReadPrincipal,
    services: ServicesDep,
    metric: Metric = None,
    device: Device = None,
    from_: From = None,
    to: To = None,
    where: Annotated[
        str | None, Query(description="`value` op number; op: >, >=, <, <=, =, !=.")
    ] = None,
    min_: Annotated[str | None, Query(alias="min", description="Keep values >= this.")] = None,
    max_: Annotated[str | None, Query(alias="max", description="Keep values <= this.")] = None,
    limit: Annotated[int, Query(ge=1, le=fleet.POINTS_MAX)] = fleet.POINTS_DEFAULT,
    cursor: Cursor = None,
) -> Response:
    """Raw points of many series with a value filter (e.g. hosts over 90 % CPU)."""
    selection = fleet.parse_selection(metric, device, request.query_params)
    span = time_range(from_, to, now_us())
    value_filter = fleet.parse_value_filter(where, min_, max_)
    after = fleet.decode_points_cursor(cursor)
    cold = cold_catalog(services.store)
    with services.store.reader() as cur:
        body = fleet.fleet_points(
            cur, principal.tenant_id, selection, span, value_filter, limit, after, cold
        )
    return json_response(body)
