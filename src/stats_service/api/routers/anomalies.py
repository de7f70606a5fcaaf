"""Anomalies API (docs/anomaly-scoring.md): train detectors, score windows, read scores.

    POST /v1/anomalies/train     admin: fit a detector per series (a task; 202)
    POST /v1/anomalies/score     admin: score the series' windows (a task; 202)
    GET  /v1/anomalies           read: window scores, filtered by series, range, min_score
    GET  /v1/anomalies/features  read: window features (count, mean, std, median, MAD, ...)
    GET  /v1/anomalies/models    read: the trained models (detector, range, metrics)

Series are chosen by `series=` (ids) or by `device=`/`metric=` (`metric_id=` is the
same as `metric=`), always within the caller's tenant: another tenant's series is not
found. Invalid parameters answer 400 naming the parameter; a range holding more than
`analysis_max_points` points of a series is refused with 400 naming the limit.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from ...analytics import pipeline
from ...analytics.detectors import CATALOGUE, DEFAULT
from ...errors import BadParameter
from ...ingest.timestamps import format_us
from ...jobs.anomaly_scoring import SCORE, TRAIN
from ...query.params import (
    DEFAULT_SPAN_US,
    TimeRange,
    parse_duration,
    parse_limit,
    parse_series_ids,
    time_range,
)
from ...query.series import SeriesFilter, select_series
from ...services import Services
from ...storage import anomaly_scores, models
from ...storage.sources import points_source
from ..deps import AdminPrincipal, ReadPrincipal, ServicesDep
from ..read_models import READ_PROBLEMS
from ..read_params import From, To, json_response
from .tasks import TaskStatus, task_status

router = APIRouter(tags=["anomalies"])

MAX_LIMIT = 10_000
DEFAULT_LIMIT = 1000
TASK_PROBLEMS: dict[int | str, dict[str, Any]] = {**READ_PROBLEMS}


def _now_us() -> int:
    return time.time_ns() // 1000


def _series_ids(
    services: Services,
    tenant_id: int,
    series: str | None,
    device: str | None,
    metric: str | None,
) -> list[int]:
    ids = parse_series_ids("series", series) if series is not None else None
    where = SeriesFilter(device=device, metric=metric)
    with services.store.reader() as cur:
        return [info.id for info in select_series(cur, tenant_id, ids, where)]


def _metric(metric: str | None, metric_id: str | None) -> str | None:
    if metric is not None and metric_id is not None and metric != metric_id:
        raise BadParameter("metric_id", "give metric= or metric_id= (the same thing), not both")
    return metric if metric is not None else metric_id


def check_points(services: Services, tenant_id: int, ids: list[int], span: TimeRange) -> None:
    """400 naming the limit when a series has more points in the range than an analysis
    may read (`analysis_max_points`)."""
    limit = services.settings.analysis_max_points
    with services.store.reader() as cur:
        source = points_source(cur, tenant_id, span.from_us, span.to_us)
        rows = cur.execute(
            f"SELECT series_id, count(*) FROM {source} "
            "WHERE series_id IN (SELECT unnest(?::BIGINT[])) "
            "AND ts >= make_timestamp(?::BIGINT) AND ts < make_timestamp(?::BIGINT) "
            "GROUP BY series_id HAVING count(*) > ? LIMIT 1",
            [ids, span.from_us, span.to_us, limit],
        ).fetchall()
    if rows:
        raise BadParameter(
            "from",
            f"series {rows[0][0]} has {rows[0][1]} points in the range, more than "
            f"analysis_max_points ({limit}); narrow the range",
        )


# -- request bodies ------------------------------------------------------------------------


class _Selection(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    series: list[str] | None = Field(
        None, description="Series ids (decimal strings).", examples=[["7310295818716523531"]]
    )
    device: str | None = Field(None, description="Every series of this device.")
    metric: str | None = Field(None, description="Every series of this metric.")
    from_: str | None = Field(
        None, alias="from", description="Start (RFC 3339, epoch, now-7d); default to-1d."
    )
    to: str | None = Field(None, description="End, excluded (RFC 3339, epoch, now); default now.")


class TrainBody(_Selection):
    detector: str = Field(
        DEFAULT, description=f"Detector of the catalogue: {', '.join(CATALOGUE)}."
    )
    params: dict[str, Any] = Field(default_factory=dict, description="The detector's parameters.")
    window: str = Field("300s", description="Scoring window of the model: 60s, 5m, 1h...")


class ScoreBody(_Selection):
    detector: str | None = Field(
        None, description="Score with this detector's model; default each series' newest model."
    )


def _selection(services: Services, tenant_id: int, body: _Selection) -> tuple[list[int], TimeRange]:
    span = time_range(body.from_, body.to, _now_us(), default_span_us=DEFAULT_SPAN_US)
    series = ",".join(body.series) if body.series is not None else None
    ids = _series_ids(services, tenant_id, series, body.device, body.metric)
    check_points(services, tenant_id, ids, span)
    return ids, span


def _task_params(services: Services, ids: list[int], span: TimeRange) -> dict[str, Any]:
    return {
        "series": [str(i) for i in ids],
        "from_us": span.from_us,
        "to_us": span.to_us,
        "model_dir": str(services.settings.model_path),
        "max_points": services.settings.analysis_max_points,
    }


@router.post(
    "/v1/anomalies/train", response_model=TaskStatus, status_code=202, responses=TASK_PROBLEMS
)
def train(body: TrainBody, principal: AdminPrincipal, services: ServicesDep) -> TaskStatus:
    """Fit `detector` on each selected series' points in [from, to) and save the model
    (training again replaces it). Answers 202 with the task; poll `GET /tasks/{task_id}`
    for its progress and result (the models: detector, range, path, metrics)."""
    window_us = parse_duration("window", body.window)
    pipeline.check_window(window_us)
    pipeline.check_detector(body.detector, body.params)
    ids, span = _selection(services, principal.tenant_id, body)
    params = _task_params(services, ids, span) | {
        "detector": body.detector,
        "params": body.params,
        "window_us": window_us,
    }
    task_id = services.tasks.submit(principal.tenant_id, TRAIN, params)
    return task_status(services, principal.tenant_id, task_id)


@router.post(
    "/v1/anomalies/score", response_model=TaskStatus, status_code=202, responses=TASK_PROBLEMS
)
def score(body: ScoreBody, principal: AdminPrincipal, services: ServicesDep) -> TaskStatus:
    """Score the closed windows in [from, to) of each selected series with its trained
    model and upsert them into the scores (`GET /v1/anomalies`). Answers 202 with the
    task; its result counts series, windows, points and alarms (and lists `untrained`
    series)."""
    if body.detector is not None and body.detector not in CATALOGUE:
        known = ", ".join(sorted(CATALOGUE))
        raise BadParameter("detector", f"unknown detector {body.detector!r}; known: {known}")
    ids, span = _selection(services, principal.tenant_id, body)
    with services.store.reader() as cur:
        if not models.list_models(cur, principal.tenant_id, ids):
            raise BadParameter("series", "none of these series has a trained model; train first")
    params = _task_params(services, ids, span) | {"detector": body.detector}
    task_id = services.tasks.submit(principal.tenant_id, SCORE, params)
    return task_status(services, principal.tenant_id, task_id)


# -- reads -----------------------------------------------------------------------------------

Series = Annotated[str | None, Query(description="Series ids, comma-separated.")]
Device = Annotated[str | None, Query(description="Every series of this device.")]
Metric = Annotated[str | None, Query(description="Every series of this metric.")]
MetricId = Annotated[str | None, Query(description="The same as `metric`.")]

_SCORES_EXAMPLE: dict[str, Any] = {
    "from": "2026-03-01T00:00:00.000000Z",
    "to": "2026-03-02T00:00:00.000000Z",
    "items": [
        {
            "series_id": "7310295818716523531",
            "window_start": "2026-03-01T12:00:00.000000Z",
            "window_end": "2026-03-01T12:05:00.000000Z",
            "score": 1.0,
            "detector": "ensemble",
            "explanation": {"rule": "robust_z", "z": 12.4, "point": "2026-03-01T12:03:10Z"},
            "scored_at": "2026-03-01T12:05:02.000000Z",
        }
    ],
    "next_cursor": None,
}


class ScoresOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True, json_schema_extra={"example": _SCORES_EXAMPLE})

    from_: str = Field(alias="from")
    to: str
    items: list[dict[str, Any]] = Field(
        description="Window scores, oldest window first: series_id, window_start, "
        "window_end, score (0..1), detector, explanation, scored_at."
    )
    next_cursor: str | None


@router.get("/v1/anomalies", response_model=ScoresOut, responses=READ_PROBLEMS)
def list_anomalies(
    principal: ReadPrincipal,
    services: ServicesDep,
    from_: From = None,
    to: To = None,
    series: Series = None,
    metric_id: MetricId = None,
    device: Device = None,
    metric: Metric = None,
    min_score: Annotated[
        str | None, Query(description="Only windows scoring at least this (0..1).")
    ] = None,
    limit: Annotated[str | None, Query(description=f"Page size, 1..{MAX_LIMIT}.")] = None,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the page before.")] = None,
) -> Any:
    """Scores of the windows overlapping [from, to) (the window real-time scoring still
    fills included), oldest first; without a series selection, every series of the
    tenant."""
    span = time_range(from_, to, _now_us())
    threshold = 0.0
    if min_score is not None:
        try:
            threshold = float(min_score)
        except ValueError:
            raise BadParameter("min_score", f"{min_score!r} is not a number") from None
        if not 0.0 <= threshold <= 1.0:
            raise BadParameter("min_score", "must be between 0 and 1")
    size = parse_limit("limit", limit, DEFAULT_LIMIT, MAX_LIMIT)
    chosen = _metric(metric, metric_id)
    ids: list[int] = []
    if series is not None or device is not None or chosen is not None:
        ids = _series_ids(services, principal.tenant_id, series, device, chosen)
    with services.store.reader() as cur:
        rows, next_cursor = anomaly_scores.list_scores(
            cur,
            principal.tenant_id,
            ids,
            span.from_us,
            span.to_us,
            min_score=threshold,
            limit=size,
            cursor=cursor,
        )
    return json_response(
        {
            "from": format_us(span.from_us),
            "to": format_us(span.to_us),
            "items": [r.as_dict() for r in rows],
            "next_cursor": next_cursor,
        }
    )


class FeaturesOut(BaseModel):
    window_us: int
    series: list[dict[str, Any]] = Field(
        description="Per series: series_id, label, windows (window_start, window_end, "
        f"{', '.join(pipeline.FEATURES)}, ...)."
    )


@router.get("/v1/anomalies/features", response_model=FeaturesOut, responses=READ_PROBLEMS)
def get_features(
    principal: ReadPrincipal,
    services: ServicesDep,
    from_: From = None,
    to: To = None,
    series: Series = None,
    device: Device = None,
    metric: Metric = None,
    metric_id: MetricId = None,
    window: Annotated[str, Query(description="Window width: 60s, 5m, 1h...")] = "300s",
) -> Any:
    """Features per fixed window (aligned to the epoch) of each selected series: count,
    mean, std, median, MAD, min, max, range, slope, q05, q95. No points: no windows."""
    window_us = pipeline.check_window(parse_duration("window", window))
    span = time_range(from_, to, _now_us())
    ids = _series_ids(services, principal.tenant_id, series, device, _metric(metric, metric_id))
    check_points(services, principal.tenant_id, ids, span)
    return json_response(
        pipeline.features(
            services.store,
            principal.tenant_id,
            ids,
            span.from_us,
            span.to_us,
            window_us=window_us,
            max_points=services.settings.analysis_max_points,
        )
    )


class ModelsOut(BaseModel):
    items: list[dict[str, Any]] = Field(
        description="Models: id, series_id, detector, params, train_from, train_to, path, "
        "metrics, created_at, updated_at."
    )


@router.get("/v1/anomalies/models", response_model=ModelsOut, responses=READ_PROBLEMS)
def list_trained(
    principal: ReadPrincipal,
    services: ServicesDep,
    series: Series = None,
    device: Device = None,
    metric: Metric = None,
) -> Any:
    """The tenant's trained models (of the selected series)."""
    ids: list[int] | None = None
    if series is not None or device is not None or metric is not None:
        ids = _series_ids(services, principal.tenant_id, series, device, metric)
    with services.store.reader() as cur:
        found = models.list_models(cur, principal.tenant_id, ids)
    return json_response({"items": [m.as_dict() for m in found]})
