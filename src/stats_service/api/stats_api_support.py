"""What the stats API routers share (docs/stats-api.md): the caller, 422 answers, paths.

- The caller: an API key as everywhere (read role for GETs, ingest for POSTs), or, with
  no key at all, the anonymous principal of the `default` tenant when that tenant allows
  it (`anonymous_read` / `anonymous_write`, or `stats-service demo`).
- Invalid requests answer 422 (as the seed's FastAPI service does), as problem details
  listing every field error with its location (`body.email`, `path.device_id`, ...).
- Every path answers with and without its trailing slash (the seed writes `/users/` but
  `/devices/{device_id}`), without a redirect.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from ..errors import FieldError, ServiceError, Unauthorized
from ..model import Principal, Role
from ..services import Services
from ..ui.sessions import session_of
from .deps import ServicesDep, presented_key, principal_of
from .errors import loc
from .problems import PROBLEM_RESPONSES, _problem


class Unprocessable(ServiceError):
    status = 422
    title = "Invalid request"

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.loc}: {e.msg}" for e in errors[:5]), errors=errors)


STATS_PROBLEMS: dict[int | str, dict[str, Any]] = {
    **{k: v for k, v in PROBLEM_RESPONSES.items() if k in (400, 401, 403, 404, 413, 429, 503)},
    422: _problem("Invalid request: every field error is listed with its location"),
}


class StatsApiRoute(APIRoute):
    """Turns FastAPI's validation errors into 422 problem details."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                errors = [
                    FieldError(loc(e.get("loc", ())), str(e.get("msg", ""))) for e in exc.errors()
                ]
                raise Unprocessable(errors) from None

        return route


def new_router(tag: str) -> APIRouter:
    return APIRouter(tags=[tag], route_class=StatsApiRoute)


def add_route(
    router: APIRouter, path: str, method: str, **kwargs: Any
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register `path` (documented) and its twin with/without the trailing slash (hidden)."""
    twin = path[:-1] if path.endswith("/") else path + "/"

    def decorate(endpoint: Callable[..., Any]) -> Callable[..., Any]:
        router.add_api_route(path, endpoint, methods=[method], **kwargs)
        hidden = {**kwargs, "include_in_schema": False}
        hidden.pop("operation_id", None)
        router.add_api_route(twin, endpoint, methods=[method], **hidden)
        return endpoint

    return decorate


def stats_caller(request: Request, services: Services, role: Role) -> Principal:
    """The caller of a stats API route: its key's principal (with `role`), or else the
    anonymous principal of tenant `default` when it allows that; 401 otherwise. The
    dashboard's session cookie counts as its key (the pages poll `/tasks/{id}`)."""
    if presented_key(request) is None and session_of(request) is None:
        anonymous = services.auth.anonymous(None, role)
        if anonymous is None:
            flag = "anonymous_read" if role is Role.READ else "anonymous_write"
            raise Unauthorized(
                "an API key is required: send it as `X-API-Key: <key>` or "
                "`Authorization: Bearer <key>` (tenant `default` does not allow "
                f"anonymous access here; an admin can turn on `{flag}`)"
            )
        services.usage.request(anonymous.tenant_id)
        request.state.principal = anonymous
        return anonymous
    principal = principal_of(request, services)
    if not principal.system:
        services.usage.request(principal.tenant_id)
    return services.auth.require(principal, role)


def _caller(role: Role) -> Callable[..., Coroutine[Any, Any, Principal]]:
    async def check(request: Request, services: ServicesDep) -> Principal:
        return stats_caller(request, services, role)

    return check


StatsReader = Annotated[Principal, Depends(_caller(Role.READ))]
StatsWriter = Annotated[Principal, Depends(_caller(Role.INGEST))]
