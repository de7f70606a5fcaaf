"""Answers of the InfluxDB-compatible endpoints, in the shapes InfluxDB's clients parse.

These endpoints never answer with the native problem+json: a client library written for
InfluxDB reads `{"error": ...}` (1.x) or `{"code": ..., "message": ...}` (2.x) and the
status code, and Home Assistant even matches texts such as `database not found` and
`authorization failed` to tell its user what is wrong. So the service's exception tree
(errors.py) is mapped here, once, to both dialects.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from fastapi.responses import JSONResponse, Response

from ..errors import (
    BadRequest,
    Overloaded,
    PayloadTooLarge,
    ServiceError,
    Unauthorized,
    Unavailable,
)

# The InfluxDB release whose HTTP API these endpoints follow (1.8 also serves the 2.x
# write, query and health endpoints for its clients).
INFLUX_VERSION = "1.8.10"
INFLUX_BUILD = "OSS"
VERSION_HEADERS = {"X-Influxdb-Version": INFLUX_VERSION, "X-Influxdb-Build": INFLUX_BUILD}
HEADER_LIMIT = 1024  # InfluxDB cuts X-Influxdb-Error to this many characters
AUTH_FAILED = "authorization failed"


class Dialect(Enum):
    V1 = "v1"
    V2 = "v2"


# InfluxDB 2's error codes (influxdb/kit/platform/errors), by status
V2_CODES: dict[int, str] = {
    400: "invalid",
    401: "unauthorized",
    403: "forbidden",
    404: "not found",
    409: "conflict",
    413: "request too large",
    422: "unprocessable entity",
    429: "too many requests",
    503: "unavailable",
}


class InfluxError(Exception):
    """An answer decided by the router itself (a missing `db`, an unknown precision)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def no_content() -> Response:
    return Response(status_code=204, headers=VERSION_HEADERS)


def json_answer(body: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=VERSION_HEADERS)


def header_safe(text: str) -> str:
    """One ASCII header line of at most HEADER_LIMIT characters (the JSON body carries the
    exact text; characters beyond ASCII are escaped here as `\\xb0`, `\\u20ac`)."""
    flat = " ".join(text.splitlines()).encode("ascii", "backslashreplace").decode("ascii")
    return flat[:HEADER_LIMIT]


def error(
    dialect: Dialect, status: int, message: str, *, retry_after: float | None = None
) -> JSONResponse:
    headers = dict(VERSION_HEADERS)
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, round(retry_after)))
    if dialect is Dialect.V1:
        if status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="InfluxDB"'
        else:
            headers["X-Influxdb-Error"] = header_safe(message)
        return JSONResponse({"error": message}, status_code=status, headers=headers)
    code = V2_CODES.get(status, "internal error")
    headers["X-Platform-Error-Code"] = code
    return JSONResponse({"code": code, "message": message}, status_code=status, headers=headers)


def parse_messages(exc: BadRequest) -> str:
    """The refused lines, one per line, as InfluxDB joins its parse errors."""
    if exc.errors:
        return "\n".join(e.msg for e in exc.errors)
    return exc.detail


def from_service_error(dialect: Dialect, exc: ServiceError) -> JSONResponse:
    """The pipeline's (and auth's) exceptions in InfluxDB's words and status codes."""
    retry_after = exc.retry_after if isinstance(exc, Overloaded | Unavailable) else None
    if isinstance(exc, Unauthorized):
        message = AUTH_FAILED if dialect is Dialect.V1 else "unauthorized access"
    elif isinstance(exc, PayloadTooLarge):
        message = "Request Entity Too Large" if dialect is Dialect.V1 else exc.detail
    elif isinstance(exc, BadRequest):
        message = parse_messages(exc)
    else:  # Forbidden, NotFound, Conflict, LimitExceeded, Overloaded, Unavailable
        message = exc.detail
    return error(dialect, exc.status, message, retry_after=retry_after)


def partial_write(dialect: Dialect, messages: list[str], dropped: int) -> JSONResponse:
    """Some lines were written, `dropped` were not: InfluxDB's 400 `partial write`."""
    text = "partial write: " + "\n".join(messages) + f" dropped={dropped}"
    return error(dialect, 400, text)
