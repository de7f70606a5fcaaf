"""One authenticated session on Home Assistant's WebSocket API, as its docs describe it.

    client                                   Home Assistant
            <-- {"type": "auth_required", "ha_version": ...}
    {"type": "auth", "access_token": ...} -->
            <-- {"type": "auth_ok"} | {"type": "auth_invalid", "message": ...} (then closes)
    {"id": 1, "type": "subscribe_events", "event_type": "state_changed"} -->
            <-- {"id": 1, "type": "result", "success": true, "result": null}
            <-- {"id": 1, "type": "event", "event": {...}}          (for every change)
    {"id": 2, "type": "ping"} -->
            <-- {"id": 2, "type": "pong"}

Ids increase within a connection (Home Assistant refuses a reused one). A reader task
routes each message: results and pongs to the command waiting on its id, events to the
`on_event` callback together with their raw text (kept as received for the archive).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

EventHandler = Callable[[bytes, dict[str, Any]], None]
InvalidHandler = Callable[[str], None]


class HomeAssistantError(Exception):
    """Any failure to talk to Home Assistant; reconnecting may help."""


class AuthInvalid(HomeAssistantError):
    """The token was refused: retrying with the same token cannot succeed."""


class CommandFailed(HomeAssistantError):
    """A command was answered with `success: false`."""

    def __init__(self, command: str, code: str, message: str) -> None:
        super().__init__(f"{command} failed: {code}: {message}")
        self.code = code


class ConnectionLost(HomeAssistantError):
    """The connection closed while a command waited for its answer."""


def websocket_url(base_url: str) -> str:
    """ws(s)://host/api/websocket from Home Assistant's http(s) base URL."""
    parts = urlsplit(base_url.strip())
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if scheme is None or not parts.netloc:
        raise ValueError(
            f"{base_url!r} is not a Home Assistant URL; use e.g. http://homeassistant.local:8123"
        )
    path = parts.path.rstrip("/")
    if not path.endswith("/api/websocket"):
        path += "/api/websocket"
    return urlunsplit((scheme, parts.netloc, path, "", ""))


@dataclass(frozen=True, slots=True)
class Answer:
    """A result message: parsed, and the text as it arrived (a body for the pipeline)."""

    raw: bytes
    message: dict[str, Any]

    @property
    def result(self) -> Any:
        return self.message.get("result")


class Session:
    """An authenticated connection; `open` it, send commands, `close` it."""

    def __init__(
        self,
        ws: ClientConnection,
        ha_version: str,
        on_event: EventHandler,
        on_invalid: InvalidHandler,
    ) -> None:
        self.ha_version = ha_version
        self._ws = ws
        self._on_event = on_event
        self._on_invalid = on_invalid
        self._next_id = 1
        self._pending: dict[int, asyncio.Future[Answer]] = {}
        self._reader = asyncio.create_task(self._read(), name="homeassistant-reader")

    @classmethod
    async def open(
        cls,
        base_url: str,
        token: str,
        *,
        on_event: EventHandler,
        on_invalid: InvalidHandler,
        timeout: float = 10.0,
    ) -> Session:
        """Connect and authenticate; raises AuthInvalid or HomeAssistantError."""
        url = websocket_url(base_url)
        try:
            ws = await connect(
                url, open_timeout=timeout, ping_interval=None, max_size=None, compression=None
            )
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
            raise HomeAssistantError(f"cannot connect to {url}: {exc}") from exc
        try:
            version = await asyncio.wait_for(cls._authenticate(ws, token), timeout)
        except TimeoutError:
            await ws.close()
            raise HomeAssistantError(f"{url} did not complete the auth phase in time") from None
        except BaseException:
            await ws.close()
            raise
        return cls(ws, version, on_event, on_invalid)

    @staticmethod
    async def _authenticate(ws: ClientConnection, token: str) -> str:
        try:
            first = orjson.loads(await ws.recv())
            if not isinstance(first, dict) or first.get("type") != "auth_required":
                raise HomeAssistantError(f"expected auth_required, got {first!r:.200}")
            await ws.send(orjson.dumps({"type": "auth", "access_token": token}).decode())
            answer = orjson.loads(await ws.recv())
        except ConnectionClosed as exc:
            raise HomeAssistantError(f"the connection closed during auth: {exc}") from exc
        except orjson.JSONDecodeError as exc:
            raise HomeAssistantError(f"not a Home Assistant WebSocket API: {exc}") from exc
        kind = answer.get("type") if isinstance(answer, dict) else None
        if kind == "auth_invalid":
            raise AuthInvalid(str(answer.get("message") or "auth_invalid"))
        if kind != "auth_ok":
            raise HomeAssistantError(f"expected auth_ok, got {answer!r:.200}")
        return str(answer.get("ha_version") or first.get("ha_version") or "")

    @property
    def closed(self) -> bool:
        return self._reader.done()

    async def wait_closed(self) -> None:
        await asyncio.shield(self._reader)

    async def command(self, payload: dict[str, Any], timeout: float = 60.0) -> Answer:
        """Send one command and wait for its result message."""
        future = await self._send(payload)
        try:
            answer = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise HomeAssistantError(f"{payload['type']} got no answer in {timeout:g} s") from None
        if answer.message.get("success") is False:
            error = answer.message.get("error") or {}
            raise CommandFailed(
                str(payload["type"]), str(error.get("code")), str(error.get("message"))
            )
        return answer

    async def ping(self, timeout: float) -> bool:
        """True when the pong came back in time."""
        try:
            future = await self._send({"type": "ping"})
            await asyncio.wait_for(future, timeout)
        except (TimeoutError, HomeAssistantError):
            return False
        return True

    async def close(self) -> None:
        await self._ws.close()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(asyncio.shield(self._reader), 5.0)
        if not self._reader.done():
            self._reader.cancel()

    async def _send(self, payload: dict[str, Any]) -> asyncio.Future[Answer]:
        if self.closed:
            raise ConnectionLost("the connection to Home Assistant is closed")
        iden = self._next_id
        self._next_id += 1
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._pending[iden] = future
        try:
            await self._ws.send(orjson.dumps({"id": iden, **payload}).decode())
        except ConnectionClosed as exc:
            self._pending.pop(iden, None)
            raise ConnectionLost(f"the connection closed: {exc}") from exc
        return future

    async def _read(self) -> None:
        try:
            async for frame in self._ws:
                raw = frame.encode() if isinstance(frame, str) else frame
                self._route(raw)
        except ConnectionClosed:
            pass
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionLost("the connection to Home Assistant closed"))
            self._pending.clear()

    def _route(self, raw: bytes) -> None:
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self._on_invalid(f"not JSON: {raw[:200]!r}")
            return
        if isinstance(doc, list):  # coalesced messages: one JSON array of several
            for message in doc:
                self._route_one(orjson.dumps(message), message)
        else:
            self._route_one(raw, doc)

    def _route_one(self, raw: bytes, message: Any) -> None:
        if not isinstance(message, dict) or not isinstance(message.get("id"), int):
            self._on_invalid(f"not a message with an id: {raw[:200]!r}")
            return
        kind = message.get("type")
        if kind == "event":
            self._on_event(raw, message)
        elif kind in ("result", "pong"):
            future = self._pending.pop(message["id"], None)
            if future is not None and not future.done():
                future.set_result(Answer(raw, message))
        else:
            self._on_invalid(f"unexpected message type {kind!r}")
