"""The stats_service API (docs/stats-api.md): users, devices, their stats and analytics.

`POST /devices/{id}/stats/` stores a reading through the ingest pipeline (durable when
it answers): one point per field, in a series named after the field with the device's
UUID as its `device` tag, so the readings show in the /v1 API too. Analytics run as
asynchronous tasks (`GET /tasks/{id}`, routers/tasks.py).
"""

from __future__ import annotations

import math
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import Query, Request, Response
from pydantic import BaseModel, ConfigDict, EmailStr, Field

from ...errors import FieldError
from ...ingest.timestamps import MAX_US, MIN_US, TimestampError, parse_timestamp, rfc3339_to_us
from ...jobs.device_analytics import KIND as ANALYTICS
from ...model import Principal
from ...query.columns import time_or_none
from ...services import Services
from ..deps import ServicesDep
from ..stats_api_support import (
    STATS_PROBLEMS,
    StatsReader,
    StatsWriter,
    Unprocessable,
    add_route,
    new_router,
)
from .ingest import read_body
from .tasks import TaskStatus, task_status

router = new_router("stats api")

MAX_FIELD = 200
MAX_OFFSET = 10**12
RESERVED = frozenset({"device_id", "user_id"})  # keys of a StatResponse


class UserIn(BaseModel):
    name: str = Field(min_length=1, max_length=200, examples=["User1"])
    email: EmailStr = Field(examples=["user1@test.com"])


class UserOut(BaseModel):
    id: int
    name: str
    email: str
    created_at: datetime


class DeviceIn(BaseModel):
    user_id: int = Field(ge=1, le=2**31 - 1, examples=[1], description="The owner (a user id).")


class DeviceOut(BaseModel):
    id: uuid.UUID
    user_id: int
    created_at: datetime


class StatusOk(BaseModel):
    status: str = Field(examples=["ok"])


