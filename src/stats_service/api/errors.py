"""The one place that turns errors into HTTP answers: RFC 9457 problem details."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import FieldError, Overloaded, ServiceError, Unavailable

log = structlog.get_logger(__name__)
PROBLEM = "application/problem+json"


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    instance: str | None = None,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    if errors:
        body["errors"] = [e.as_dict() for e in errors]
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def service_problem(path: str, exc: ServiceError) -> JSONResponse:
    """The problem details answer of a ServiceError raised while serving `path`."""
    headers = None
    if isinstance(exc, Overloaded | Unavailable):
        headers = {"Retry-After": str(max(1, round(exc.retry_after)))}
    if exc.status == 401:
        headers = {"WWW-Authenticate": 'Bearer realm="stats-service"'}
    return problem(
        exc.status, exc.title, exc.detail, instance=path, errors=exc.errors, headers=headers
    )


def loc(parts: tuple[Any, ...] | list[Any]) -> str:
    """A pydantic error location as the dotted path of problem details (`body.points[3].ts`)."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def install(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return service_problem(request.url.path, exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [FieldError(loc(e.get("loc", ())), str(e.get("msg", ""))) for e in exc.errors()]
        detail = "; ".join(f"{e.loc}: {e.msg}" for e in errors[:5])
        return problem(400, "Invalid request", detail, instance=request.url.path, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        titles = {404: "Not found", 405: "Method not allowed"}
        return problem(
            exc.status_code,
            titles.get(exc.status_code, "Error"),
            str(exc.detail),
            instance=request.url.path,
            headers=dict(exc.headers) if exc.headers else None,
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled_error", path=request.url.path)
        return problem(500, "Internal error", "an unexpected error occurred; see the server log")
