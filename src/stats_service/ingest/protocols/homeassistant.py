"""Home Assistant states, events, history and statistics (docs/protocols/homeassistant.md).

The body is what Home Assistant itself sends, so that a replay from the raw archive
re-parses exactly what arrived: one JSON value, or a list of them, each one of

- a WebSocket `event` message of a `state_changed` event (as `subscribe_events` sends);
- a WebSocket `result` message of `get_states` (state objects),
  `history/history_during_period` ({entity_id: [compressed states]}),
  `recorder/statistics_during_period` ({statistic_id: [rows]}) or
  `recorder/list_statistic_ids` / `recorder/get_statistics_metadata` (the statistics' units);
- a bare `state_changed` event ({"event_type": "state_changed", "data": {...}});
- a bare state object ({"entity_id", "state", "attributes", "last_updated", ...}), as the
  REST API's /api/states answers or a `rest_command` template posts it.

Mapping: the device is the entity id (or the statistic id), the metric is `state`. A
state that reads as a decimal number is a point (unit from `unit_of_measurement`), any
other state (`on`, `heat`, `unknown`, `unavailable` ...) a text value. Climate, water
heater and humidifier entities also give their numeric target/current attributes (the
domains whose attributes Home Assistant's own history keeps). Statistics rows give
`state.<column>` (`state.mean`, `state.min`, `state.max`, `state.sum`, `state.state`,
`state.change`) at the start of their period. Times are `last_updated` (`lu`) in UTC.

The format is lenient: an item that cannot be read is skipped and reported, the rest is
written. An event whose `new_state` is null (the entity was removed) writes nothing.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from ...errors import BadRequest
from ...model import DEVICE_TAG, Batch
from ..timestamps import TimestampError, epoch_to_us, format_us, parse_timestamp
from .base import BatchBuilder, ParseContext
from .json_v1 import DEVICE_RE

STATE_METRIC = "state"
STATISTIC_COLUMNS = ("mean", "min", "max", "sum", "state", "change")
# the numeric attributes kept as their own metrics, by entity domain: those of the
# domains whose attributes Home Assistant's history always records (NEED_ATTRIBUTE_DOMAINS)
ATTRIBUTE_METRICS: dict[str, tuple[str, ...]] = {
    "climate": (
        "current_temperature",
        "temperature",
        "target_temp_high",
        "target_temp_low",
        "current_humidity",
        "humidity",
    ),
    "water_heater": ("current_temperature", "temperature", "target_temp_high", "target_temp_low"),
    "humidifier": ("current_humidity", "humidity"),
}
NUMBER_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
MAX_UNIT = 32
MAX_TEXT = 1024


@dataclass(slots=True)
class _Reader:
    """One body being read: the builder, the context and what earlier items taught."""

    b: BatchBuilder
    ctx: ParseContext
    stat_units: dict[str, str] = field(default_factory=dict)


def parse(body: bytes, ctx: ParseContext) -> Batch:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None
    reader = _Reader(BatchBuilder(ctx.tenant_id), ctx)
    items: list[tuple[str, Any]]
    if isinstance(doc, list):
        items = [(f"[{i}]", item) for i, item in enumerate(doc)]
    elif isinstance(doc, dict):
        items = [("body", doc)]
    else:
        raise BadRequest(
            "the body must be a Home Assistant message, event or state object, or a list of them"
        )
    for loc, item in items:  # the units of statistics first, wherever they stand
        _collect_units(item, loc, reader)
    for loc, item in items:
        _item(item, loc, reader)
    return reader.b.build(allow_empty=True)


def _collect_units(item: Any, loc: str, r: _Reader) -> None:
    if isinstance(item, dict) and item.get("type") == "result":
        item = item.get("result")
    if not isinstance(item, list):
        return
    for meta in item:
        if isinstance(meta, dict) and isinstance(sid := meta.get("statistic_id"), str):
            unit = meta.get("statistics_unit_of_measurement")
            if isinstance(unit, str) and 0 < len(unit) <= MAX_UNIT:
                r.stat_units[sid] = unit


def _item(item: Any, loc: str, r: _Reader) -> None:
    if not isinstance(item, dict):
        r.b.drop(loc, "must be an object: a Home Assistant message, event or state object")
        return
    kind = item.get("type")
    if kind == "event" and isinstance(item.get("event"), dict):
        _event(item["event"], f"{loc}.event", r)
    elif kind == "result":
        _result(item, loc, r)
    elif "event_type" in item:
        _event(item, loc, r)
    elif "entity_id" in item:
        _state_object(item, loc, r)
    elif kind in ("pong", "auth_required", "auth_ok"):
        return  # transport chatter, nothing to store
    else:
        r.b.drop(loc, "not a state_changed event, a result message or a state object")


def _event(event: dict[str, Any], loc: str, r: _Reader) -> None:
    if isinstance(event.get("states"), dict):  # a history/stream message
        _history(event["states"], f"{loc}.states", r)
        return
    if event.get("event_type") != "state_changed":
        kind = event.get("event_type")
        r.b.drop(f"{loc}.event_type", f"only state_changed events are read, not {kind!r}")
        return
    data = event.get("data")
    if not isinstance(data, dict):
        r.b.drop(f"{loc}.data", "must be an object with entity_id, old_state and new_state")
        return
    new_state = data.get("new_state")
    if new_state is None:
        return  # the entity was removed: nothing to write (the listener counts these)
    if not isinstance(new_state, dict):
        r.b.drop(f"{loc}.data.new_state", "must be a state object or null")
        return
    _state_object(new_state, f"{loc}.data.new_state", r)


def _result(message: dict[str, Any], loc: str, r: _Reader) -> None:
    if message.get("success") is False:
        error = message.get("error")
        text = error.get("message") if isinstance(error, dict) else None
        r.b.drop(loc, f"Home Assistant answered with an error: {text or error!r}")
        return
    result = message.get("result")
    if result is None:
        return
    rloc = f"{loc}.result"
    if isinstance(result, list):
        for i, state in enumerate(result):
            if isinstance(state, dict) and "statistic_id" in state:
                continue  # statistics metadata: read by _collect_units
            if not isinstance(state, dict):
                r.b.drop(f"{rloc}[{i}]", "must be a state object")
                continue
            _state_object(state, f"{rloc}[{i}]", r)
        return
    if not isinstance(result, dict):
        r.b.drop(rloc, "must be a list of state objects or an object of rows per entity")
        return
    _history(result, rloc, r)


def _history(result: dict[str, Any], loc: str, r: _Reader) -> None:
    """{id: [rows]}: compressed states (`s`, `a`, `lu`, `lc`) or statistics rows."""
    for entity_id, rows in result.items():
        eloc = f"{loc}.{entity_id}"
        if not isinstance(rows, list):
            r.b.drop(eloc, "must be a list of rows")
            continue
        device = _device(entity_id, eloc, r)
        if device is None:
            continue
        unit = r.stat_units.get(entity_id)
        for j, row in enumerate(rows):
            rloc = f"{eloc}[{j}]"
            if not isinstance(row, dict):
                r.b.drop(rloc, "must be an object")
            elif "start" in row:
                _statistics_row(row, device, unit, rloc, r)
            elif "s" in row:
                attributes = row.get("a")
                if isinstance(attributes, dict):
                    unit = _unit(attributes) or unit
                stamp = row.get("lu", row.get("lc"))
                ts = _epoch_seconds(stamp, f"{rloc}.lu", r)
                if ts is not None:
                    _write_state(row["s"], attributes, device, unit, ts, f"{rloc}.s", r)
            else:
                r.b.drop(rloc, "neither a compressed state (s, lu) nor a statistics row (start)")


def _state_object(state: dict[str, Any], loc: str, r: _Reader) -> None:
    device = _device(state.get("entity_id"), f"{loc}.entity_id", r)
    if device is None:
        return
    attributes = state.get("attributes")
    if attributes is not None and not isinstance(attributes, dict):
        r.b.drop(f"{loc}.attributes", "must be an object")
        return
    stamp_key = "last_updated" if "last_updated" in state else "last_changed"
    stamp = state.get(stamp_key)
    if not isinstance(stamp, str):
        r.b.drop(f"{loc}.last_updated", "is required: an ISO 8601 time with its UTC offset")
        return
    ts = _checked(stamp, f"{loc}.{stamp_key}", r, None)
    if ts is None:
        return
    unit = _unit(attributes) if attributes else None
    _write_state(state.get("state"), attributes, device, unit, ts, f"{loc}.state", r)


def _write_state(
    value: Any,
    attributes: dict[str, Any] | None,
    device: str,
    unit: str | None,
    ts: int,
    loc: str,
    r: _Reader,
) -> None:
    tags = ((DEVICE_TAG, device),)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        r.b.drop(loc, "must be a string (Home Assistant states are text)")
        return
    number = _number(value)
    if number is not None:
        r.b.add(r.b.series_id(STATE_METRIC, tags, unit), ts, number)
    elif isinstance(value, str) and len(value) <= MAX_TEXT:
        r.b.add_state(r.b.series_id(STATE_METRIC, tags, None), ts, value)
    else:
        r.b.drop(loc, f"must be a number or a text of at most {MAX_TEXT} characters")
        return
    names = ATTRIBUTE_METRICS.get(device.partition(".")[0]) if attributes else None
    if names and attributes:
        for name in names:
            raw = attributes.get(name)
            if isinstance(raw, int | float) and not isinstance(raw, bool) and math.isfinite(raw):
                r.b.add(r.b.series_id(name, tags, None), ts, float(raw))


def _statistics_row(
    row: dict[str, Any], device: str, unit: str | None, loc: str, r: _Reader
) -> None:
    ts = _checked(row["start"], f"{loc}.start", r, None)
    if ts is None:
        return
    tags = ((DEVICE_TAG, device),)
    for column in STATISTIC_COLUMNS:
        raw = row.get(column)
        if raw is None:
            continue
        if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
            r.b.drop(f"{loc}.{column}", "must be a finite number or null")
            continue
        r.b.add(r.b.series_id(f"state.{column}", tags, unit), ts, float(raw))


def _device(entity_id: Any, loc: str, r: _Reader) -> str | None:
    if not isinstance(entity_id, str) or not DEVICE_RE.fullmatch(entity_id):
        r.b.drop(loc, "must be an entity id such as sensor.living_room_temperature")
        return None
    return entity_id


def _unit(attributes: dict[str, Any]) -> str | None:
    unit = attributes.get("unit_of_measurement")
    if isinstance(unit, str) and 0 < len(unit) <= MAX_UNIT:
        return unit
    return None


def _number(value: str | int | float) -> float | None:
    """The state as a number when it is one: a decimal literal, never nan/inf/on/off."""
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    text = value.strip()
    if not NUMBER_RE.fullmatch(text):
        return None
    number = float(text)
    return number if math.isfinite(number) else None


def _epoch_seconds(stamp: Any, loc: str, r: _Reader) -> int | None:
    if isinstance(stamp, bool) or not isinstance(stamp, int | float):
        r.b.drop(loc, "must be epoch seconds (lu or lc)")
        return None
    return _checked(stamp, loc, r, "s")


def _checked(stamp: Any, loc: str, r: _Reader, precision: str | None) -> int | None:
    try:
        if isinstance(stamp, int | float) and not isinstance(stamp, bool):
            ts = epoch_to_us(stamp, precision)
        else:
            ts = parse_timestamp(stamp, None)
    except TimestampError as exc:
        r.b.drop(loc, str(exc))
        return None
    if ts > r.ctx.max_future_us:
        r.b.drop(
            loc,
            f"{format_us(ts)} lies too far in the future (server time "
            f"{format_us(r.ctx.now_us)}); check the Home Assistant clock",
        )
        return None
    return ts
