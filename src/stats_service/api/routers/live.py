"""WS /v1/live: new points pushed to a subscriber as they are committed (docs/live.md).

One connection, one subscription: the selection comes from the query string, the key
from `?key=`, the `X-API-Key` / `Authorization: Bearer` header, the dashboard's session
cookie (from this server's pages only), or a first message `{"type": "auth", "key":
"..."}` within AUTH_TIMEOUT_S. Refusals are an
`{"type": "error", ...}` message (problem details) and then a close code: 4400 bad
parameter or message, 4401 no valid key, 4403 role not allowed, 1013 too many
subscribers. A subscriber too slow for its feed is closed with 4008; one whose key is
revoked, with 4401 within KEY_RECHECK_S.

WebSocket routes do not appear in the OpenAPI document, so the tenant isolation test
that walks it does not reach this one: tests/e2e/test_live_feed.py checks its isolation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import anyio
import orjson
import structlog
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from ...errors import BadRequest, Forbidden, ServiceError, Unauthorized
from ...live.hub import CLOSE_TOO_SLOW, LiveHub, Subscriber, TooManySubscribers
from ...live.selection import Request, parse_request
from ...model import Principal, Role
from ...services import Services
from ...ui.sessions import Session, session_of, sessions_of

log = structlog.get_logger(__name__)
router = APIRouter()

AUTH_TIMEOUT_S = 5.0
CLOSE_TIMEOUT_S = 10.0
KEY_RECHECK_S = 5.0  # a revoked key's subscriptions end within this (4401)
CLOSE_CODES = {400: 4400, 401: 4401, 403: 4403}
CLOSE_TRY_LATER = 1013
CLOSE_INTERNAL = 1011
REASON_MAX_BYTES = 123  # a close frame's reason is at most 123 bytes of UTF-8
Recheck = Callable[[], object]  # raises Unauthorized once the caller may no longer listen


class _Refused(Exception):
    def __init__(self, code: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("detail"))
        self.code = code
        self.body = body


@router.websocket("/v1/live")
async def live(websocket: WebSocket) -> None:
    services: Services = websocket.app.state.services
    hub = services.live
    await websocket.accept()
    try:
        subscriber, principal, keepalive, recheck = await _open(websocket, services)
    except _Refused as refused:
        hub.refused.labels(str(refused.code)).inc()
        await _refuse(websocket, refused)
        return
    except WebSocketDisconnect:
        return
    try:
        await _send(websocket, hub, _hello(principal, subscriber, keepalive))
        revoked = await _serve(websocket, services, subscriber, keepalive, recheck)
        if revoked is not None:
            hub.dropped.labels("unauthorized").inc()
            await _refuse(websocket, _Refused(4401, _problem(401, "Unauthorized", revoked)))
    except (WebSocketDisconnect, OSError, RuntimeError):
        pass  # the client went away (sending to a closed socket raises)
    finally:
        hub.unsubscribe(subscriber)


async def _open(
    websocket: WebSocket, services: Services
) -> tuple[Subscriber, Principal, float, Recheck]:
    """Parse, authenticate, subscribe; _Refused with a close code otherwise."""
    hub, settings = services.live, services.settings
    try:
        request = parse_request(websocket.query_params.multi_items())
        principal, recheck = await _authenticate(websocket, services, request)
        services.auth.require(principal, Role.READ)
        if not principal.system:
            services.usage.request(principal.tenant_id)
        if settings.live_max_subscribers == 0:
            raise _Refused(
                CLOSE_TRY_LATER,
                _problem(503, "Service unavailable", "the live feed is turned off here"),
            )
        subscriber = hub.subscribe(request.selection(principal.tenant_id))
    except ServiceError as exc:
        code = CLOSE_CODES.get(exc.status, CLOSE_INTERNAL)
        body = _problem(exc.status, exc.title, exc.detail)
        if exc.errors:
            body["errors"] = [e.as_dict() for e in exc.errors]
        raise _Refused(code, body) from None
    except TooManySubscribers as exc:
        raise _Refused(CLOSE_TRY_LATER, _problem(503, "Service unavailable", str(exc))) from None
    return subscriber, principal, request.keepalive_s or settings.live_keepalive_s, recheck


async def _authenticate(
    websocket: WebSocket, services: Services, request: Request
) -> tuple[Principal, Recheck]:
    """The caller's principal and how to check later that it still may listen. A key in
    the URL or a header comes first; then the dashboard's session cookie (its pages only:
    the Origin must be this server's); then a first `auth` message. A tenant's
    `anonymous_read` alone opens nothing here: the dashboard's anonymous session does."""
    key = request.key or _header_key(websocket)
    if key is None and (session := session_of(websocket)) is not None:
        _check_origin(websocket, services)
        return await _session_principal(websocket, services, session)
    key = key or await _first_message_key(websocket)
    if key is None:
        raise Unauthorized(
            "an API key is required: pass ?key=<key>, an X-API-Key header, or send "
            f'{{"type": "auth", "key": "<key>"}} within {AUTH_TIMEOUT_S:g} s'
        )
    principal = await anyio.to_thread.run_sync(services.auth.authenticate, key)
    if principal.system and (name := websocket.headers.get("x-tenant")):
        tenant = services.auth.tenant(name)
        principal = Principal(tenant.id, tenant.name, Role.ADMIN, system=True)
    return principal, partial(services.auth.authenticate, key)


