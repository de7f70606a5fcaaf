"""The service's exceptions in InfluxDB 1.x and 2.x words and status codes."""

from __future__ import annotations

import json

import pytest

from stats_service.api.influx_answers import Dialect, from_service_error, partial_write
from stats_service.errors import (
    BadRequest,
    Conflict,
    FieldError,
    Forbidden,
    LimitExceeded,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    ServiceError,
    Unauthorized,
    Unavailable,
    ValidationFailed,
)

CASES: list[tuple[ServiceError, int, str, str]] = [
    (Unauthorized("unknown API key"), 401, "authorization failed", "unauthorized"),
    (Forbidden("role read"), 403, "role read", "forbidden"),
    (NotFound("gone"), 404, "gone", "not found"),
    (Conflict("collides"), 409, "collides", "conflict"),
    (PayloadTooLarge("big"), 413, "Request Entity Too Large", "request too large"),
    (LimitExceeded("too many series"), 422, "too many series", "unprocessable entity"),
    (Overloaded("queue full", retry_after=2.4), 429, "queue full", "too many requests"),
    (Unavailable("store down", retry_after=6), 503, "store down", "unavailable"),
    (BadRequest("bad"), 400, "bad", "invalid"),
]


@pytest.mark.parametrize(("exc", "status", "v1_text", "v2_code"), CASES)
def test_mapping(exc: ServiceError, status: int, v1_text: str, v2_code: str) -> None:
    v1 = from_service_error(Dialect.V1, exc)
    assert v1.status_code == status
    assert json.loads(v1.body) == {"error": v1_text}
    v2 = from_service_error(Dialect.V2, exc)
    assert v2.status_code == status
    body = json.loads(v2.body)
    assert body["code"] == v2_code
    assert v2.headers["x-platform-error-code"] == v2_code
    if isinstance(exc, Overloaded | Unavailable):
        assert v1.headers["retry-after"] == str(round(exc.retry_after))
    if status == 401:
        assert v1.headers["www-authenticate"] == 'Basic realm="InfluxDB"'
        assert "x-influxdb-error" not in v1.headers
    else:
        assert v1.headers["x-influxdb-error"] == v1_text


def test_parse_errors_are_joined_line_by_line() -> None:
    exc = ValidationFailed(
        [
            FieldError("line 1", "unable to parse 'a': x"),
            FieldError("line 2", "unable to parse 'b': y"),
        ]
    )
    answer = from_service_error(Dialect.V1, exc)
    assert json.loads(answer.body) == {"error": "unable to parse 'a': x\nunable to parse 'b': y"}
    assert answer.headers["x-influxdb-error"] == "unable to parse 'a': x unable to parse 'b': y"


def test_partial_write_text() -> None:
    answer = partial_write(Dialect.V1, ["unable to parse 'a': x"], 3)
    assert json.loads(answer.body) == {"error": "partial write: unable to parse 'a': x dropped=3"}
