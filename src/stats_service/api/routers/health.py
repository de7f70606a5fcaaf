"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from datetime import UTC, datetime

import anyio
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from ... import __version__
from ...errors import Forbidden
from ..deps import ServicesDep, principal_of
from ..problems import PROBLEM_RESPONSES

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: str
    version: str
    time: datetime


class Ready(BaseModel):
    ready: bool
    writer_queue_points: int
    detail: str | None = None


@router.get("/v1/health", response_model=Health)
def health() -> Health:
    """The service is up: its time and version."""
    return Health(status="ok", version=__version__, time=datetime.now(UTC))


@router.get("/v1/ready", response_model=Ready, responses={503: {"model": Ready}})
async def ready(services: ServicesDep) -> JSONResponse:
    """200 only when the store takes writes right now, else 503."""
    ok = await anyio.to_thread.run_sync(services.store.writable)
    body = Ready(
        ready=ok,
        writer_queue_points=services.writer.queued_points,
        detail=None if ok else "the store cannot take writes",
    )
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}, **PROBLEM_RESPONSES},
)
def metrics(request: Request, services: ServicesDep) -> Response:
    """Prometheus text exposition of this instance's metrics."""
    if not services.settings.metrics_public:
        principal = principal_of(request, services)
        if not principal.superuser:
            raise Forbidden("/metrics shows every tenant: an admin key of `default` is needed")
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)
