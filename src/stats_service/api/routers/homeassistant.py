"""POST /v1/ingest/homeassistant: Home Assistant bodies (state objects, events, history and
statistics results) over HTTP, for `stats-service import homeassistant` through a running
server and for Home Assistant's `rest_command`. Kept out of the OpenAPI schema: the body
is Home Assistant's format (docs/protocols/homeassistant.md), not ours."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse

from ..deps import IngestPrincipal, ServicesDep
from .ingest import accepted, read_body

router = APIRouter(tags=["ingest"])


@router.post("/v1/ingest/homeassistant", status_code=202, include_in_schema=False)
async def ingest_homeassistant(
    request: Request,
    principal: IngestPrincipal,
    services: ServicesDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> JSONResponse:
    """Store Home Assistant states; answers once they are durable."""
    body = await read_body(request, services.settings.max_body_bytes)
    result = await services.pipeline.ingest(
        principal, "homeassistant", body, idempotency_key=idempotency_key
    )
    return accepted(result, {**result.body, "dropped": [e.as_dict() for e in result.dropped]})
