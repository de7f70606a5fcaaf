"""ThingsBoard device telemetry: what a microcontroller posts with its device token.

The three shapes ThingsBoard accepts, for the device named by the token (`ctx.device`):

    {"temperature": 21.5, "humidity": 48}                       # at server time
    {"ts": 1714564800000, "values": {"temperature": 21.5}}      # ts in milliseconds
    [{"ts": ..., "values": {...}}, {"temperature": 21.7}, ...]  # a list of either

Numbers become points (booleans 1/0); strings are kept as text values (states);
nested objects and arrays are kept as their compact JSON text, as ThingsBoard keeps JSON
values. A key with an unusable value (null, too long a name) is skipped and reported,
the other keys are written. A body that is not JSON, or not one of these shapes, is
refused whole. The MQTT preset for `v1/devices/me/telemetry` uses `parse_document`.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from ...errors import BadRequest, FieldError, ValidationFailed
from ...model import DEVICE_TAG, Batch
from ..timestamps import TimestampError, epoch_to_us, format_us
from .base import BatchBuilder, ParseContext

MAX_KEY = 200
MAX_TEXT = 4096


def parse(body: bytes, ctx: ParseContext) -> Batch:
    device = ctx.device or ctx.params.get("device")
    if not device:
        raise BadRequest("ThingsBoard telemetry needs a device: post it with a device token")
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None
    builder = BatchBuilder(ctx.tenant_id)
    parse_document(doc, device, ctx.now_us, ctx.max_future_us, builder)
    return builder.build(allow_empty=True)


def parse_document(
    doc: Any, device: str, now_us: int, max_future_us: int, builder: BatchBuilder, loc: str = ""
) -> None:
    """Add one telemetry document of `device` to `builder` (shared with the MQTT preset)."""
    tags = ((DEVICE_TAG, device),)
    if isinstance(doc, list):
        if not doc:
            return
        for i, entry in enumerate(doc):
            _entry(entry, f"{loc}[{i}]", tags, now_us, max_future_us, builder)
    else:
        _entry(doc, loc, tags, now_us, max_future_us, builder)


def _entry(
    entry: Any,
    loc: str,
    tags: tuple[tuple[str, str], ...],
    now_us: int,
    max_future_us: int,
    b: BatchBuilder,
) -> None:
    if not isinstance(entry, dict):
        raise ValidationFailed(
            [FieldError(loc or "body", 'must be an object: {"key": value} or {"ts", "values"}')]
        )
    if "ts" in entry and "values" in entry and len(entry) == 2:
        values = entry["values"]
        ts = _timestamp(entry["ts"], f"{loc}.ts" if loc else "ts", now_us, max_future_us)
        if not isinstance(values, dict):
            raise ValidationFailed(
                [FieldError(f"{loc}.values" if loc else "values", "must be an object")]
            )
        _values(values, f"{loc}.values" if loc else "values", tags, ts, b)
    else:
        _values(entry, loc, tags, now_us, b)


def _timestamp(raw: Any, loc: str, now_us: int, max_future_us: int) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise ValidationFailed([FieldError(loc, "must be an integer: milliseconds since 1970")])
    try:
        ts = epoch_to_us(raw, "ms")
    except TimestampError as exc:
        raise ValidationFailed([FieldError(loc, str(exc))]) from None
    if ts > max_future_us:
        raise ValidationFailed(
            [
                FieldError(
                    loc,
                    f"{format_us(ts)} lies too far in the future (server time "
                    f"{format_us(now_us)}); check the device clock",
                )
            ]
        )
    return ts


def _values(
    values: dict[str, Any], loc: str, tags: tuple[tuple[str, str], ...], ts: int, b: BatchBuilder
) -> None:
    for key, value in values.items():
        name = key or '""'  # an empty key still gets a visible location
        kloc = f"{loc}.{name}" if loc else name
        if not 0 < len(key) <= MAX_KEY or any(ord(c) < 32 for c in key):
            b.drop(kloc, f"keys are 1-{MAX_KEY} printable characters")
            continue
        if isinstance(value, bool):
            b.add(b.series_id(key, tags, None), ts, 1.0 if value else 0.0)
        elif isinstance(value, int | float):
            number = float(value)
            if not math.isfinite(number):
                b.drop(kloc, "must be a finite number")
                continue
            b.add(b.series_id(key, tags, None), ts, number)
        elif isinstance(value, str):
            if len(value) > MAX_TEXT:
                b.drop(kloc, f"text values are at most {MAX_TEXT} characters")
                continue
            b.add_state(b.series_id(key, tags, None), ts, value)
        elif isinstance(value, dict | list):
            text = orjson.dumps(value).decode()
            if len(text) > MAX_TEXT:
                b.drop(kloc, f"JSON values are at most {MAX_TEXT} characters")
                continue
            b.add_state(b.series_id(key, tags, None), ts, text)
        else:
            b.drop(kloc, "null is not a value: leave the key out")
