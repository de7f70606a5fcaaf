"""POST /v1/ingest: the native JSON contract."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from ...errors import PayloadTooLarge
from ...ingest.pipeline import IngestResult
from ..deps import IngestPrincipal, ServicesDep
from ..problems import PROBLEM_RESPONSES

router = APIRouter(tags=["ingest"])


class IngestAccepted(BaseModel):
    batch_id: str
    points: int


def accepted(result: IngestResult, content: dict[str, Any] | None = None) -> JSONResponse:
    """The 202 of an ingest endpoint (marked `Idempotent-Replayed` for an answered retry)."""
    headers = {"Idempotent-Replayed": "true"} if result.replayed else None
    return JSONResponse(result.body if content is None else content, 202, headers=headers)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body has {declared} bytes; at most {limit} are accepted")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is larger than the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


INGEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"$ref": "#/components/schemas/IngestPayload"},
            }
        },
    }
}


@router.post(
    "/v1/ingest",
    status_code=202,
    response_model=IngestAccepted,
    responses={**PROBLEM_RESPONSES, 200: {"model": IngestAccepted, "description": "A retry"}},
    openapi_extra=INGEST_BODY,
)
async def ingest(
    request: Request,
    principal: IngestPrincipal,
    services: ServicesDep,
    precision: Annotated[str | None, Query(pattern="^(s|ms|us|ns)$")] = None,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> JSONResponse:
    """Store readings; answers once they are durable (see docs/contracts/ingest-v1.md)."""
    body = await read_body(request, services.settings.max_body_bytes)
    params = {"precision": precision} if precision else {}
    result = await services.pipeline.ingest(
        principal, "json", body, params=params, idempotency_key=idempotency_key
    )
    return accepted(result)
