"""GET /v1/stats: statistics of selected series over a period."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from ...query.params import parse_series_ids, time_range
from ...query.series import SeriesFilter, select_series, tag_filters
from ...query.stats import statistics
from ..deps import ReadPrincipal, ServicesDep
from ..read_models import READ_PROBLEMS, StatsOut

router = APIRouter(tags=["stats"])


@router.get("/v1/stats", response_model=StatsOut, responses=READ_PROBLEMS)
def get_stats(
    request: Request,
    principal: ReadPrincipal,
    services: ServicesDep,
    series: Annotated[str | None, Query(description="Comma-separated series ids.")] = None,
    device: str | None = None,
    metric: str | None = None,
    from_: Annotated[str | None, Query(alias="from", description="Start; default to-24h.")] = None,
    to: Annotated[str | None, Query(description="End (excluded); default now.")] = None,
) -> dict[str, Any]:
    """count, min, max, sum, mean, median, stddev, p5, p95, first, last per series."""
    span = time_range(from_, to, time.time_ns() // 1000)
    ids = parse_series_ids("series", series) if series is not None else None
    where = SeriesFilter(device, metric, tag_filters(request.query_params))
    with services.store.reader() as cur:
        selection = select_series(cur, principal.tenant_id, ids, where)
        return statistics(cur, principal.tenant_id, selection, span)