class StatResponse(BaseModel):
    """One stored reading: its device, owner, time and every field sent at that time
    (x, y, z, ... as top-level numbers)."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"additionalProperties": True})

    device_id: uuid.UUID
    user_id: int
    timestamp: datetime


Limit = Annotated[int, Query(ge=1, le=1000, description="Readings per page.")]
Offset = Annotated[
    int, Query(ge=0, le=MAX_OFFSET, description="Readings to skip (the page's start).")
]

STATS_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "description": "Numeric fields of one reading, e.g. "
                    '{"x": 1.5, "y": 2.3, "z": 3.8}; `timestamp` (RFC 3339, UTC when it '
                    "has no offset, or epoch seconds) is optional and defaults to now.",
                    "properties": {
                        "timestamp": {"type": ["string", "number"]},
                    },
                    "additionalProperties": {"type": "number"},
                    "minProperties": 1,
                    "example": {"x": 1.5, "y": 2.3, "z": 3.8},
                }
            }
        },
    }
}


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC)


# -- users -------------------------------------------------------------------------------


@add_route(router, "/users/", "GET", response_model=list[UserOut], responses=STATS_PROBLEMS)
def list_users(
    principal: StatsReader,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> list[UserOut]:
    """Users of the tenant by id (paged with limit and offset)."""
    users = services.stats_api.list_users(principal.tenant_id, limit, offset)
    return [
        UserOut(id=u.id, name=u.name, email=u.email, created_at=_utc(u.created_at)) for u in users
    ]


@add_route(
    router, "/users/", "POST", response_model=UserOut, status_code=200, responses=STATS_PROBLEMS
)
def create_user(body: UserIn, principal: StatsWriter, services: ServicesDep) -> UserOut:
    """Register a user; 400 when the email is taken (case does not matter)."""
    user = services.stats_api.create_user(principal.tenant_id, body.name, str(body.email))
    return UserOut(id=user.id, name=user.name, email=user.email, created_at=_utc(user.created_at))


# -- devices -----------------------------------------------------------------------------


@add_route(
    router, "/devices/", "POST", response_model=DeviceOut, status_code=200,
    responses=STATS_PROBLEMS,
)  # fmt: skip
def create_device(body: DeviceIn, principal: StatsWriter, services: ServicesDep) -> DeviceOut:
    """Register a device of a user; it gets a UUID. 404 when the user does not exist."""
    device = services.stats_api.create_device(principal.tenant_id, body.user_id)
    return DeviceOut(
        id=uuid.UUID(device.id), user_id=device.user_id, created_at=_utc(device.created_at)
    )


@add_route(
    router, "/devices/{device_id}", "GET", response_model=DeviceOut, responses=STATS_PROBLEMS
)
def get_device(device_id: uuid.UUID, principal: StatsReader, services: ServicesDep) -> DeviceOut:
    """One device; 404 when it does not exist."""
    device = services.stats_api.get_device(principal.tenant_id, str(device_id))
    return DeviceOut(
        id=uuid.UUID(device.id), user_id=device.user_id, created_at=_utc(device.created_at)
    )


@add_route(
    router, "/devices/{device_id}/stats/", "POST", response_model=StatusOk,
    responses=STATS_PROBLEMS, openapi_extra=STATS_BODY,
)  # fmt: skip
async def post_stats(
    device_id: uuid.UUID, request: Request, principal: StatsWriter, services: ServicesDep
) -> dict[str, str]:
    """Store one reading of the device; answers `{"status": "ok"}` once it is durable.
    (Served by `api/stats_fast.py` without FastAPI's routing; this route documents it
    and answers when that one steps aside.)"""
    await store_reading(principal, services, str(device_id), request)
    return {"status": "ok"}


async def store_reading(
    principal: Principal, services: Services, device: str, request: Request
) -> None:
    """Validate a stats body and write it through the ingest pipeline (durable on return)."""
    services.stats_api.require_device(principal.tenant_id, device)
    body = await read_body(request, services.settings.max_body_bytes)
    metrics, ts_us = _reading(body, services.settings.future_skew_s)
    doc: dict[str, Any] = {"device": device, "metrics": metrics}
    if ts_us is not None:
        doc["ts"] = ts_us
    await services.pipeline.ingest(principal, "json", orjson.dumps(doc), params={"precision": "us"})


def _reading(body: bytes, future_skew_s: float) -> tuple[dict[str, float], int | None]:
    """The fields and the optional time of a stats body, or 422 naming every problem."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Unprocessable([FieldError("body", f"not valid JSON: {exc}")]) from None
    if not isinstance(doc, dict):
        raise Unprocessable(
            [FieldError("body", 'must be a JSON object of numbers, e.g. {"x": 1.5, "y": 2.3}')]
        )
    errors: list[FieldError] = []
    ts_us: int | None = None
    if "timestamp" in doc:
        raw = doc.pop("timestamp")
        if raw is not None:
            try:
                ts_us = _time(raw)
            except TimestampError as exc:
                errors.append(FieldError("body.timestamp", str(exc)))
            else:
                limit = time.time_ns() // 1000 + int(future_skew_s * 1_000_000)
                if ts_us > limit:
                    errors.append(
                        FieldError("body.timestamp", "lies too far in the future (server time)")
                    )
    metrics: dict[str, float] = {}
    for name, value in doc.items():
        loc = f"body.{name}"
        if name in RESERVED:
            errors.append(FieldError(loc, f"{name!r} is reserved (a key of the stored readings)"))
        elif not 0 < len(name) <= MAX_FIELD or any(ord(c) < 32 for c in name):
            errors.append(FieldError(loc, f"field names are 1-{MAX_FIELD} printable characters"))
        elif isinstance(value, bool) or not isinstance(value, int | float):
            errors.append(FieldError(loc, "must be a number"))
        elif not math.isfinite(number := float(value)):
            errors.append(FieldError(loc, "must be a finite number"))
        else:
            metrics[name] = number
    if not doc and not errors:
        errors.append(
            FieldError("body", 'send at least one numeric field, e.g. {"x": 1.5, "y": 2.3}')
        )
    if errors:
        raise Unprocessable(errors)
    return metrics, ts_us


