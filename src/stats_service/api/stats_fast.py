"""`POST /devices/{device_id}/stats/` without FastAPI's routing and dependency solving.

The busiest route of the stats API (every device posts to it) spent more time in route
matching (about a hundred routes are tried in order) and dependency solving than in
its own work (docs/benchmarks.md, section 9). This ASGI middleware answers it directly,
with the same code as the route (`stats_caller`, `store_reading`) and the same problem
details; any other request, and a device id that is not a UUID (the route answers 422),
goes on to the app. The FastAPI route stays: it documents the operation in OpenAPI.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import ServiceError
from ..model import Role
from .errors import service_problem
from .routers.stats_api import router, store_reading
from .stats_api_support import stats_caller

PATH = re.compile(r"^/devices/([^/]+)/stats/?$")
ROUTE_PATH = "/devices/{device_id}/stats/"
OK = b'{"status":"ok"}'


class StatsFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._route: Any = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = PATH.match(scope["path"]) if scope["type"] == "http" else None
        if match is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        try:
            device = str(uuid.UUID(match[1]))
        except ValueError:
            await self.app(scope, receive, send)
            return
        scope["route"] = self._route or self._find_route()
        request = Request(scope, receive)
        services = scope["app"].state.services
        try:
            principal = stats_caller(request, services, Role.INGEST)
            await store_reading(principal, services, device, request)
            response = Response(OK, media_type="application/json")
        except ServiceError as exc:
            response = _problem(request, exc)
        await response(scope, receive, send)

    def _find_route(self) -> Any:
        for route in router.routes:
            if isinstance(route, APIRoute) and route.path == ROUTE_PATH:
                self._route = route
                return route
        return None


def _problem(request: Request, exc: ServiceError) -> Response:
    """What api/errors.py answers for a ServiceError."""
    return service_problem(request.url.path, exc)
