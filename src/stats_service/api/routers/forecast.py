"""GET /v1/series/{series_id}/forecast: a forecast of one series (docs/forecasting.md).

The series' bucket means (the buckets of `/aggregate`) feed a model chosen by backtest
among seasonal naive, ETS and ARIMA (analytics/forecast.py). Short work answers at once
(200); long work (more than ASYNC_BUCKETS buckets of history, a horizon over
ASYNC_HORIZON, or `async=true`) runs as a task of kind `forecast`: 202 with the task,
whose result (`GET /tasks/{task_id}`) is the same body.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from ...analytics import forecast as fc
from ...errors import BadParameter
from ...jobs.tasks import TaskContext, TaskKind, register_kind
from ...query.params import UNITS_US, parse_duration, parse_tz, time_range
from ...storage.marks_cache import cold_catalog, marks_cache
from ..deps import ReadPrincipal, ServicesDep
from ..read_models import READ_PROBLEMS
from ..read_params import From, To, json_response, now_us
from .series import SeriesIdPath, _sid
from .tasks import TaskStatus, task_status

router = APIRouter(tags=["analytics"])

KIND = "forecast"
DEFAULT_SPAN_US = 7 * 86_400 * 10**6


def _run_task(ctx: TaskContext, params: dict[str, Any]) -> dict[str, Any]:
    request = fc.Request.of(params["request"])
    with ctx.store.reader() as cur:
        loaded = fc.load(cur, ctx.tenant_id, request, int(params["max_points"]))
    return fc.answer(loaded, ctx.progress)


FORECAST_TASK = register_kind(TaskKind(KIND, _run_task, rerun_safe=True))


class Band(BaseModel):
    lo: list[float | None]
    hi: list[float | None]


class ForecastOut(BaseModel):
    """A forecast: the chosen model, every candidate's backtest errors, the point
    forecast and its intervals per level."""

    model_config = ConfigDict(extra="allow")

    series_id: str
    unit: str | None = None
    bucket: str = Field(examples=["1h"])
    tz: str
    horizon: int = Field(description="Buckets forecast.")
    levels: list[str] = Field(examples=[["80", "95"]])
    season: dict[str, Any] = Field(
        description="`buckets` (null: none), `duration`, `detected` (false when given), "
        "`strength` (0..1)."
    )
    model: str = Field(examples=["ets"], description="seasonal_naive, ets or arima.")
    mase: float | None = Field(None, description="Backtest MASE of the chosen model.")
    smape: float | None = Field(None, description="Backtest sMAPE (%) of the chosen model.")
    candidates: list[dict[str, Any]]
    t: list[str] = Field(description="Start of each forecast bucket.")
    forecast: list[float | None]
    intervals: dict[str, Band] = Field(description="Per level (`80`, `95`): lo and hi.")
    history: dict[str, Any] = Field(
        description="from, to, points (buckets used), raw_points, interpolated."
    )
    notes: list[str]


Horizon = Annotated[
    str | None,
    Query(
        description="Buckets to forecast (`48`) or a duration (`2d`); default a fifth of "
        f"the history; at most {fc.MAX_HORIZON} buckets."
    ),
]
BucketParam = Annotated[
    str | None,
    Query(description="Bucket width (10s, 1m, 1h, 1d...); default about 500 buckets."),
]
Levels = Annotated[
    str | None, Query(description="Interval levels in percent, comma-separated: 80,95.")
]
Season = Annotated[
    str | None,
    Query(description="Season in buckets (`24`) or as a duration (`1d`); `none`; default detect."),
]
Model = Annotated[
    str | None, Query(description="Force one candidate: seasonal_naive, ets or arima.")
]
Async = Annotated[
    str | None, Query(alias="async", description="true: always answer 202 with a task.")
]
Tz = Annotated[str | None, Query(description="IANA zone of day/week buckets and of `t`.")]


def _bucket(text: str | None, span_us: int) -> int:
    if text is None or not text.strip():
        return fc.default_bucket_us(span_us)
    return parse_duration("bucket", text)


def _buckets_of(param: str, text: str, bucket_us: int) -> int:
    """A count of buckets from `48` or a duration (`2d`, rounded up to whole buckets)."""
    value = text.strip().lower()
    if value.lstrip("-").isdigit():
        return int(value)
    if value and value[-1] in UNITS_US:
        return math.ceil(parse_duration(param, value) / bucket_us)
    raise BadParameter(param, f"{text!r} is neither a number of buckets nor a duration (2d)")


def _horizon(text: str | None, bucket_us: int) -> int | None:
    if text is None or not text.strip():
        return None
    horizon = _buckets_of("horizon", text, bucket_us)
    if not 1 <= horizon <= fc.MAX_HORIZON:
        raise BadParameter(
            "horizon", f"{horizon} buckets; give 1 to {fc.MAX_HORIZON} (or a larger bucket)"
        )
    return horizon


def _season(text: str | None, bucket_us: int) -> int | None:
    """None: detect; 0: no season; else the season in buckets."""
    if text is None or text.strip().lower() in ("", "auto"):
        return None
    if text.strip().lower() in ("none", "0", "off"):
        return 0
    season = _buckets_of("season", text, bucket_us)
    if not 2 <= season <= fc.MAX_SEASON:
        raise BadParameter(
            "season", f"{season} buckets; a season is 2 to {fc.MAX_SEASON} buckets (or none)"
        )
    return season


def _model(text: str | None) -> str | None:
    if text is None or not text.strip():
        return None
    name = text.strip().lower()
    if name not in fc.MODELS:
        raise BadParameter("model", f"{text!r} is not a model; valid are {', '.join(fc.MODELS)}")
    return name


def _flag(text: str | None) -> bool:
    value = (text or "false").strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no", ""):
        return False
    raise BadParameter("async", f"{text!r} is not a boolean; use true or false")


@router.get(
    "/v1/series/{series_id}/forecast",
    response_model=ForecastOut,
    responses={
        **READ_PROBLEMS,
        202: {"model": TaskStatus, "description": "Long work: the task (GET /tasks/{id})."},
    },
)
def get_forecast(
    series_id: SeriesIdPath,
    principal: ReadPrincipal,
    services: ServicesDep,
    from_: From = None,
    to: To = None,
    horizon: Horizon = None,
    bucket: BucketParam = None,
    levels: Levels = None,
    season: Season = None,
    model: Model = None,
    tz: Tz = None,
    async_: Async = None,
) -> Response:
    """Forecast the series' bucket means `horizon` buckets ahead with the model that
    backtests best (MASE) among seasonal naive, ETS and ARIMA; prediction intervals at
    `levels`. Default range: the last 7 days. Long work answers 202 with a task whose
    result (`GET /tasks/{task_id}`) is this same body."""
    span = time_range(from_, to, now_us(), default_span_us=DEFAULT_SPAN_US)
    bucket_us = _bucket(bucket, span.to_us - span.from_us)
    request = fc.Request(
        series_id=_sid(series_id),
        from_us=span.from_us,
        to_us=span.to_us,
        bucket_us=bucket_us,
        tz=parse_tz(tz),
        horizon=_horizon(horizon, bucket_us) or 0,
        levels=fc.parse_levels(levels),
        season=_season(season, bucket_us),
        model=_model(model),
    )
    background = _flag(async_)
    limit = services.settings.analysis_max_points
    with services.store.reader() as cur:
        marks, cold = marks_cache(services.store), cold_catalog(services.store)
        loaded = fc.load(cur, principal.tenant_id, request, limit, marks=marks, cold=cold)
    if request.horizon == 0:  # the default: a fifth of the history
        steps = max(1, min(fc.MAX_HORIZON, len(loaded.history.values) // 5))
        loaded.request = request = replace(request, horizon=steps)
    if background or loaded.long:
        params = {"request": request.as_params(), "max_points": limit}
        task_id = services.tasks.submit(principal.tenant_id, KIND, params)
        status = task_status(services, principal.tenant_id, task_id)
        return JSONResponse(
            status.model_dump(mode="json"),
            status_code=202,
            headers={"Location": f"/tasks/{task_id}"},
        )
    return json_response(fc.answer(loaded))