def _time(raw: object) -> int:
    """UTC microseconds of an RFC 3339 time (UTC when it has no offset) or epoch seconds."""
    if isinstance(raw, str):
        try:
            return rfc3339_to_us(raw)
        except TimestampError:
            if len(raw) >= 10 and not raw.rstrip().endswith(("Z", "z")):
                return rfc3339_to_us(raw.strip() + "Z")  # naive: UTC, as the seed sends it
            raise
    return parse_timestamp(raw, "s")


@add_route(
    router, "/devices/{device_id}/analytics/", "GET", response_model=TaskStatus,
    status_code=202, responses=STATS_PROBLEMS,
)  # fmt: skip
def start_analytics(
    device_id: uuid.UUID,
    principal: StatsReader,
    services: ServicesDep,
    start: Annotated[
        str | None,
        Query(description="First time (RFC 3339; UTC when it has no offset). Default: all."),
    ] = None,
    end: Annotated[
        str | None, Query(description="Last time, inclusive (like start). Default: all.")
    ] = None,
) -> TaskStatus:
    """Start an analysis of the device's fields over [start, end]: min, max, sum, median,
    count, mean and stddev per field. Answers 202 with the task as it is then (PENDING,
    or already STARTED/SUCCESS when a worker was free); poll `GET /tasks/{task_id}` for
    its state, progress and result."""
    device = str(device_id)
    errors: list[FieldError] = []
    from_us, to_us = MIN_US, MAX_US + 1
    for name, text in (("start", start), ("end", end)):
        if text is None:
            continue
        try:
            us = _time(text)
        except TimestampError as exc:
            errors.append(FieldError(f"query.{name}", str(exc)))
            continue
        if name == "start":
            from_us = us
        else:
            to_us = us + 1
    if not errors and from_us >= to_us:
        errors.append(FieldError("query.end", "must not be before start"))
    if errors:
        raise Unprocessable(errors)
    services.stats_api.get_device(principal.tenant_id, device)
    params = {"device_id": device, "from_us": from_us, "to_us": to_us}
    task_id = services.tasks.submit(principal.tenant_id, ANALYTICS, params)
    return task_status(services, principal.tenant_id, task_id)


# -- stored readings ---------------------------------------------------------------------


def _page(
    services: ServicesDep,
    tenant_id: int,
    device: str | None,
    limit: int,
    offset: int,
    response: Response,
) -> list[dict[str, Any]]:
    readings = services.stats_api.readings(tenant_id, device, limit, offset)
    if len(readings) == limit:
        response.headers["X-Next-Offset"] = str(offset + limit)
    return [
        {
            "device_id": r.device_id,
            "user_id": r.user_id,
            "timestamp": time_or_none(r.ts_us),
            **r.values,
        }
        for r in readings
    ]


@add_route(router, "/stats/", "GET", response_model=list[StatResponse], responses=STATS_PROBLEMS)
def all_stats(
    principal: StatsReader,
    services: ServicesDep,
    response: Response,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[dict[str, Any]]:
    """Stored readings of every device of the tenant, oldest first. Paged: `limit` and
    `offset`; a full page carries `X-Next-Offset` (the offset of the next page)."""
    return _page(services, principal.tenant_id, None, limit, offset, response)


@add_route(
    router, "/stats/{device_id}/", "GET", response_model=list[StatResponse],
    responses=STATS_PROBLEMS,
)  # fmt: skip
def device_stats(
    device_id: uuid.UUID,
    principal: StatsReader,
    services: ServicesDep,
    response: Response,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[dict[str, Any]]:
    """Stored readings of one device, oldest first (paged like `GET /stats/`); 404 when
    the device does not exist."""
    device = str(device_id)
    services.stats_api.get_device(principal.tenant_id, device)
    return _page(services, principal.tenant_id, device, limit, offset, response)
