"""Chart-ready columns: numpy arrays from DuckDB turned into JSON-ready lists.

Times become RFC 3339 strings (UTC with `Z`, or with the offset of a requested zone),
missing or non-finite values become `None`, series ids become decimal strings (a
JavaScript number cannot hold every signed 64-bit integer).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from ..model import Float64Array, Int64Array

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def floats(column: Any) -> Float64Array:
    """A float64 array from a fetched column; SQL NULL (masked) becomes NaN."""
    if isinstance(column, np.ma.MaskedArray):
        return np.ma.filled(column.astype(np.float64), np.nan)
    return np.asarray(column, dtype=np.float64)


def ints(column: Any) -> Int64Array:
    if isinstance(column, np.ma.MaskedArray):
        return np.ma.filled(column.astype(np.int64), 0)
    return np.asarray(column, dtype=np.int64)


def values(array: Float64Array) -> list[float | None]:
    """JSON-ready numbers: NaN and infinities become None."""
    out: list[float | None] = array.tolist()
    if not np.isfinite(array).all():
        bad = np.flatnonzero(~np.isfinite(array)).tolist()
        for i in bad:
            out[i] = None
    return out


def times(us: Int64Array, tz: str = "UTC", *, micros: bool = False) -> list[str]:
    """RFC 3339 strings of UTC microseconds; in `tz` with its offset when not UTC."""
    if tz != "UTC":
        zone = ZoneInfo(tz)
        spec = "microseconds" if micros else "seconds"
        return [
            (_EPOCH + timedelta(microseconds=u)).astimezone(zone).isoformat(timespec=spec)
            for u in us.tolist()
        ]
    text = np.datetime_as_string(us.astype("datetime64[us]"), unit="us" if micros else "s")
    out: list[str] = np.char.add(text, "Z").tolist()
    return out


def time_or_none(us: int | None) -> str | None:
    if us is None:
        return None
    return times(np.array([us], dtype=np.int64), micros=True)[0]


def number(value: Any) -> float | None:
    """A JSON-ready number: None for SQL NULL, NaN and infinities."""
    if value is None:
        return None
    result = float(value)
    return result if np.isfinite(result) else None


def series_id(value: int) -> str:
    return str(int(value))
