"""A stand-in Home Assistant that speaks its WebSocket API message for message.

What it implements follows Home Assistant's own code (homeassistant/components/
websocket_api, history/websocket_api.py, recorder/websocket_api.py, recorder/history):

- the auth phase: `auth_required` (with `ha_version`) -> `auth` -> `auth_ok`, or
  `auth_invalid` and the connection closed (a malformed auth message likewise);
- commands with increasing ids (`id_reuse` otherwise), answered by `result` messages
  ({"id", "type": "result", "success", "result"} or {"success": false, "error": {code,
  message}}), `unknown_command` for anything else;
- `ping` -> `pong`; `subscribe_events` / `unsubscribe_events`; `get_states`;
- `state_changed` events shaped like `Event.as_dict()` around `State.as_dict()`;
- `history/history_during_period` in the compressed format (`s`, `a`, `lu`, `lc` with
  epoch seconds), rows with start < last_updated < end, `minimal_response` (attributes
  only on the first row, repeats of the same state left out, except the domains whose
  attributes always count), `no_attributes`, `include_start_time_state`,
  `significant_changes_only`; `entity_ids` required as in current releases;
- `recorder/list_statistic_ids`, `recorder/get_statistics_metadata`,
  `recorder/statistics_during_period` (start/end in epoch milliseconds, start <= row <
  end, `types`).

It runs on its own event loop in a thread, so sync tests drive it; the controls (set a
state, drop connections, refuse them, stop answering pings) are thread-safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

HA_VERSION = "2024.3.3"
SIGNIFICANT_DOMAINS = {"climate", "device_tracker", "humidifier", "thermostat", "water_heater"}
NEED_ATTRIBUTE_DOMAINS = {"climate", "humidifier", "input_datetime", "thermostat", "water_heater"}
STAT_TYPES = ("change", "last_reset", "max", "mean", "min", "state", "sum")
PERIODS = ("5minute", "hour", "day", "week", "month")


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def parse_time(text: Any) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


@dataclass
class _Row:
    state: str
    attributes: dict[str, Any]
    last_updated: float
    last_changed: float


@dataclass
class _Client:
    ws: ServerConnection
    last_id: int = 0
    subscriptions: dict[int, str] = field(default_factory=dict)


class FakeHomeAssistant:
    def __init__(self, token: str = "fake-long-lived-token") -> None:
        self.token = token
        self.states: dict[str, dict[str, Any]] = {}
        self.history: dict[str, list[_Row]] = {}
        self.statistics: dict[str, list[dict[str, Any]]] = {}
        self.statistics_meta: dict[str, dict[str, Any]] = {}
        self.commands: list[dict[str, Any]] = []  # every command received, in order
        self.auth_attempts = 0
        self.connections = 0  # authenticated ones
        self.answer_pings = True
        self.refusing = False
        self.refused = 0  # handshakes answered 502 while refusing
        self._clients: list[_Client] = []
        self._loop = asyncio.new_event_loop()
        self._server: Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.url = ""

    # -- lifecycle (test thread) -------------------------------------------------------

    def start(self) -> str:
        self._thread.start()
        self._server = self._call(self._start())
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def _start(self) -> Server:
        return await serve(
            self._handle,
            "127.0.0.1",
            0,
            process_request=self._process_request,
            ping_interval=None,
            max_size=None,
            compression=None,
        )

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._call(self._server.wait_closed())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def __enter__(self) -> FakeHomeAssistant:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    # -- controls (test thread) --------------------------------------------------------

    def set_state(
        self,
        entity_id: str,
        state: str,
        attributes: dict[str, Any] | None = None,
        at: float | None = None,
    ) -> dict[str, Any]:
        """Change a state as Home Assistant's state machine does; fires state_changed."""
        return self._call(self._set_state(entity_id, state, attributes or {}, at))  # type: ignore[no-any-return]

    def remove(self, entity_id: str) -> None:
        self._call(self._remove(entity_id))

    def add_statistics(
        self, statistic_id: str, unit: str | None, rows: list[dict[str, Any]], *, mean: bool
    ) -> None:
        """Hourly rows: {"start": epoch seconds, "mean"/"min"/"max" or "state"/"sum"}."""
        self.statistics_meta[statistic_id] = {
            "statistic_id": statistic_id,
            "display_unit_of_measurement": unit,
            "has_mean": mean,
            "has_sum": not mean,
            "name": None,
            "source": "recorder",
            "statistics_unit_of_measurement": unit,
            "unit_class": None,
        }
        self.statistics.setdefault(statistic_id, []).extend(rows)
        self.statistics[statistic_id].sort(key=lambda r: r["start"])

    def drop_connections(self, *, refuse: bool = False) -> None:
        """Close every connection; with `refuse`, new ones fail (503) until `accept()`."""
        self.refusing = refuse
        self._call(self._drop())

    def accept(self) -> None:
        self.refusing = False

    def send_raw(self, text: str) -> None:
        """A frame as is, to every authenticated connection (to test bad messages)."""
        self._call(self._broadcast_raw(text))

    def subscribed(self) -> int:
        return sum(len(c.subscriptions) for c in list(self._clients))

    # -- the state machine (server loop) ----------------------------------------------

    async def _set_state(
        self, entity_id: str, state: str, attributes: dict[str, Any], at: float | None
    ) -> dict[str, Any]:
        # Home Assistant's times are datetimes (microseconds); `lu` is their .timestamp()
        now = datetime.fromtimestamp(time.time() if at is None else at, UTC).timestamp()
        old = self.states.get(entity_id)
        last_changed = now
        if old is not None and old["state"] == state:
            last_changed = parse_time(old["last_changed"]) or now
        new = {
            "entity_id": entity_id,
            "state": state,
            "attributes": attributes,
            "last_changed": iso(last_changed),
            "last_reported": iso(now),
            "last_updated": iso(now),
            "context": {"id": f"01HX{int(now * 1000):022d}", "parent_id": None, "user_id": None},
        }
        self.states[entity_id] = new
        self.history.setdefault(entity_id, []).append(_Row(state, attributes, now, last_changed))
        await self._fire(entity_id, old, new, now)
        return new

    async def _remove(self, entity_id: str) -> None:
        old = self.states.pop(entity_id, None)
        await self._fire(entity_id, old, None, time.time())

    async def _fire(
        self, entity_id: str, old: dict[str, Any] | None, new: dict[str, Any] | None, at: float
    ) -> None:
        event = {
            "event_type": "state_changed",
            "data": {"entity_id": entity_id, "old_state": old, "new_state": new},
            "origin": "LOCAL",
            "time_fired": iso(at),
            "context": (new or old or {}).get("context")
            or {"id": "01HX0", "parent_id": None, "user_id": None},
        }
        for client in list(self._clients):
            for sub_id, event_type in list(client.subscriptions.items()):
                if event_type in ("*", "state_changed"):
                    await self._send(client, {"id": sub_id, "type": "event", "event": event})

    async def _drop(self) -> None:
        for client in list(self._clients):
            await client.ws.close()

    async def _broadcast_raw(self, text: str) -> None:
        for client in list(self._clients):
            with contextlib.suppress(ConnectionClosed):
                await client.ws.send(text)

    # -- the WebSocket API (server loop) ----------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path != "/api/websocket":
            return connection.respond(HTTPStatus.NOT_FOUND, "404: Not Found\n")
        if self.refusing:
            self.refused += 1
            return Response(502, "Bad Gateway", Headers(), b"Home Assistant is not running\n")
        return None

    async def _send(self, client: _Client, message: dict[str, Any]) -> None:
        with contextlib.suppress(ConnectionClosed):
            await client.ws.send(orjson.dumps(message).decode())

    async def _handle(self, ws: ServerConnection) -> None:
        client = _Client(ws)
        try:
            await ws.send(
                orjson.dumps({"type": "auth_required", "ha_version": HA_VERSION}).decode()
            )
            if not await self._auth(client):
                return
            self._clients.append(client)
            self.connections += 1
            async for frame in ws:
                await self._command(client, frame)
        except ConnectionClosed:
            pass
        finally:
            if client in self._clients:
                self._clients.remove(client)

    async def _auth(self, client: _Client) -> bool:
        raw = await client.ws.recv()
        self.auth_attempts += 1
        try:
            msg = orjson.loads(raw)
        except orjson.JSONDecodeError:
            msg = None
        ok_shape = (
            isinstance(msg, dict)
            and msg.get("type") == "auth"
            and isinstance(msg.get("access_token"), str)
        )
        if not ok_shape:
            text = "Auth message incorrectly formatted: expected auth with access_token"
        elif msg["access_token"] == self.token:  # type: ignore[index]
            await client.ws.send(
                orjson.dumps({"type": "auth_ok", "ha_version": HA_VERSION}).decode()
            )
            return True
        else:
            text = "Invalid access token or password"
        await client.ws.send(orjson.dumps({"type": "auth_invalid", "message": text}).decode())
        await client.ws.close()
        return False

    async def _command(self, client: _Client, frame: str | bytes) -> None:
        try:
            msg = orjson.loads(frame)
        except orjson.JSONDecodeError:
            msg = None
        if (
            not isinstance(msg, dict)
            or type(msg.get("id")) is not int
            or not msg["id"]
            or not isinstance(msg.get("type"), str)
        ):
            iden = msg.get("id") if isinstance(msg, dict) else 0
            await self._error(client, iden, "invalid_format", "Message incorrectly formatted.")
            return
        iden = msg["id"]
        if iden <= client.last_id:
            await self._error(client, iden, "id_reuse", "Identifier values have to increase.")
            return
        client.last_id = iden
        self.commands.append(msg)
        handler = self._handlers().get(msg["type"])
        if handler is None:
            await self._error(client, iden, "unknown_command", "Unknown command.")
            return
        await handler(client, msg)

    def _handlers(self) -> dict[str, Callable[[_Client, dict[str, Any]], Any]]:
        return {
            "ping": self._ping,
            "subscribe_events": self._subscribe,
            "unsubscribe_events": self._unsubscribe,
            "get_states": self._get_states,
            "history/history_during_period": self._history,
            "recorder/list_statistic_ids": self._list_statistic_ids,
            "recorder/get_statistics_metadata": self._statistics_metadata,
            "recorder/statistics_during_period": self._statistics,
        }

    async def _result(self, client: _Client, iden: int, result: Any = None) -> None:
        await self._send(client, {"id": iden, "type": "result", "success": True, "result": result})

    async def _error(self, client: _Client, iden: Any, code: str, message: str) -> None:
        await self._send(
            client,
            {
                "id": iden,
                "type": "result",
                "success": False,
                "error": {"code": code, "message": message},
            },
        )

    async def _ping(self, client: _Client, msg: dict[str, Any]) -> None:
        if self.answer_pings:
            await self._send(client, {"id": msg["id"], "type": "pong"})

    async def _subscribe(self, client: _Client, msg: dict[str, Any]) -> None:
        client.subscriptions[msg["id"]] = str(msg.get("event_type", "*"))
        await self._result(client, msg["id"])

    async def _unsubscribe(self, client: _Client, msg: dict[str, Any]) -> None:
        if client.subscriptions.pop(msg.get("subscription", -1), None) is None:
            await self._error(client, msg["id"], "not_found", "Subscription not found.")
            return
        await self._result(client, msg["id"])

    async def _get_states(self, client: _Client, msg: dict[str, Any]) -> None:
        await self._result(client, msg["id"], list(self.states.values()))

    async def _history(self, client: _Client, msg: dict[str, Any]) -> None:
        iden = msg["id"]
        entity_ids = msg.get("entity_ids")
        if "start_time" not in msg or not isinstance(entity_ids, list):
            missing = "start_time" if "start_time" not in msg else "entity_ids"
            await self._error(
                client, iden, "invalid_format", f"required key not provided @ data['{missing}']"
            )
            return
        start = parse_time(msg["start_time"])
        if start is None:
            await self._error(client, iden, "invalid_start_time", "Invalid start_time")
            return
        end: float | None = None
        if msg.get("end_time"):
            end = parse_time(msg["end_time"])
            if end is None:
                await self._error(client, iden, "invalid_end_time", "Invalid end_time")
                return
        if start > time.time():
            await self._result(client, iden, {})
            return
        minimal = bool(msg.get("minimal_response", False))
        no_attributes = bool(msg.get("no_attributes", False))
        significant_only = bool(msg.get("significant_changes_only", True))
        start_state = bool(msg.get("include_start_time_state", True))
        result: dict[str, list[dict[str, Any]]] = {}
        for entity_id in entity_ids:
            rows = self._history_rows(
                entity_id, start, end, minimal, no_attributes, significant_only, start_state
            )
            if rows:
                result[entity_id] = rows
        await self._result(client, iden, result)

    def _history_rows(
        self,
        entity_id: str,
        start: float,
        end: float | None,
        minimal: bool,
        no_attributes: bool,
        significant_only: bool,
        start_state: bool,
    ) -> list[dict[str, Any]]:
        domain = entity_id.partition(".")[0]
        rows = self.history.get(entity_id, [])
        picked = [
            r for r in rows if r.last_updated > start and (end is None or r.last_updated < end)
        ]
        if significant_only and domain not in SIGNIFICANT_DOMAINS:
            picked = [r for r in picked if r.last_changed == r.last_updated]
        out: list[dict[str, Any]] = []
        keep_attributes = not no_attributes or domain in NEED_ATTRIBUTE_DOMAINS
        if start_state:
            before = [r for r in rows if r.last_updated < start]
            if before:
                attrs = before[-1].attributes if keep_attributes else None
                out.append(self._compressed(before[-1], attrs, start))
        full = not minimal or domain in NEED_ATTRIBUTE_DOMAINS
        prev: str | None = out[0]["s"] if out else None
        for row in picked:
            if full:  # every row as a state (no_attributes: an empty attribute set)
                out.append(self._compressed(row, row.attributes if keep_attributes else {}, None))
            elif not out:  # minimal: the first row is a whole state ...
                out.append(self._compressed(row, None if no_attributes else row.attributes, None))
            elif row.state != prev:  # ... then only changes of the state
                out.append({"s": row.state, "lu": row.last_updated})
            prev = row.state
        return out

    @staticmethod
    def _compressed(
        row: _Row, attributes: dict[str, Any] | None, start: float | None
    ) -> dict[str, Any]:
        comp: dict[str, Any] = {"s": row.state}
        if attributes is not None:
            comp["a"] = attributes
        comp["lu"] = start if start is not None else row.last_updated
        if start is None and row.last_changed != row.last_updated:
            comp["lc"] = row.last_changed
        return comp

    async def _list_statistic_ids(self, client: _Client, msg: dict[str, Any]) -> None:
        await self._result(client, msg["id"], list(self.statistics_meta.values()))

    async def _statistics_metadata(self, client: _Client, msg: dict[str, Any]) -> None:
        wanted = msg.get("statistic_ids")
        found = [m for s, m in self.statistics_meta.items() if not wanted or s in wanted]
        await self._result(client, msg["id"], found)

    async def _statistics(self, client: _Client, msg: dict[str, Any]) -> None:
        iden = msg["id"]
        ids = msg.get("statistic_ids")
        if "start_time" not in msg or not isinstance(ids, list) or not ids:
            await self._error(client, iden, "invalid_format", "required key not provided")
            return
        if msg.get("period") not in PERIODS:
            await self._error(client, iden, "invalid_format", "value must be one of periods")
            return
        start = parse_time(msg["start_time"])
        end = parse_time(msg["end_time"]) if msg.get("end_time") else None
        if start is None:
            await self._error(client, iden, "invalid_start_time", "Invalid start_time")
            return
        types = set(msg.get("types") or STAT_TYPES)
        result: dict[str, list[dict[str, Any]]] = {}
        for statistic_id in ids:
            meta = self.statistics_meta.get(statistic_id)
            if meta is None:
                continue
            rows = []
            for row in self.statistics.get(statistic_id, []):
                if row["start"] < start or (end is not None and row["start"] >= end):
                    continue
                out: dict[str, Any] = {
                    "start": int(row["start"] * 1000),
                    "end": int((row["start"] + 3600) * 1000),
                }
                columns = (
                    ("mean", "min", "max") if meta["has_mean"] else ("last_reset", "state", "sum")
                )
                for column in columns:
                    if column in types:
                        out[column] = row.get(column)
                if "change" in types and meta["has_sum"]:
                    out["change"] = row.get("change")
                rows.append(out)
            if rows:
                result[statistic_id] = rows
        await self._result(client, iden, result)
