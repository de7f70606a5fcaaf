"""Timestamp parsing: RFC 3339 strings and epoch numbers, to UTC microseconds."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Literal

Precision = Literal["s", "ms", "us", "ns"]
PRECISIONS: dict[str, int] = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": 0}

# Epoch values are guessed only inside these windows (roughly years 1973-2286), where no
# two units overlap; anything else needs an explicit `precision`.
_GUESS_WINDOWS: tuple[tuple[float, float, str], ...] = (
    (1e8, 1e10, "s"),
    (1e11, 1e13, "ms"),
    (1e14, 1e16, "us"),
    (1e17, 1e19, "ns"),
)
MIN_US = -2_208_988_800_000_000  # 1900-01-01T00:00:00Z
MAX_US = 253_402_300_799_999_999  # 9999-12-31T23:59:59.999999Z
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FRACTION = re.compile(r"(\.\d{6})\d+")


class TimestampError(ValueError):
    """A timestamp that cannot be read; the message says why."""


def guess_precision(value: float) -> str:
    magnitude = abs(value)
    for low, high, unit in _GUESS_WINDOWS:
        if low <= magnitude < high:
            return unit
    raise TimestampError(
        f"cannot tell the unit of epoch timestamp {value!r}; pass ?precision=s|ms|us|ns"
    )


def epoch_to_us(value: int | float, precision: str | None) -> int:
    if isinstance(value, float) and not math.isfinite(value):
        raise TimestampError("timestamp must be a finite number")
    if precision is not None and precision not in PRECISIONS:
        raise TimestampError(f"unknown precision {precision!r}; use s, ms, us or ns")
    unit = precision or guess_precision(value)
    if unit == "ns":
        us = int(value) // 1000 if isinstance(value, int) else int(value / 1000)
    elif isinstance(value, int):
        us = value * PRECISIONS[unit]
    else:
        us = round(value * PRECISIONS[unit])
    return _check_range(us)


def rfc3339_to_us(text: str) -> int:
    candidate = text.strip()
    if len(candidate) < 10 or candidate[4:5] != "-":
        raise TimestampError(f"{text!r} is not an RFC 3339 timestamp (e.g. 2024-05-01T12:00:00Z)")
    candidate = _FRACTION.sub(r"\1", candidate)
    if candidate.endswith(("z", "Z")):
        candidate = candidate[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(candidate)
    except ValueError:
        raise TimestampError(
            f"{text!r} is not an RFC 3339 timestamp (e.g. 2024-05-01T12:00:00Z)"
        ) from None
    if parsed.tzinfo is None:
        raise TimestampError(f"{text!r} has no UTC offset; add 'Z' or '+hh:mm'")
    delta = parsed - _EPOCH
    return _check_range((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds)


def parse_timestamp(value: object, precision: str | None) -> int:
    """UTC microseconds of a JSON timestamp value (string or number)."""
    if isinstance(value, bool):
        raise TimestampError("timestamp must be an RFC 3339 string or an epoch number")
    if isinstance(value, int | float):
        return epoch_to_us(value, precision)
    if isinstance(value, str):
        return rfc3339_to_us(value)
    raise TimestampError("timestamp must be an RFC 3339 string or an epoch number")


def _check_range(us: int) -> int:
    if not MIN_US <= us <= MAX_US:
        raise TimestampError("timestamp is outside 1900-01-01 .. 9999-12-31")
    return us


def us_to_datetime(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def format_us(us: int) -> str:
    """RFC 3339 with microseconds and 'Z'."""
    return us_to_datetime(us).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
