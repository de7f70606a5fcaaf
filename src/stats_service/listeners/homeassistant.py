"""Follow a Home Assistant instance over its WebSocket API (docs/protocols/homeassistant.md).

One coordinator owns the connection loop: connect and authenticate, subscribe to
`state_changed`, write the current states (`get_states`), fill the gap since the last
event seen from the recorder's history (`history/history_during_period`), then ping
until the connection fails and reconnect with a jittered, capped exponential backoff. A
refused token stops the loop at once (Home Assistant bans addresses that keep failing),
logged once and shown by the connection-state gauge.

Events are grouped for `homeassistant_linger_ms` into one pipeline call whose body is the
raw event messages as received, so the archive replays them through the same parser.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections.abc import Iterator
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import structlog
from prometheus_client import Counter, Enum, Gauge

from ..errors import BadRequest, Overloaded, ServiceError, Unavailable
from ..ingest.timestamps import TimestampError, format_us, rfc3339_to_us
from .homeassistant_client import (
    Answer,
    AuthInvalid,
    HomeAssistantError,
    Session,
    websocket_url,
)

if TYPE_CHECKING:
    from ..services import Services

log = structlog.get_logger(__name__)

PROTOCOL = "homeassistant"
STATES = ("connecting", "connected", "disconnected", "auth_invalid", "stopped")
MAX_BUFFER = 50_000  # events waiting for a write; above this the oldest are dropped
FLUSH_EVENTS = 1_000  # a full group is written without waiting for the linger
BODY_EVENTS = 5_000  # events in one pipeline call at most
ROWS_PER_BODY = 20_000  # history rows per pipeline call (tenants accept 100k points)
ENTITIES_PER_REQUEST = 200
WRITE_ATTEMPTS = 5
CURSOR_SAVE_S = 2.0  # the cursor file is rewritten at most this often (and on stop)


def entity_filter(patterns: str) -> list[str]:
    """The comma-separated glob patterns of `homeassistant_entities` ([] = everything)."""
    return [p.strip() for p in patterns.split(",") if p.strip()]


def wanted(entity_id: str, patterns: list[str]) -> bool:
    return not patterns or any(fnmatchcase(entity_id, p) for p in patterns)


def history_command(start_us: int, end_us: int, entity_ids: list[str]) -> dict[str, Any]:
    """history/history_during_period as Home Assistant's history API defines it: every
    recorded change (not only "significant" ones), attributes on the first row of each
    entity (for its unit) and no synthetic row at the start time."""
    return {
        "type": "history/history_during_period",
        "start_time": format_us(start_us),
        "end_time": format_us(end_us),
        "entity_ids": entity_ids,
        "include_start_time_state": False,
        "significant_changes_only": False,
        "minimal_response": True,
        "no_attributes": False,
    }


def history_bodies(answer: Answer, rows_per_body: int = ROWS_PER_BODY) -> Iterator[bytes]:
    """A history result as pipeline bodies: the raw message when it is small, else the
    same result message split by entity (an entity's rows stay together when they fit)."""
    result = answer.result
    if not isinstance(result, dict) or not result:
        return
    if sum(len(rows) for rows in result.values() if isinstance(rows, list)) <= rows_per_body:
        yield answer.raw
        return
    part: dict[str, Any] = {}
    size = 0
    for entity_id, rows in result.items():
        if not isinstance(rows, list):
            continue
        for start in range(0, max(len(rows), 1), rows_per_body):
            chunk = rows[start : start + rows_per_body]
            if start and chunk and "a" not in chunk[0] and isinstance(rows[0], dict):
                # later parts keep the unit: the first row's attributes go with them
                chunk = [{**chunk[0], "a": rows[0].get("a", {})}, *chunk[1:]]
            if size + len(chunk) > rows_per_body and part:
                yield _result_message(answer, part)
                part, size = {}, 0
            part[entity_id] = part.get(entity_id, []) + chunk
            size += len(chunk)
    if part:
        yield _result_message(answer, part)


def _result_message(answer: Answer, result: dict[str, Any]) -> bytes:
    return orjson.dumps({**answer.message, "result": result})


class Cursor:
    """Up to when the states of one Home Assistant are durably written, kept in the data
    dir, so that after a restart the backfill starts where the last run stopped."""

    def __init__(self, path: Path, url: str) -> None:
        self.path = path
        self.url = url
        self.saved_at = 0.0

    def load(self) -> int | None:
        try:
            doc = orjson.loads(self.path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return None
        if not isinstance(doc, dict) or doc.get("url") != self.url:
            return None  # another instance: its time says nothing about this one
        until = doc.get("until_us")
        return until if isinstance(until, int) else None

    def save(self, until_us: int) -> None:
        doc = {"url": self.url, "until_us": until_us, "until": format_us(until_us)}
        tmp = self.path.with_suffix(".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(orjson.dumps(doc))
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("homeassistant_cursor_not_saved", path=str(self.path), error=str(exc))
        self.saved_at = time.monotonic()


class HomeAssistantListener:
    name = "homeassistant"

    def __init__(self, services: Services) -> None:
        settings = services.settings
        if settings.homeassistant_url is None:
            raise ValueError("homeassistant_url is not set")
        self._services = services
        self._url = settings.homeassistant_url
        websocket_url(self._url)  # a URL that cannot work fails the start-up, with the reason
        self._token = settings.homeassistant_token or ""
        self._tenant = settings.homeassistant_tenant
        self._patterns = entity_filter(settings.homeassistant_entities)
        self._linger = settings.homeassistant_linger_ms / 1000
        self._ping_s = settings.homeassistant_ping_s
        self._backoff_min = settings.homeassistant_reconnect_min_s
        self._backoff_max = max(settings.homeassistant_reconnect_max_s, self._backoff_min)
        self._backfill_max_us = int(settings.homeassistant_backfill_max_h * 3600 * 1_000_000)
        self._buffer: list[tuple[bytes, int | None]] = []  # raw event, its last_updated
        self._wake = asyncio.Event()
        self._closing = False
        self._stopping = asyncio.Event()
        self._run_task: asyncio.Task[None] | None = None
        self._flush_task: asyncio.Task[None] | None = None
        self._entities: set[str] = set()
        self._cursor = Cursor(settings.data_dir / "homeassistant.cursor.json", self._url)
        # newest last_updated received (HA's clock); after a restart, the saved cursor
        self._seen_until_us: int | None = self._cursor.load()
        self._durable_until_us: int | None = None  # newest time whose states are written
        self._write_failed = False  # events were lost since the last synchronisation
        self._connected_once = False
        registry = services.metrics.registry
        self.events = Counter(
            "stats_homeassistant_events",
            "state_changed events by outcome: written, removed (new_state null), filtered "
            "(not in homeassistant_entities), dropped (unreadable, skipped by the parser), "
            "invalid (not a Home Assistant message), failed (the write was refused).",
            ["outcome"],
            registry=registry,
        )
        self.state = Enum(
            "stats_homeassistant_connection_state",
            "State of the connection to Home Assistant.",
            states=list(STATES),
            registry=registry,
        )
        self.reconnects = Counter(
            "stats_homeassistant_reconnects", "Reconnections to Home Assistant.", registry=registry
        )
        self.backfilled = Counter(
            "stats_homeassistant_backfilled_points",
            "Points written from Home Assistant's history to fill a disconnection gap.",
            registry=registry,
        )
        self.pending = Gauge(
            "stats_homeassistant_pending_events",
            "Events received and waiting for their write.",
            registry=registry,
        )
        self.state.state("disconnected")

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        self._principal()  # an unknown tenant fails the start-up, with its name
        if not self._token:
            log.error(
                "homeassistant_no_token",
                url=self._url,
                hint="set STATS_HOMEASSISTANT_TOKEN to a long-lived access token",
            )
            self.state.state("auth_invalid")
            return
        self._flush_task = asyncio.create_task(self._flusher(), name="homeassistant-flush")
        self._run_task = asyncio.create_task(self._run(), name="homeassistant")

    async def stop(self) -> None:
        if self._run_task is not None:
            self._run_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._run_task
        self._closing = True
        self._stopping.set()
        self._wake.set()
        if self._flush_task is not None:
            await self._flush_task  # writes what is buffered, then ends
        if self._durable_until_us is not None:
            self._cursor.save(self._durable_until_us)
        self.state.state("stopped")

    # -- the connection loop -----------------------------------------------------------

    async def _run(self) -> None:
        attempt = 0
        while True:
            self.state.state("connecting")
            try:
                session = await Session.open(
                    self._url, self._token, on_event=self._on_event, on_invalid=self._on_invalid
                )
            except AuthInvalid as exc:
                log.error(
                    "homeassistant_auth_invalid",
                    url=self._url,
                    message=str(exc),
                    hint="create a new long-lived access token in your Home Assistant profile "
                    "and set STATS_HOMEASSISTANT_TOKEN; not retrying until restarted",
                )
                self.state.state("auth_invalid")
                return
            except HomeAssistantError as exc:
                attempt += 1
                await self._backoff(attempt, str(exc))
                continue
            try:
                if self._connected_once:
                    self.reconnects.inc()
                self._connected_once = True
                self.state.state("connected")
                log.info("homeassistant_connected", url=self._url, ha_version=session.ha_version)
                await self._synchronise(session)
                attempt = 0
                reason = await self._heartbeat(session)
            except HomeAssistantError as exc:
                reason = str(exc)
            except Exception as exc:  # a bug must not end the listener for good
                log.exception("homeassistant_listener_error", url=self._url)
                reason = repr(exc)
            finally:
                await session.close()
            self.state.state("disconnected")
            attempt += 1
            await self._backoff(attempt, reason)

    async def _backoff(self, attempt: int, reason: str) -> None:
        self.state.state("disconnected")
        delay = min(self._backoff_max, self._backoff_min * 2 ** min(attempt - 1, 30))
        delay *= random.uniform(0.5, 1.0)
        log.warning("homeassistant_disconnected", url=self._url, reason=reason, retry_in_s=delay)
        await asyncio.sleep(delay)

    async def _synchronise(self, session: Session) -> None:
        """Subscribe first, then read the current states and the history of the gap, so
        that no change falls between the two (an overlap rewrites the same values)."""
        gap_from = self._seen_until_us
        if self._write_failed and self._durable_until_us is not None:
            gap_from = min(gap_from or self._durable_until_us, self._durable_until_us)
        await session.command({"type": "subscribe_events", "event_type": "state_changed"})
        now_us = time.time_ns() // 1000
        answer = await session.command({"type": "get_states"})
        states = answer.result if isinstance(answer.result, list) else []
        self._entities.update(
            s["entity_id"]
            for s in states
            if isinstance(s, dict)
            and isinstance(s.get("entity_id"), str)
            and wanted(s["entity_id"], self._patterns)
        )
        body = answer.raw
        if self._patterns:
            known = self._entities
            kept = [s for s in states if isinstance(s, dict) and s.get("entity_id") in known]
            body = orjson.dumps({**answer.message, "result": kept})
        complete = not states or await self._write(body, events=0) is not None
        if gap_from is not None and self._backfill_max_us > 0 and self._entities:
            start_us = max(gap_from - 1_000_000, now_us - self._backfill_max_us)
            complete = await self._backfill(session, start_us, now_us) and complete
        # covered up to the subscription: the next gap starts at the latest event or here
        self._seen_until_us = max(self._seen_until_us or now_us, now_us)
        if complete:
            self._write_failed = False
            self._advance(now_us, force=True)

    async def _backfill(self, session: Session, start_us: int, end_us: int) -> bool:
        """Write the recorded changes of [start, end); False when a write failed."""
        entities = sorted(self._entities)
        points = 0
        complete = True
        for i in range(0, len(entities), ENTITIES_PER_REQUEST):
            answer = await session.command(
                history_command(start_us, end_us, entities[i : i + ENTITIES_PER_REQUEST])
            )
            for body in history_bodies(answer):
                written = await self._write(body, events=0)
                complete = complete and written is not None
                points += written or 0
        self.backfilled.inc(points)
        log.info(
            "homeassistant_backfilled",
            start=format_us(start_us),
            end=format_us(end_us),
            entities=len(entities),
            points=points,
        )
        return complete

    async def _heartbeat(self, session: Session) -> str:
        """Ping every `homeassistant_ping_s`; returns why the connection ended."""
        while True:
            closed = asyncio.ensure_future(session.wait_closed())
            try:
                await asyncio.wait_for(asyncio.shield(closed), self._ping_s)
                return "the connection closed"
            except TimeoutError:
                pass
            finally:
                closed.cancel()
            if not await session.ping(self._ping_s):
                return f"no pong within {self._ping_s:g} s"

    # -- events ------------------------------------------------------------------------

    def _on_invalid(self, reason: str) -> None:
        self.events.labels("invalid").inc()
        log.info("homeassistant_invalid_message", reason=reason)

    def _on_event(self, raw: bytes, message: dict[str, Any]) -> None:
        event = message.get("event")
        data = event.get("data") if isinstance(event, dict) else None
        if (
            not isinstance(event, dict)
            or event.get("event_type") != "state_changed"
            or (not isinstance(data, dict))
        ):
            self._buffer_event(raw)  # still written: the parser says what is wrong with it
            return
        entity_id = data.get("entity_id")
        if isinstance(entity_id, str) and not wanted(entity_id, self._patterns):
            self.events.labels("filtered").inc()
            return
        new_state = data.get("new_state")
        if new_state is None:
            self.events.labels("removed").inc()
            if isinstance(entity_id, str):
                self._entities.discard(entity_id)
            return
        if isinstance(entity_id, str):
            self._entities.add(entity_id)
        ts = None
        if isinstance(new_state, dict) and isinstance(stamp := new_state.get("last_updated"), str):
            with contextlib.suppress(TimestampError):
                ts = rfc3339_to_us(stamp)
                if self._seen_until_us is None or ts > self._seen_until_us:
                    self._seen_until_us = ts
        self._buffer_event(raw, ts)

    def _buffer_event(self, raw: bytes, ts: int | None = None) -> None:
        if len(self._buffer) >= MAX_BUFFER:
            self._buffer.pop(0)
            self.events.labels("failed").inc()
        self._buffer.append((raw, ts))
        self.pending.set(len(self._buffer))
        self._wake.set()

    async def _flusher(self) -> None:
        while True:
            await self._wake.wait()
            if not self._closing and len(self._buffer) < FLUSH_EVENTS and self._linger > 0:
                with contextlib.suppress(TimeoutError):  # a stop cuts the linger short
                    await asyncio.wait_for(self._stopping.wait(), self._linger)
            self._wake.clear()
            taken, self._buffer = self._buffer[:BODY_EVENTS], self._buffer[BODY_EVENTS:]
            if self._buffer:
                self._wake.set()  # the rest goes at once, in the next round
            if taken:
                body = b"[" + b",".join(raw for raw, _ in taken) + b"]"
                written = await self._write(body, events=len(taken))
                self.pending.set(len(self._buffer))
                stamps = [ts for _, ts in taken if ts is not None]
                if written is None:
                    # lost events: the cursor stays before them, so that the next
                    # reconnection or restart backfills them from the history
                    self._write_failed = True
                elif stamps and not self._write_failed:
                    self._advance(max(stamps))
            if self._closing and not self._buffer:
                return

    # -- writing -----------------------------------------------------------------------

    def _advance(self, until_us: int, *, force: bool = False) -> None:
        """Everything up to `until_us` is written: move the cursor (saved now and then)."""
        if self._durable_until_us is not None and until_us <= self._durable_until_us:
            return
        self._durable_until_us = until_us
        if force or time.monotonic() - self._cursor.saved_at >= CURSOR_SAVE_S:
            self._cursor.save(until_us)

    def _principal(self) -> Any:
        return self._services.auth.principal_for(self._tenant)

    async def _write(self, body: bytes, *, events: int) -> int | None:
        """One pipeline call, retried while the writer is busy. Returns the points written,
        None when the body could not be written (it may be again: a backfill can)."""
        for attempt in range(WRITE_ATTEMPTS):
            try:
                result = await self._services.pipeline.ingest(
                    self._principal(), PROTOCOL, body, params={}
                )
            except (Overloaded, Unavailable) as exc:
                if attempt + 1 == WRITE_ATTEMPTS:
                    self._failed(events, exc)
                    return None
                await asyncio.sleep(min(exc.retry_after or 1.0, 5.0))
                continue
            except BadRequest as exc:  # nothing readable in it: writing again cannot help
                self.events.labels("dropped").inc(events)
                log.warning("homeassistant_body_refused", error=exc.detail[:300])
                return 0
            except ServiceError as exc:
                self._failed(events, exc)
                return None
            if events:
                dropped = min(result.dropped_count, events)
                self.events.labels("dropped").inc(dropped)
                self.events.labels("written").inc(events - dropped)
            return result.points
        return None

    def _failed(self, events: int, exc: ServiceError) -> None:
        if events:
            self.events.labels("failed").inc(events)
            log.warning("homeassistant_write_failed", events=events, error=exc.detail[:300])
