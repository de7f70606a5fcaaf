"""The native JSON contract (`POST /v1/ingest`), see docs/contracts/ingest-v1.md.

One object or a list of them, each either a single reading

    {"device": "esp32-kitchen", "ts": "...", "tags": {...}, "metrics": {"temperature": 21.5}}

or a buffered batch

    {"device": "esp32-kitchen", "points": [{"ts": ..., "values": {"temperature": 21.5}}]}

A metric value is a number or `{"value": <number>, "unit": "°C"}`; `units` maps metric
names to units for the whole object. Every error is collected with its location before
the request is refused, so a client sees all its mistakes at once.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

from ...errors import BadRequest
from ...model import DEVICE_TAG, Batch
from ..timestamps import MIN_US, TimestampError, format_us, parse_timestamp
from .base import BatchBuilder, ParseContext

DEVICE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")
TAG_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$")
MAX_NAME = 200
MAX_TAG_VALUE = 256
MAX_TAGS = 32
OBJECT_KEYS = frozenset({"device", "ts", "tags", "metrics", "points", "units", "schema"})
POINT_KEYS = frozenset({"ts", "values", "tags"})
DEVICE_MSG = (
    "must be 1-128 characters: letters, digits and . _ : @ - (starting with a letter or digit)"
)


class _NonFinite:
    """Stands for a NaN or Infinity literal, so that its location can be reported."""

    __slots__ = ()


def _loads(body: bytes) -> tuple[Any, bool]:
    """The document, and whether it holds NaN/Infinity literals (which JSON has not, but
    Python's `json.dumps` writes by default): those are refused where they stand."""
    try:
        return orjson.loads(body), False
    except orjson.JSONDecodeError as exc:
        error = exc
    seen: list[str] = []

    def constant(name: str) -> _NonFinite:
        seen.append(name)
        return _NonFinite()

    try:
        doc = json.loads(body, parse_constant=constant)
        orjson.dumps(doc, default=lambda _: None)  # orjson's limits: UTF-8, 64-bit integers
    except (ValueError, TypeError, RecursionError):
        seen.clear()
    if not seen:
        raise BadRequest(f"body is not valid JSON: {error}") from None
    return doc, True


def parse(body: bytes, ctx: ParseContext) -> Batch:
    doc, non_finite = _loads(body)
    builder = BatchBuilder(ctx.tenant_id)
    if non_finite:
        builder.error("body", "NaN and Infinity are not JSON numbers: send finite numbers")
    if isinstance(doc, list):
        if not doc:
            builder.error("body", "the batch holds no points (empty list)")
        for i, obj in enumerate(doc):
            _parse_object(obj, f"[{i}]", builder, ctx)
    else:
        _parse_object(doc, "", builder, ctx)
    return builder.build()


def _join(prefix: str, name: str) -> str:
    name = name or '""'  # an empty key still gets a visible location
    return f"{prefix}.{name}" if prefix else name


def _parse_object(obj: Any, loc: str, b: BatchBuilder, ctx: ParseContext) -> None:
    if not isinstance(obj, dict):
        b.error(loc or "body", "must be an object with `device` and `metrics` or `points`")
        return
    for key in obj.keys() - OBJECT_KEYS:
        b.error(_join(loc, key), f"unknown field; allowed: {', '.join(sorted(OBJECT_KEYS))}")
    device = obj.get("device")
    if device is None:
        b.error(_join(loc, "device"), "is required")
    elif not isinstance(device, str) or not DEVICE_RE.fullmatch(device):
        b.error(_join(loc, "device"), DEVICE_MSG)
        device = None
    tags = _parse_tags(obj.get("tags"), _join(loc, "tags"), b)
    units = _parse_units(obj.get("units"), _join(loc, "units"), b)
    if device is not None and tags is not None:
        tags[DEVICE_TAG] = device
    has_metrics, has_points = "metrics" in obj, "points" in obj
    if has_metrics == has_points:
        b.error(loc or "body", "needs exactly one of `metrics` (one reading) or `points` (a batch)")
        return
    if has_metrics:
        at = _timestamp(obj.get("ts"), _join(loc, "ts"), b, ctx)
        _parse_values(obj["metrics"], _join(loc, "metrics"), None, at, _tag_tuple(tags), units, b)
        return
    if "ts" in obj:
        b.error(_join(loc, "ts"), "not allowed beside `points`; give each point its `ts`")
    points = obj["points"]
    if not isinstance(points, list) or not points:
        b.error(_join(loc, "points"), "must be a non-empty list of {ts, values}")
        return
    base = _join(loc, "points")
    tag_tuple = _tag_tuple(tags)
    fast_ts = _fast_epoch(ctx)
    for j, point in enumerate(points):
        if type(point) is not dict or not point.keys() <= POINT_KEYS or "values" not in point:
            _point_errors(point, f"{base}[{j}]", b)
            if type(point) is not dict:
                continue  # a dict goes on, so that its other errors are reported too
        ptags = tag_tuple
        if "tags" in point:
            extra = _parse_tags(point["tags"], f"{base}[{j}].tags", b)
            ptags = None if tags is None or extra is None else _tag_tuple({**tags, **extra})
        raw_ts = point.get("ts")
        if fast_ts is not None and type(raw_ts) is int and fast_ts[1] <= raw_ts <= fast_ts[2]:
            ts: int | None = raw_ts * fast_ts[0]
        else:
            ts = _timestamp(raw_ts, f"{base}[{j}].ts", b, ctx)
        if "values" in point:
            _parse_values(point["values"], base, j, ts, ptags, units, b)


def _point_errors(point: Any, ploc: str, b: BatchBuilder) -> None:
    if not isinstance(point, dict):
        b.error(ploc, "must be an object with `values` and an optional `ts`")
        return
    for key in point.keys() - POINT_KEYS:
        b.error(f"{ploc}.{key}", "unknown field; allowed: tags, ts, values")
    if "values" not in point:
        b.error(f"{ploc}.values", "is required")


def _tag_tuple(tags: dict[str, str] | None) -> tuple[tuple[str, str], ...] | None:
    return tuple(sorted(tags.items())) if tags is not None else None


def _fast_epoch(ctx: ParseContext) -> tuple[int, int, int] | None:
    """(multiplier, lowest, highest) for integer timestamps in an explicit s/ms/us
    precision that need no further checks; None when every value takes the slow path."""
    multiplier = {"s": 1_000_000, "ms": 1_000, "us": 1}.get(ctx.precision or "")
    if multiplier is None:
        return None
    return multiplier, -(-MIN_US // multiplier), ctx.max_future_us // multiplier


def _parse_tags(raw: Any, loc: str, b: BatchBuilder) -> dict[str, str] | None:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        b.error(loc, "must be an object of string values")
        return None
    if len(raw) > MAX_TAGS:
        b.error(loc, f"at most {MAX_TAGS} tags")
        return None
    ok = True
    for key, value in raw.items():
        if key == DEVICE_TAG:
            b.error(f"{loc}.{key}", "is reserved; use the top-level `device` field")
            ok = False
        elif not TAG_KEY_RE.fullmatch(key):
            b.error(f"{loc}.{key}", "tag names are 1-64 letters, digits, _ . : - ")
            ok = False
        elif not isinstance(value, str) or not 0 < len(value) <= MAX_TAG_VALUE:
            b.error(f"{loc}.{key}", f"must be a non-empty string of at most {MAX_TAG_VALUE}")
            ok = False
    return dict(raw) if ok else None


def _parse_units(raw: Any, loc: str, b: BatchBuilder) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(
        isinstance(v, str) and 0 < len(v) <= 32 for v in raw.values()
    ):
        b.error(loc, "must map metric names to unit strings of 1-32 characters")
        return {}
    return dict(raw)


def _timestamp(raw: Any, loc: str, b: BatchBuilder, ctx: ParseContext) -> int | None:
    return ctx.now_us if raw is None else device_timestamp(raw, loc, b, ctx)


def device_timestamp(raw: Any, loc: str, b: BatchBuilder, ctx: ParseContext) -> int | None:
    """A device's timestamp (RFC 3339 or epoch in `ctx.precision`) in UTC microseconds, or
    None with the error recorded at `loc` (unparseable, or too far in the future)."""
    try:
        ts = parse_timestamp(raw, ctx.precision)
    except TimestampError as exc:
        b.error(loc, str(exc))
        return None
    if ts > ctx.max_future_us:
        b.error(
            loc,
            f"{format_us(ts)} lies too far in the future (server time {format_us(ctx.now_us)}); "
            "check the device clock",
        )
        return None
    return ts


def _parse_values(
    raw: Any,
    base: str,
    index: int | None,
    ts: int | None,
    tags: tuple[tuple[str, str], ...] | None,
    units: dict[str, str],
    b: BatchBuilder,
) -> None:
    """Add the values of one reading. `base[index].values` (or `base`) locates errors."""
    if type(raw) is not dict or not raw:
        b.error(_values_loc(base, index), "must be a non-empty object of metric name -> number")
        return
    # with a bad timestamp or tags (already recorded) the values are still checked
    ids = None if ts is None or tags is None else b.ids_for(tags)
    sids, tss, values = b.sids, b.ts, b.values
    for name, value in raw.items():
        kind = type(value)
        if ids is not None and ts is not None and (kind is float or kind is int):
            sid = ids.get(name)
            if sid is not None:
                sids.append(sid)
                tss.append(ts)
                values.append(value)
                continue
        _slow_value(name, value, base, index, ts, tags, units, b)


def _values_loc(base: str, index: int | None) -> str:
    return base if index is None else f"{base}[{index}].values"


def _slow_value(
    name: str,
    value: Any,
    base: str,
    index: int | None,
    ts: int | None,
    tags: tuple[tuple[str, str], ...] | None,
    units: dict[str, str],
    b: BatchBuilder,
) -> None:
    """First sight of a metric in this request, a value with a unit, or an error."""
    vloc = _join(_values_loc(base, index), name)
    unit = units.get(name)
    if isinstance(value, dict):
        unit = value.get("unit", unit)
        if set(value) - {"value", "unit"} or (
            unit is not None and not (isinstance(unit, str) and 0 < len(unit) <= 32)
        ):
            b.error(vloc, 'must be a number or {"value": number, "unit": string}')
            return
        value = value.get("value")
    if not 0 < len(name) <= MAX_NAME or any(ord(c) < 32 for c in name):
        b.error(vloc, f"metric names are 1-{MAX_NAME} printable characters")
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        b.error(vloc, "must be a finite number")
        return
    number = float(value)
    if not math.isfinite(number):
        b.error(vloc, "must be a finite number")
        return
    if ts is None or tags is None:
        return
    b.add(b.series_id(name, tags, unit), ts, number)