async def _session_principal(
    websocket: WebSocket, services: Services, session: Session
) -> tuple[Principal, Recheck]:
    sessions = sessions_of(websocket)

    def recheck() -> object:
        current = sessions.get(session.id)
        if current is None:
            raise Unauthorized("the dashboard session has ended (signed out or expired)")
        return services.auth.authenticate(current.key) if current.principal is None else None

    if session.principal is not None:
        return session.principal, recheck
    principal = await anyio.to_thread.run_sync(services.auth.authenticate, session.key)
    return principal, recheck


def _check_origin(websocket: WebSocket, services: Services) -> None:
    """A cookie goes with any page's WebSocket: only this server's pages (or those at
    STATS_PUBLIC_URL) may use it. Browsers always send Origin on a WebSocket."""
    origin = websocket.headers.get("origin")
    # hosts, not schemes: behind a proxy that ends TLS the page is https, the socket ws
    allowed = {websocket.headers.get("host", "")}
    if services.settings.public_url:
        allowed.add(urlsplit(services.settings.public_url).netloc)
    if origin is None or urlsplit(origin).netloc not in allowed:
        raise Forbidden(
            f"a session cookie opens the live feed only from this server's pages, not from "
            f"origin {origin or '(none)'}; other clients pass an API key"
        )


def _header_key(websocket: WebSocket) -> str | None:
    key = websocket.headers.get("x-api-key")
    if key and key.strip():
        return key.strip()
    scheme, _, value = websocket.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


async def _first_message_key(websocket: WebSocket) -> str | None:
    """The key of a first `{"type": "auth", "key": "..."}` message; None when no message
    came in time or it carried no key."""
    message: dict[str, Any] | None = None
    with anyio.move_on_after(AUTH_TIMEOUT_S):
        message = dict(await websocket.receive())
    if message is None:
        return None
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    text = message.get("text")
    if text is None and message.get("bytes") is not None:
        text = message["bytes"].decode("utf-8", "replace")
    try:
        body = orjson.loads(text or "")
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict) or body.get("type") != "auth":
        raise BadRequest('the first message must be {"type": "auth", "key": "<key>"}')
    key = body.get("key")
    if key is not None and not isinstance(key, str):
        raise BadRequest("`key` of the auth message must be a string")
    return (key.strip() or None) if key else None


