"""What-if experiment for serve_patched.py: POST /v1/ingest as a plain ASGI handler.

Wraps the FastAPI app: POST /v1/ingest is served by a few lines of ASGI (auth, body,
pipeline, orjson response, request metric) instead of FastAPI routing, dependency
injection, exception middleware and JSONResponse. Everything else goes to FastAPI.
Errors are answered as problem+json with the service error's status (a simplification
of api/errors.py that is enough for measuring the happy path).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

import orjson

from stats_service.errors import ServiceError
from stats_service.model import Role

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def wrap(app: Any) -> Any:
    async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or scope["path"] != "/v1/ingest"
        ):
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        services = app.state.services
        headers = dict(scope["headers"])
        status = 202
        try:
            raw_key = headers.get(b"x-api-key", b"").decode().strip() or None
            principal = services.auth.authenticate(raw_key)
            services.usage.request(principal.tenant_id)
            services.auth.require(principal, Role.INGEST)
            chunks = []
            more = True
            while more:
                message = await receive()
                chunks.append(message.get("body", b""))
                more = message.get("more_body", False)
            body = b"".join(chunks)
            params = dict(parse_qsl(scope.get("query_string", b"").decode()))
            extra = {"precision": params["precision"]} if "precision" in params else {}
            key = headers.get(b"idempotency-key")
            result = await services.pipeline.ingest(
                principal, "json", body, params=extra,
                idempotency_key=key.decode() if key else None,
            )
            payload = orjson.dumps(result.body)
            content_type = b"application/json"
        except ServiceError as exc:
            status = exc.status
            payload = orjson.dumps({"type": "about:blank", "title": exc.title,
                                    "status": exc.status, "detail": exc.detail})
            content_type = b"application/problem+json"
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", content_type),
                                (b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})
        services.metrics.request_seconds.labels("POST", "/v1/ingest", str(status)).observe(
            time.perf_counter() - started
        )

    asgi.state = app.state  # type: ignore[attr-defined]
    return asgi
