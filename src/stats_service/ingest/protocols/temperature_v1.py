"""The temperature device contract (`POST /v1/contracts/temperature`), see
docs/contracts/temperature-v1.md.

One reading of an ESP32 / RPi Pico board

    {"schema": "temperature/v1", "device": "esp32-kitchen", "ts": "...",
     "temperature": 21.5, "humidity": 48.2, "battery": 3.92, "rssi": -67, "firmware": "1.4.2"}

or the readings a board buffered while offline

    {"schema": "temperature/v1", "device": "pico-shed", "firmware": "0.9.0",
     "readings": [{"ts": ..., "temperature": 7.5}, {"ts": ..., "temperature": 7.25}]}

Each measurement becomes a series of the device, named after its field, with its unit
(°C, %, hPa, V, dBm); the firmware version is a text value (a state) of the series
`firmware`, written at the time of the newest reading. The request is validated whole;
every error is reported with its location (`body.readings[2].humidity`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ...model import DEVICE_TAG, Batch
from . import contract_version
from .base import BatchBuilder, ParseContext
from .json_v1 import DEVICE_MSG, DEVICE_RE, _fast_epoch, _loads, device_timestamp

Tags = tuple[tuple[str, str], ...]

FAMILY = "temperature"
FIRMWARE = "firmware"
MAX_READINGS = 10_000
MAX_FIRMWARE = 64
EMPTY_KEY = '""'  # an empty key still gets a visible location


@dataclass(frozen=True, slots=True)
class Measurement:
    """One numeric field of a reading: its unit and plausible range."""

    unit: str
    low: float
    high: float
    high_open: bool = False  # `high` itself is refused (rssi must be negative)

    def problem(self, value: float) -> str | None:
        if self.high_open:
            if not self.low <= value < self.high:
                return f"must be at least {self.low:g} and below {self.high:g} ({self.unit})"
            return None
        if not self.low <= value <= self.high:
            return f"must be between {self.low:g} and {self.high:g} ({self.unit})"
        return None


# field -> unit and range; the field name is the metric name of its series
MEASUREMENTS: dict[str, Measurement] = {
    "temperature": Measurement("°C", -90.0, 150.0),
    "humidity": Measurement("%", 0.0, 100.0),
    "pressure": Measurement("hPa", 300.0, 1100.0),
    "battery": Measurement("V", 0.0, 20.0),
    "rssi": Measurement("dBm", -150.0, 0.0, high_open=True),
}
REQUIRED = "temperature"
READING_KEYS = frozenset({"ts", *MEASUREMENTS})
SINGLE_KEYS = frozenset({"schema", "device", "firmware", *READING_KEYS})
BATCH_KEYS = frozenset({"schema", "device", "firmware", "readings"})


def parse(body: bytes, ctx: ParseContext) -> Batch:
    doc, non_finite = _loads(body)
    contract_version.check(doc, FAMILY)  # 422 naming the supported versions
    b = BatchBuilder(ctx.tenant_id)
    if non_finite:
        b.error("body", "NaN and Infinity are not JSON numbers: send finite numbers")
    device = doc.get("device")
    if device is None:
        b.error("body.device", "is required")
    elif not isinstance(device, str) or not DEVICE_RE.fullmatch(device):
        b.error("body.device", DEVICE_MSG)
        device = None
    tags = ((DEVICE_TAG, device),) if device is not None else None
    firmware = _firmware(doc.get(FIRMWARE), b)
    add = _readings if "readings" in doc else _single
    newest = add(doc, tags, b, ctx)
    if firmware is not None and tags is not None and newest is not None:
        b.add_state(b.series_id(FIRMWARE, tags, None), newest, firmware)
    return b.build()


def _firmware(raw: Any, b: BatchBuilder) -> str | None:
    if raw is None:
        return None
    if (
        not isinstance(raw, str)
        or not 0 < len(raw) <= MAX_FIRMWARE
        or any(ord(c) < 32 for c in raw)
    ):
        b.error("body.firmware", f"must be a string of 1-{MAX_FIRMWARE} printable characters")
        return None
    return raw


def _unknown(obj: dict[str, Any], allowed: frozenset[str], loc: str, b: BatchBuilder) -> None:
    names = ", ".join(sorted(allowed))
    for key in sorted(obj.keys() - allowed):
        b.error(f"{loc}.{key or EMPTY_KEY}", f"unknown field; allowed: {names}")


def _single(
    doc: dict[str, Any], tags: Tags | None, b: BatchBuilder, ctx: ParseContext
) -> int | None:
    if not doc.keys() <= SINGLE_KEYS:
        _unknown(doc, SINGLE_KEYS, "body", b)
    ts = _timestamp(doc.get("ts"), "body.ts", b, ctx, required=False)
    _measurements(doc, "body", ts, tags, b)
    return ts


def _readings(
    doc: dict[str, Any], tags: Tags | None, b: BatchBuilder, ctx: ParseContext
) -> int | None:
    """Add every buffered reading; the newest timestamp, or None when there is none."""
    if not doc.keys() <= BATCH_KEYS:
        _unknown(doc, BATCH_KEYS, "body", b)
    readings = doc["readings"]
    if not isinstance(readings, list) or not readings:
        b.error("body.readings", "must be a non-empty list of readings")
        return None
    if len(readings) > MAX_READINGS:
        b.error("body.readings", f"at most {MAX_READINGS} readings per request")
        return None
    fast = _fast_epoch(ctx)
    newest: int | None = None
    for i, reading in enumerate(readings):
        if type(reading) is not dict:
            b.error(f"body.readings[{i}]", "must be an object with `ts` and `temperature`")
            continue
        if not reading.keys() <= READING_KEYS:
            _unknown(reading, READING_KEYS, f"body.readings[{i}]", b)
        raw = reading.get("ts")
        if fast is not None and type(raw) is int and fast[1] <= raw <= fast[2]:
            ts: int | None = raw * fast[0]
        else:
            ts = _timestamp(raw, f"body.readings[{i}].ts", b, ctx, required=True)
        _measurements(reading, None, ts, tags, b, i)
        if ts is not None and (newest is None or ts > newest):
            newest = ts
    return newest


def _timestamp(
    raw: Any, loc: str, b: BatchBuilder, ctx: ParseContext, *, required: bool
) -> int | None:
    if raw is None:
        if required:
            b.error(loc, "is required in `readings` (buffered readings need their own time)")
            return None
        return ctx.now_us
    if isinstance(raw, bool):
        b.error(loc, "must be an RFC 3339 string or an epoch number")
        return None
    return device_timestamp(raw, loc, b, ctx)


def _measurements(
    obj: dict[str, Any],
    loc: str | None,
    ts: int | None,
    tags: Tags | None,
    b: BatchBuilder,
    index: int = 0,
) -> None:
    """Check and add the measurements of one reading (all of them, even when the time or
    device is bad, so that every error is reported). `loc` None: `body.readings[index]`,
    built only for an error. A field that is null counts as absent."""
    if obj.get(REQUIRED) is None:
        b.error(f"{loc or f'body.readings[{index}]'}.{REQUIRED}", "is required")
    ids = b.ids_for(tags) if ts is not None and tags is not None else None
    for name, value in obj.items():
        spec = MEASUREMENTS.get(name)
        if spec is None or value is None:
            continue  # `ts`, a top-level field, an unknown field (reported), or null
        kind = type(value)
        if (
            (kind is float or kind is int)
            and spec.low <= value
            and (value < spec.high if spec.high_open else value <= spec.high)
        ):
            if ids is not None and ts is not None:
                sid = ids.get(name)
                if sid is None:
                    sid = b.series_id(name, tags or (), spec.unit)
                b.add(sid, ts, float(value))
            continue
        _refuse(f"{loc or f'body.readings[{index}]'}.{name}", value, spec, b)


def _refuse(where: str, value: Any, spec: Measurement, b: BatchBuilder) -> None:
    """The error of a value that is not a number in its range."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        b.error(where, f"must be a number ({spec.unit})")
    elif not math.isfinite(value):
        b.error(where, f"must be a finite number ({spec.unit})")
    else:
        b.error(where, spec.problem(float(value)) or f"is out of range ({spec.unit})")


__all__ = ["FAMILY", "MEASUREMENTS", "parse"]
