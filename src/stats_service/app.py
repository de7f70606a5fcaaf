"""create_app(settings): wire the routers and run the service's lifecycle.

Start: store (migrations) -> writer -> bootstrap tenant/key -> periodic jobs.
Stop, in reverse: jobs -> writer drained (every acknowledged batch committed) -> store.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import structlog
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from . import __version__
from .api import errors
from .api.middleware import RequestMetrics
from .api.problems import Problem
from .api.routers import (
    admin,
    anomalies,
    chart_annotations,
    contracts,
    devices,
    export,
    fleet,
    forecast,
    health,
    homeassistant,
    influx,
    ingest,
    live,
    patterns,
    prometheus,
    runs,
    series,
    stats,
    stats_api,
    tasks,
    thingsboard,
    usage,
)
from .api.stats_fast import StatsFastPath
from .config import Settings
from .jobs.anomaly_scoring import scoring_job
from .jobs.compaction import compaction_job
from .jobs.retention import apply_retention
from .jobs.rollup import rollup_job
from .jobs.scheduler import Job, Scheduler
from .listeners import build_listeners
from .logs import configure as configure_logs
from .services import Services
from .storage.cold_objects import ColdObjects
from .ui import router as ui

log = structlog.get_logger(__name__)

ROUTERS = (
    health,
    ingest,
    homeassistant,
    influx,
    prometheus,
    thingsboard,
    admin,
    devices,
    series,
    stats,
    fleet,
    export,
    usage,
    contracts,
    runs,
    live,
    stats_api,
    tasks,
    chart_annotations,
    anomalies,
    forecast,
    patterns,
    ui,
)


def create_app(
    settings: Settings,
    *,
    control_token: str | None = None,
    on_admin_key: Callable[[str], None] | None = None,
    on_stopped: Callable[[], None] | None = None,
    anonymous_default: bool = False,
) -> FastAPI:
    """The ASGI app. `on_admin_key` receives a generated first admin key (to print once).
    `anonymous_default` lets keyless callers read and write the stats API routes of the
    `default` tenant for the life of this app (what `stats-service demo` does)."""
    configure_logs(settings.log_level, settings.log_format)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = Services.build(settings)
        services.auth.control_token = control_token
        services.auth.anonymous_default = anonymous_default
        services.start()
        generated = services.auth.bootstrap()
        if generated is not None and on_admin_key is not None:
            on_admin_key(generated)
        app.state.services = services
        objects = ColdObjects.from_settings(settings)  # the cold tier's bucket, if any
        if objects is not None:
            objects.attach(services.store)
        scheduler = Scheduler(
            [
                Job(
                    "retention",
                    settings.retention_interval_s,
                    lambda: apply_retention(
                        services.store,
                        services.metrics,
                        datetime.now(UTC).replace(tzinfo=None),
                        settings.idempotency_ttl_h,
                        objects,
                        services.archive,
                        settings.archive_retention_days,
                    ),
                ),
                *compaction_job(services.store, services.metrics.registry, settings, objects),
                *rollup_job(services.store, services.metrics.registry, settings),
                *scoring_job(services.store, settings),
            ]
        )
        scheduler.start()
        started = []
        try:
            for listener in build_listeners(services):
                await listener.start()
                started.append(listener)
        except BaseException:
            for listener in reversed(started):
                await listener.stop()
            await scheduler.stop()
            services.stop()
            raise
        log.info("started", data_dir=str(settings.data_dir), version=__version__)
        try:
            yield
        finally:
            for listener in reversed(started):
                try:
                    await listener.stop()
                except Exception:
                    log.exception("listener_stop_failed", listener=listener.name)
            await scheduler.stop()
            services.stop()
            if on_stopped is not None:
                on_stopped()
            log.info("stopped")

    app = FastAPI(
        title="StatisticsService",
        version=__version__,
        description="Telemetry ingest, time-series storage and chart-ready statistics.",
        lifespan=lifespan,
    )
    errors.install(app)
    for module in ROUTERS:
        app.include_router(module.router)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    app.add_middleware(StatsFastPath)  # inside RequestMetrics: its requests are measured
    metrics_holder = _LazyMetrics(app)
    app.add_middleware(RequestMetrics, metrics=metrics_holder)  # type: ignore[arg-type]
    return app


class _LazyMetrics:
    """The middleware is built before the lifespan creates the services."""

    def __init__(self, app: FastAPI) -> None:
        self._app = app

    @property
    def request_seconds(self) -> Any:
        return self._app.state.services.metrics.request_seconds


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["ThingsBoardEntry"] = thingsboard.ENTRY_SCHEMA
    components["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in components["Problem"].pop("$defs", {}).items():
        components.setdefault(name, sub)
    contract = json.loads(
        resources.files("stats_service").joinpath("contracts/ingest-v1.schema.json").read_text()
    )
    defs = contract.pop("$defs")
    for name, sub in defs.items():
        components[f"Ingest{name}"] = sub
    text = json.dumps(contract | {"title": "IngestPayload"})
    text = text.replace('"#/$defs/', '"#/components/schemas/Ingest')
    components["IngestPayload"] = json.loads(text)
    for name in list(components):
        if name.startswith("Ingest") and name != "IngestPayload":
            sub_text = json.dumps(components[name]).replace(
                '"#/$defs/', '"#/components/schemas/Ingest'
            )
            components[name] = json.loads(sub_text)
    for key in ("$schema", "$id"):
        components["IngestPayload"].pop(key, None)
    app.openapi_schema = schema
    return schema
