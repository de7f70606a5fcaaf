"""ThingsBoard-style device API: `POST /api/v1/{device_token}/telemetry`.

The device token is an ingest key made for one device (`stats-service keys create
--device <name>`), so a microcontroller sends no headers at all. Answers follow
ThingsBoard: 200 with an empty body when stored, errors as
`{"status", "message", "errorCode", "timestamp"}`.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse, Response

from ...errors import (
    Forbidden,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    ServiceError,
    Unauthorized,
    Unavailable,
)
from ...model import Principal, Role
from ..deps import ServicesDep
from .ingest import read_body

router = APIRouter(tags=["thingsboard"])

MAX_TOKEN = 512
# ThingsBoard's ThingsboardErrorCode values
ERROR_CODES = {400: 31, 401: 10, 403: 20, 404: 32, 413: 31, 422: 31, 429: 33, 503: 2}

TELEMETRY_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {"$ref": "#/components/schemas/ThingsBoardEntry"},
                        {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/ThingsBoardEntry"},
                        },
                    ]
                },
                "examples": {
                    "values": {"value": {"temperature": 21.5, "humidity": 48}},
                    "timed": {"value": {"ts": 1714564800000, "values": {"temperature": 21.5}}},
                },
            }
        },
    }
}
ENTRY_SCHEMA: dict[str, Any] = {
    "title": "ThingsBoardEntry",
    "description": 'Key -> value at server time, or {"ts": <ms>, "values": {key: value}}. '
    "Numbers and booleans become points, strings and JSON values text values.",
    "type": "object",
    "additionalProperties": True,
}
ERROR_SCHEMA: dict[str, Any] = {
    "description": "ThingsBoard's error shape",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "status": {"type": "integer"},
                    "message": {"type": "string"},
                    "errorCode": {"type": "integer"},
                    "timestamp": {"type": "integer"},
                },
                "required": ["status", "message", "errorCode", "timestamp"],
            }
        }
    },
}


def thingsboard_error(
    status: int, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {
        "status": status,
        "message": message,
        "errorCode": ERROR_CODES.get(status, 2),
        "timestamp": time.time_ns() // 1_000_000,
    }
    return JSONResponse(body, status_code=status, headers=headers)


def _device_principal(token: str, services: Any) -> Principal:
    try:
        principal: Principal = services.auth.authenticate(token)
    except Unauthorized:
        raise NotFound("no device has this access token") from None
    if principal.device is None:
        raise Unauthorized(
            "this key is not a device token; create one with "
            "`stats-service keys create --device <name>` (or POST /v1/admin/keys with `device`)"
        )
    if not principal.may(Role.INGEST):
        raise Forbidden("this device token may not write")
    return principal


@router.post(
    "/api/v1/{device_token}/telemetry",
    status_code=200,
    response_class=Response,
    responses={
        200: {"description": "Stored (empty body)", "content": {}},
        **{code: ERROR_SCHEMA for code in (400, 401, 404, 413, 429, 503)},
    },
    openapi_extra=TELEMETRY_BODY,
)
async def telemetry(
    request: Request,
    services: ServicesDep,
    device_token: Annotated[str, Path(description="The device token (a device key).")],
) -> Response:
    """Store a device's telemetry; the device token in the path is the only credential."""
    try:
        if len(device_token) > MAX_TOKEN:
            raise NotFound("no device has this access token")
        principal = _device_principal(device_token, services)
        services.usage.request(principal.tenant_id)
        body = await read_body(request, services.settings.max_body_bytes)
        result = await services.pipeline.ingest(principal, "thingsboard", body)
    except ServiceError as exc:
        headers = None
        if isinstance(exc, Overloaded | Unavailable):
            headers = {"Retry-After": str(max(1, round(exc.retry_after)))}
        message = exc.detail
        if exc.errors:
            message = "; ".join(f"{e.loc}: {e.msg}" for e in exc.errors[:20])
        if isinstance(exc, PayloadTooLarge):
            message = f"payload too large: {exc.detail}"
        return thingsboard_error(exc.status, message, headers)
    if result.dropped_count:
        skipped = "; ".join(f"{e.loc}: {e.msg}" for e in result.dropped[:20])
        return thingsboard_error(
            400,
            f"{result.dropped_count} value(s) skipped, the other values were stored: {skipped}",
        )
    return Response(status_code=200)
