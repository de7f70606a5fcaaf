"""GET /v1/series...: the caller's series, their raw points and bucketed aggregates."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response

from ...errors import BadParameter, NotFound
from ...model import Principal
from ...query import aggregate as aggregates
from ...query import points, series
from ...query.params import decode_cursor, decode_offset, parse_series_id, time_range
from ...services import Services
from ...storage.marks_cache import cold_catalog, marks_cache
from ..deps import ReadPrincipal, ServicesDep
from ..read_models import (
    READ_PROBLEMS,
    AggregateOut,
    PointsOut,
    SeriesOut,
    SeriesPage,
    StatesOut,
)
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

router = APIRouter(tags=["series"])

SeriesIdPath = Annotated[
    str, Path(pattern=r"^-?[0-9]{1,19}$", description="Series id (decimal, signed 64-bit).")
]


def _sid(text: str) -> int:
    try:
        return parse_series_id("series_id", text)
    except BadParameter:
        raise NotFound(f"series {text} does not exist") from None


@router.get("/v1/series", response_model=SeriesPage, responses=READ_PROBLEMS)
def list_series(
    request: Request,
    principal: ReadPrincipal,
    services: ServicesDep,
    device: str | None = None,
    metric: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the page before.")] = None,
) -> dict[str, Any]:
    """Series of the tenant, filtered by device, metric and `tag.<key>=<value>`, paged."""
    where = series.SeriesFilter(device, metric, series.tag_filters(request.query_params))
    offset = decode_offset("cursor", cursor)
    with services.store.reader() as cur:
        return series.list_series(cur, principal.tenant_id, where, limit, offset)


@router.get("/v1/series/{series_id}", response_model=SeriesOut, responses=READ_PROBLEMS)
def get_series(series_id: SeriesIdPath, principal: ReadPrincipal, services: ServicesDep) -> Any:
    """One series: its metric, tags, unit and latest point."""
    with services.store.reader() as cur:
        return series.get_series(cur, principal.tenant_id, _sid(series_id)).as_dict()


Limit = Annotated[int, Query(ge=1, le=points.MAX_LIMIT)]


def _page(
    read: points.PageReader,
    services: Services,
    principal: Principal,
    series_id: str,
    span: tuple[str | None, str | None],
    limit: int,
    cursor: str | None,
) -> Response:
    """One page of a series' points or states, oldest first."""
    window = time_range(span[0], span[1], now_us())
    after = decode_cursor("cursor", cursor)
    with services.store.reader() as cur:
        body = read(cur, principal.tenant_id, _sid(series_id), window, limit, after)
    return json_response(body)


@router.get("/v1/series/{series_id}/points", response_model=PointsOut, responses=READ_PROBLEMS)
def get_points(
    series_id: SeriesIdPath,
    principal: ReadPrincipal,
    services: ServicesDep,
    from_: From = None,
    to: To = None,
    limit: Limit = points.DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Response:
    """Raw points in [from, to), oldest first, `limit` at a time (columnar)."""
    return _page(points.read_points, services, principal, series_id, (from_, to), limit, cursor)


@router.get("/v1/series/{series_id}/states", response_model=StatesOut, responses=READ_PROBLEMS)
def get_states(
    series_id: SeriesIdPath,
    principal: ReadPrincipal,
    services: ServicesDep,
    from_: From = None,
    to: To = None,
    limit: Limit = points.DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Response:
    """Text values (states such as `on`, `heat`, a firmware version) in [from, to), oldest
    first. Numbers of the same series are under `/points`."""
    return _page(points.read_states, services, principal, series_id, (from_, to), limit, cursor)


@router.get(
    "/v1/series/{series_id}/aggregate", response_model=AggregateOut, responses=READ_PROBLEMS
)
def get_aggregate(
    series_id: SeriesIdPath,
    principal: ReadPrincipal,
    services: ServicesDep,
    from_: From = None,
    to: To = None,
    bucket: Bucket = "1m",
    fn: Functions = "mean",
    fill: Fill = "none",
    tz: Tz = "UTC",
) -> Response:
    """Aligned buckets of one series with the requested functions (columnar, chart-ready)."""
    query = aggregate_query(from_, to, bucket, fn, fill, tz)
    with services.store.reader() as cur:
        marks, cold = marks_cache(services.store), cold_catalog(services.store)
        sid = _sid(series_id)
        body = aggregates.aggregate(cur, principal.tenant_id, [sid], query, marks=marks, cold=cold)
    return json_response(body[0])
