"""What-if experiment for serve_patched.py: FastAPI dependencies as `async def`.

FastAPI runs every sync (`def`) dependency in the anyio thread pool; api/deps.py has
three on every request (get_services, get_principal, the role check). These async
wrappers call the same code on the event loop. Imported before the routers so that
their `Annotated[..., Depends(...)]` aliases pick up the async versions.
(No `from __future__ import annotations` here: FastAPI must see real types.)
"""

import inspect
import sys
from typing import Annotated

from fastapi import Depends, Request

from stats_service.api import deps
from stats_service.model import Principal, Role
from stats_service.services import Services

_sync_get_principal = deps.get_principal
_sync_role = deps._role


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_principal(request: Request, services: ServicesDep) -> Principal:
    return _sync_get_principal(request, services)


def _role(role: Role) -> object:
    sync_check = _sync_role(role)

    async def check(
        principal: Annotated[Principal, Depends(get_principal)], services: ServicesDep
    ) -> Principal:
        return sync_check(principal, services)  # type: ignore[operator, no-any-return]

    return check


def apply() -> None:
    if inspect.iscoroutinefunction(_sync_get_principal):
        print("asyncdeps: api/deps.py is already async; patch skipped", file=sys.stderr)
        return
    deps.get_services = get_services  # type: ignore[assignment]
    deps.ServicesDep = ServicesDep  # type: ignore[misc]
    deps.get_principal = get_principal  # type: ignore[assignment]
    deps._role = _role
    deps.AnyPrincipal = Annotated[Principal, Depends(get_principal)]  # type: ignore[misc]
    deps.IngestPrincipal = Annotated[Principal, Depends(_role(Role.INGEST))]  # type: ignore[misc]
    deps.ReadPrincipal = Annotated[Principal, Depends(_role(Role.READ))]  # type: ignore[misc]
    deps.AdminPrincipal = Annotated[Principal, Depends(_role(Role.ADMIN))]  # type: ignore[misc]
