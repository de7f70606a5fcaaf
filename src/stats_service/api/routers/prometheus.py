"""POST /api/v1/write: Prometheus remote write 1.0 (see docs/protocols/prometheus.md).

Thin: find the key, check the headers, read the body, hand the still-compressed bytes to
the pipeline as protocol `prometheus` (so that `replay` re-parses what was archived),
count stale markers, and answer as a remote-write receiver does. Prometheus logs the
first kilobyte of an error body and retries only 5xx and 429, so errors are short
text/plain messages that say what was wrong first, and 4xx is used exactly where a retry
cannot help.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import Counter
from starlette.datastructures import Headers

from ...errors import (
    FieldError,
    Overloaded,
    PayloadTooLarge,
    ServiceError,
    Unauthorized,
    Unavailable,
)
from ...ingest.protocols import prometheus_remote
from ...model import Principal, Role
from ...services import Services
from ..deps import ServicesDep
from .ingest import read_body

router = APIRouter(tags=["prometheus"])

V1_MESSAGE = "prometheus.WriteRequest"
MEDIA_TYPES = ("application/x-protobuf", "application/octet-stream")
VERSIONS = ("0.1.", "1.", "2.")  # 2.x senders name the message in Content-Type
DECODED_RATIO = 8  # the decompressed body may be this many times max_body_bytes
INLINE_BYTES = 256 * 1024  # stale markers of larger bodies are counted off the event loop
SHOWN_ERRORS = 20
AUTH_HINT = (
    "send an ingest key: `authorization: {credentials: <key>}` (Bearer), "
    "`basic_auth: {password: <key>}` or the X-API-Key header"
)

TEXT = {"text/plain": {"schema": {"type": "string"}}}
RESPONSES: dict[int | str, dict[str, Any]] = {
    204: {"description": "Stored (durable)"},
    400: {
        "description": "Not snappy, not a WriteRequest, or series refused (listed)",
        "content": TEXT,
    },
    401: {"description": "Missing or unknown key", "content": TEXT},
    403: {"description": "The key may not write", "content": TEXT},
    409: {"description": "A series id collides with another series", "content": TEXT},
    413: {"description": "Body (or its decompressed size) over the limit", "content": TEXT},
    415: {
        "description": "Not remote write 1.0 (e.g. 2.0's io.prometheus.write.v2.Request)",
        "content": TEXT,
    },
    422: {"description": "A tenant limit would be exceeded", "content": TEXT},
    429: {"description": "Write queue full; retry after Retry-After seconds", "content": TEXT},
    503: {
        "description": "The store cannot take writes now; retry after Retry-After",
        "content": TEXT,
    },
}
WRITE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "snappy block compression of a protobuf prometheus.WriteRequest",
        # octet-stream too: it is accepted, and tools without a protobuf serializer
        # (schemathesis) can send it
        "content": {
            media: {"schema": {"type": "string", "format": "binary"}} for media in MEDIA_TYPES
        },
    }
}


@router.post(
    "/api/v1/write",
    status_code=204,
    response_class=Response,
    responses=RESPONSES,
    openapi_extra=WRITE_BODY,
)
async def remote_write(request: Request, services: ServicesDep) -> Response:
    """Prometheus remote write 1.0: store a snappy-compressed prometheus.WriteRequest."""
    try:
        principal = _principal(request, services)
        unsupported = _unsupported(request.headers)
        if unsupported:
            return PlainTextResponse(unsupported, status_code=415)
        body = await read_body(request, services.settings.max_body_bytes)
        limit = DECODED_RATIO * services.settings.max_body_bytes
        size = prometheus_remote.declared_length(body)
        if size > limit:
            raise PayloadTooLarge(
                f"the body would decompress to {size} bytes; at most {limit} are accepted: "
                "send smaller batches (queue_config.max_samples_per_send)"
            )
        result = await services.pipeline.ingest(principal, "prometheus", body)
    except ServiceError as exc:
        return _error(exc)
    await _count_stale_markers(request, services, principal, body)
    if result.dropped_count:
        head = (
            f"{result.dropped_count} series or samples were not stored, the other "
            f"{result.points} samples were:"
        )
        return PlainTextResponse(_listing(head, result.dropped, result.dropped_count), 400)
    return Response(status_code=204)


def _principal(request: Request, services: Services) -> Principal:
    key = _presented_key(request.headers)
    if key is None:
        raise Unauthorized(f"no API key: {AUTH_HINT}")
    principal = services.auth.authenticate(key)
    if not principal.system:
        services.usage.request(principal.tenant_id)
    return services.auth.require(principal, Role.INGEST)


def _presented_key(headers: Headers) -> str | None:
    """The key from `Authorization: Bearer`, Basic auth (the password; the user name is
    ignored, or taken when the password is empty) or `X-API-Key`."""
    scheme, _, value = headers.get("authorization", "").strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        return value
    if scheme.lower() == "basic" and value:
        try:
            user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthorized(
                f"the Basic credentials are not base64 of user:password; {AUTH_HINT}"
            ) from None
        return password or user or None
    api_key = headers.get("x-api-key", "").strip()
    return api_key or None


def _unsupported(headers: Headers) -> str | None:
    """Why the request is not remote write 1.0 (answered 415), or None."""
    content_type = headers.get("content-type")
    if content_type:
        media, _, rest = content_type.partition(";")
        params = {}
        for part in rest.split(";"):
            name, _, value = part.partition("=")
            params[name.strip().lower()] = value.strip().strip('"')
        proto = params.get("proto")
        if media.strip().lower() not in MEDIA_TYPES:
            return (
                f"Content-Type {content_type!r} is not supported: remote write 1.0 sends "
                "application/x-protobuf (a snappy-compressed prometheus.WriteRequest)"
            )
        if proto and proto != V1_MESSAGE:
            return (
                f"the message {proto} is not supported: only remote write 1.0 "
                f"({V1_MESSAGE}) is accepted; set `protobuf_message: {V1_MESSAGE}` in the "
                "remote_write section"
            )
    encoding = headers.get("content-encoding")
    if encoding and encoding.strip().lower() != "snappy":
        return f"Content-Encoding {encoding!r} is not supported: remote write sends snappy"
    version = headers.get("x-prometheus-remote-write-version")
    if version and not version.strip().startswith(VERSIONS):
        return f"remote write version {version!r} is not supported: this receiver speaks 0.1.0"
    return None


def _error(exc: ServiceError) -> Response:
    headers: dict[str, str] = {}
    if isinstance(exc, Overloaded | Unavailable):
        headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="stats-service", Basic realm="stats-service"'
    text = exc.detail
    if exc.errors:
        count = len(exc.errors)
        text = _listing(f"nothing was stored; {count} error(s):", exc.errors, count)
    return PlainTextResponse(text, status_code=exc.status, headers=headers)


def _listing(head: str, errors: list[FieldError], count: int) -> str:
    lines = [head, *(f"{e.loc}: {e.msg}" for e in errors[:SHOWN_ERRORS])]
    if count > SHOWN_ERRORS:
        lines.append(f"... and {count - SHOWN_ERRORS} more")
    return "\n".join(lines) + "\n"


async def _count_stale_markers(
    request: Request, services: Services, principal: Principal, body: bytes
) -> None:
    """Count the stale markers of a stored request (the parser skipped them)."""

    def count() -> int:
        return prometheus_remote.count_stale_markers(prometheus_remote.decompress(body))

    counter = _stale_counter(request, services)  # listed in /metrics from the first write
    found = count() if len(body) <= INLINE_BYTES else await anyio.to_thread.run_sync(count)
    if found:
        counter.labels(principal.tenant).inc(found)


def _stale_counter(request: Request, services: Services) -> Counter:
    """The app's counter, registered on its registry the first time it is needed."""
    registry = services.metrics.registry
    held: tuple[object, Counter] | None = getattr(request.app.state, "prometheus_stale", None)
    if held is None or held[0] is not registry:
        counter = Counter(
            "stats_prometheus_stale_markers",
            "Prometheus stale markers received (skipped, not stored), by tenant.",
            ["tenant"],
            registry=registry,
        )
        held = (registry, counter)
        request.app.state.prometheus_stale = held
    return held[1]
