"""Dependencies shared by the routers: the services and the caller's principal."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ..errors import Forbidden
from ..model import Principal, Role
from ..services import Services
from ..ui.sessions import CSRF_HEADER, SAFE_METHODS, session_of


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def presented_key(request: Request) -> str | None:
    key = request.headers.get("x-api-key")
    if key:
        return key.strip()
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def principal_of(request: Request, services: Services) -> Principal:
    """The caller, from its key (cached, so this rarely touches the store), or else from
    the dashboard's session cookie (with its CSRF token when the request changes state)."""
    key = presented_key(request)
    session = session_of(request) if key is None else None
    if session is not None:
        if request.method not in SAFE_METHODS and not session.csrf_ok(
            request.headers.get(CSRF_HEADER)
        ):
            raise Forbidden(
                "a request that changes state with the session cookie needs the session's "
                "CSRF token in the X-CSRF-Token header"
            )
        if session.principal is not None:
            request.state.principal = session.principal
            return session.principal
        key = session.key
    principal = services.auth.authenticate(key)
    if principal.system and (name := request.headers.get("x-tenant")):
        tenant = services.auth.tenant(name)
        principal = Principal(tenant.id, tenant.name, Role.ADMIN, system=True)
    request.state.principal = principal
    return principal


async def get_principal(request: Request, services: ServicesDep) -> Principal:
    return principal_of(request, services)


def _role(role: Role) -> object:
    # async: FastAPI would run a plain `def` dependency in the thread pool, a thread hop
    # per request for what is a dictionary look-up
    async def check(
        principal: Annotated[Principal, Depends(get_principal)], services: ServicesDep
    ) -> Principal:
        if not principal.system:
            services.usage.request(principal.tenant_id)
        return services.auth.require(principal, role)

    return check


IngestPrincipal = Annotated[Principal, Depends(_role(Role.INGEST))]
ReadPrincipal = Annotated[Principal, Depends(_role(Role.READ))]
AdminPrincipal = Annotated[Principal, Depends(_role(Role.ADMIN))]