async def _serve(
    websocket: WebSocket,
    services: Services,
    subscriber: Subscriber,
    keepalive: float,
    recheck: Recheck,
) -> str | None:
    """Send the subscriber's frames until the client leaves, the hub drops it, or its key
    is revoked (checked every KEY_RECHECK_S; returns why). A task group (not bare asyncio
    tasks) so that a cancellation from outside ends it cleanly."""
    hub = services.live
    client_gone = False
    revoked: str | None = None
    async with anyio.create_task_group() as group:

        async def send_frames() -> None:
            nonlocal client_gone
            try:
                await _pump(websocket, hub, subscriber, keepalive)
            except (WebSocketDisconnect, OSError, RuntimeError):
                client_gone = True  # sending to a closed connection raises
            group.cancel_scope.cancel()

        async def read_client() -> None:
            nonlocal client_gone
            await _drain_incoming(websocket)
            client_gone = True
            group.cancel_scope.cancel()

        async def watch_drop() -> None:
            await subscriber.dropped.wait()
            group.cancel_scope.cancel()

        async def watch_key() -> None:
            nonlocal revoked
            while True:
                await anyio.sleep(KEY_RECHECK_S)
                try:
                    await anyio.to_thread.run_sync(recheck)
                except Unauthorized as exc:
                    revoked = exc.detail
                    group.cancel_scope.cancel()
                    return

        group.start_soon(send_frames)
        group.start_soon(read_client)
        group.start_soon(watch_drop)
        group.start_soon(watch_key)
    if client_gone:
        return None
    if revoked is not None:
        return revoked
    if subscriber.dropped.is_set():
        reason = f"too slow: more than {subscriber.max_bytes} bytes of messages waiting"
        await _close(websocket, CLOSE_TOO_SLOW, reason)
    return None


async def _pump(
    websocket: WebSocket, hub: LiveHub, subscriber: Subscriber, keepalive: float
) -> None:
    while not subscriber.dropped.is_set():
        frame = await subscriber.next(keepalive)
        if frame is None:
            if subscriber.dropped.is_set():
                return
            await _send(websocket, hub, {"type": "ping", "time": _now()})
            continue
        try:
            await websocket.send_text(frame)
        finally:
            subscriber.sent(frame)
        hub.messages_sent.inc()


async def _drain_incoming(websocket: WebSocket) -> None:
    """Read (and ignore) what the client sends, until it disconnects."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return


async def _send(websocket: WebSocket, hub: LiveHub, body: dict[str, Any]) -> None:
    await websocket.send_text(orjson.dumps(body).decode())
    hub.messages_sent.inc()


def _hello(principal: Principal, subscriber: Subscriber, keepalive: float) -> dict[str, Any]:
    return {
        "type": "hello",
        "tenant": principal.tenant,
        "role": principal.role.value,
        "selection": subscriber.selection.describe(),
        "keepalive_s": keepalive,
        "queue_bytes": subscriber.max_bytes,
        "time": _now(),
    }


async def _refuse(websocket: WebSocket, refused: _Refused) -> None:
    with contextlib.suppress(WebSocketDisconnect, OSError, RuntimeError):
        await websocket.send_text(orjson.dumps({"type": "error", **refused.body}).decode())
    await _close(websocket, refused.code, str(refused.body.get("detail", "")))


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    if websocket.application_state is WebSocketState.DISCONNECTED:
        return
    # a client that reads nothing never lets the close frame out: give up after a while
    # (the server's protocol-level keepalive then ends the connection)
    with (
        contextlib.suppress(WebSocketDisconnect, OSError, RuntimeError),
        anyio.move_on_after(CLOSE_TIMEOUT_S),
    ):
        await websocket.close(code, _short(reason))


def _short(reason: str) -> str:
    """A close reason within the 123 bytes a close frame may carry."""
    data = reason.encode()
    if len(data) <= REASON_MAX_BYTES:
        return reason
    return data[: REASON_MAX_BYTES - 3].decode("utf-8", "ignore") + "..."


def _problem(status: int, title: str, detail: str) -> dict[str, Any]:
    return {"status": status, "title": title, "detail": detail}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
