"""Anomaly scoring on the job runner (docs/anomaly-scoring.md).

Task kinds `anomaly_train` and `anomaly_score` run analytics/pipeline.py's `train` and
`score` for `POST /v1/anomalies/train|score`. Params: {"series": [ids], "from_us",
"to_us", "window_us", "detector", "params", "model_dir", "max_points"} (the server
fills in the last two from its settings). Scoring upserts, so it is safe to run again
after an interruption; training too (it replaces the artefact and the record).

The scheduled job (`scoring_job`) wakes up every `min(scoring_interval_s, 60)` seconds
and, for each tenant whose interval (its own from `tenant_scoring`, else the setting)
has passed since its last run, scores every series with a model from the end of its
newest scored window (or its model's training end) up to the last closed window.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from ..analytics import pipeline
from ..config import Settings
from ..storage import anomaly_scores, models
from ..storage.embedded import EmbeddedStore
from .scheduler import Job
from .tasks import TaskContext, TaskKind, register_kind

log = structlog.get_logger(__name__)

TRAIN = "anomaly_train"
SCORE = "anomaly_score"
TICK_MAX_S = 60.0


def _progress(ctx: TaskContext) -> pipeline.Progress:
    def report(done: int, total: int) -> None:
        ctx.progress(done / total if total else 1.0)

    return report


def run_train(ctx: TaskContext, params: dict[str, Any]) -> dict[str, Any]:
    return pipeline.train(
        ctx.store,
        Path(params["model_dir"]),
        ctx.tenant_id,
        [int(s) for s in params["series"]],
        int(params["from_us"]),
        int(params["to_us"]),
        detector=str(params["detector"]),
        params=dict(params.get("params") or {}),
        window_us=int(params["window_us"]),
        max_points=int(params["max_points"]),
        progress=_progress(ctx),
    )


def run_score(ctx: TaskContext, params: dict[str, Any]) -> dict[str, Any]:
    detector = params.get("detector")
    return pipeline.score(
        ctx.store,
        ctx.tenant_id,
        [int(s) for s in params["series"]],
        int(params["from_us"]),
        int(params["to_us"]),
        detector=None if detector is None else str(detector),
        max_points=int(params["max_points"]),
        progress=_progress(ctx),
    )


TRAIN_KIND = register_kind(TaskKind(TRAIN, run_train, rerun_safe=True))
SCORE_KIND = register_kind(TaskKind(SCORE, run_score, rerun_safe=True))


# -- the scheduled job -------------------------------------------------------------------


def score_due(
    store: EmbeddedStore, settings: Settings, now_us: int, last_run: dict[int, float], now_s: float
) -> dict[str, int]:
    """One pass: every tenant whose interval has passed since `last_run[tenant]`
    (monotonic seconds; a tenant not in it is due) scores its models' new windows."""
    totals = {"tenants": 0, "series": 0, "windows": 0, "alarms": 0}
    with store.reader() as cur:
        latest = models.latest_per_series(models.list_models(cur))
        tenants = sorted({tenant for tenant, _ in latest})
        intervals = {t: models.tenant_interval(cur, t) for t in tenants}
    for tenant in tenants:
        interval = intervals[tenant] or settings.scoring_interval_s
        if now_s - last_run.get(tenant, float("-inf")) < interval:
            continue
        last_run[tenant] = now_s
        totals["tenants"] += 1
        for (owner, series_id), model in latest.items():
            if owner != tenant:
                continue
            with store.reader() as cur:
                since = anomaly_scores.last_window_end(cur, tenant, series_id)
            start = max(since if since is not None else model.train_to_us, model.train_to_us)
            try:
                counts = pipeline.score_model(
                    store, model, start, now_us, max_points=settings.analysis_max_points
                )
            except Exception as exc:  # one series' failure must not stop the others
                log.warning(
                    "scheduled_scoring_failed",
                    tenant_id=tenant,
                    series_id=series_id,
                    error=str(exc),
                )
                continue
            if counts["windows"]:
                totals["series"] += 1
                totals["windows"] += counts["windows"]
                totals["alarms"] += counts["alarms"]
    if totals["windows"]:
        log.info("scheduled_scoring", **totals)
    return totals


def scoring_job(store: EmbeddedStore, settings: Settings) -> list[Job]:
    """The periodic job; a tenant's first run comes one interval after the start."""
    started = time.monotonic()
    last_run: dict[int, float] = {}
    tick = min(settings.scoring_interval_s, TICK_MAX_S)

    def run() -> None:
        now_s = time.monotonic()
        with store.reader() as cur:
            for (tenant, _), _model in models.latest_per_series(models.list_models(cur)).items():
                last_run.setdefault(tenant, started)
        now_us = int(datetime.now(UTC).timestamp() * 1_000_000)
        score_due(store, settings, now_us, last_run, now_s)

    return [Job("anomaly_scoring", tick, run)]
