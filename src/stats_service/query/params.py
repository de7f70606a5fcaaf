"""Parse and check the parameters of read requests; every refusal is a `BadParameter`.

Pure functions (no I/O): durations, time bounds, time zones, limits, series ids, opaque
cursors and the catalogue of aggregate functions. `now_us` is always passed in.
"""

from __future__ import annotations

import base64
import binascii
import re
import zoneinfo
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import cache

from ..errors import BadParameter
from ..ingest.timestamps import MAX_US, MIN_US, TimestampError, parse_timestamp, rfc3339_to_us

SECOND_US = 1_000_000
DAY_US = 86_400 * SECOND_US
UNITS_US: dict[str, int] = {
    "s": SECOND_US,
    "m": 60 * SECOND_US,
    "h": 3600 * SECOND_US,
    "d": DAY_US,
    "w": 7 * DAY_US,
}
MAX_DURATION_US = 3660 * DAY_US  # ten years
DEFAULT_SPAN_US = DAY_US
MAX_BUCKETS = 100_000
MAX_SERIES_IDS = 1000
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

_DURATION = re.compile(r"(\d{1,12})([a-z]+)")
_RELATIVE = re.compile(r"now(?:([+\- ])(.+))?")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][+\-]?\d+)?")
_OFFSET_SPACE = re.compile(r"(.*T.*\d) (\d\d:?\d\d)")  # '+02:00' arrived as ' 02:00'
_QUANTILE = re.compile(r"p(\d{1,2}(?:\.\d{1,6})?)")

# Aggregate functions: name -> SQL expression over the columns {value} and {ts}.
FUNCTIONS: dict[str, str] = {
    "count": "count({value})",
    "mean": "avg({value})",
    "min": "min({value})",
    "max": "max({value})",
    "sum": "sum({value})",
    "median": "median({value})",
    "stddev": "stddev_samp({value})",
    "first": "arg_min({value}, {ts})",
    "last": "arg_max({value}, {ts})",
}
FUNCTION_HELP = ", ".join(FUNCTIONS) + " and pNN for a percentile with 0 < NN < 100 (p95, p99.9)"


@dataclass(frozen=True, slots=True)
class TimeRange:
    """A half-open interval [from_us, to_us) of UTC microseconds."""

    from_us: int
    to_us: int


def parse_duration(param: str, text: str | None) -> int:
    """Microseconds of `10s`, `5m`, `1h`, `1d`, `1w` (a whole number of a unit, 1s at least)."""
    hint = "use a whole number of s, m, h, d or w, e.g. 10s, 5m, 1h, 1d, 1w"
    match = _DURATION.fullmatch((text or "").strip().lower())
    if match is None:
        raise BadParameter(param, f"{text!r} is not a duration; {hint}")
    number, unit = int(match[1]), match[2]
    if unit not in UNITS_US:
        raise BadParameter(param, f"unit {unit!r} is not supported (1s at least); {hint}")
    micros = number * UNITS_US[unit]
    if not 0 < micros <= MAX_DURATION_US:
        raise BadParameter(param, f"{text!r} must be between 1s and 3660d")
    return micros


def parse_time(param: str, text: str, now_us: int) -> int:
    """UTC microseconds of RFC 3339, an epoch number (unit guessed), `now` or `now-1h`."""
    value = text.strip()
    relative = _RELATIVE.fullmatch(value.lower())
    if relative is not None:
        if relative[2] is None:
            return now_us
        delta = parse_duration(param, relative[2])
        return _in_range(param, now_us - delta if relative[1] == "-" else now_us + delta)
    try:
        if _NUMBER.fullmatch(value):
            exact = "." not in value and "e" not in value.lower()
            return parse_timestamp(int(value) if exact else float(value), None)
        return rfc3339_to_us(_OFFSET_SPACE.sub(r"\1+\2", value))
    except TimestampError as exc:
        hint = "also accepted: epoch seconds/ms/us/ns, now, now-1h"
        raise BadParameter(param, f"{exc}; {hint}") from None


def _in_range(param: str, us: int) -> int:
    if not MIN_US <= us <= MAX_US:
        raise BadParameter(param, "time is outside 1900-01-01 .. 9999-12-31")
    return us


def time_range(
    from_text: str | None,
    to_text: str | None,
    now_us: int,
    *,
    default_span_us: int | None = DEFAULT_SPAN_US,
    open_end: bool = False,
) -> TimeRange:
    """[from, to): `to` defaults to now (no end when `open_end`), `from` to `to` minus
    `default_span_us` (no start when that is None)."""
    to_us = MAX_US if open_end else now_us
    if to_text:
        to_us = parse_time("to", to_text, now_us)
    if from_text:
        from_us = parse_time("from", from_text, now_us)
    elif default_span_us is None:
        from_us = MIN_US
    else:
        from_us = max(MIN_US, to_us - default_span_us)
    if from_us >= to_us:
        raise BadParameter("from", "must be before `to` (the range is [from, to))")
    return TimeRange(from_us, to_us)


def parse_date(param: str, text: str | None, default: date) -> date:
    if not text:
        return default
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise BadParameter(param, f"{text!r} is not a date; use YYYY-MM-DD") from None


@cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones() | {"UTC"})


def parse_tz(text: str | None) -> str:
    """An IANA time zone name (`Europe/Berlin`); UTC when not given."""
    if not text or not text.strip():
        return "UTC"
    name = text.strip()
    if name not in _zones():
        close = sorted(z for z in _zones() if z.lower() == name.lower())
        hint = f"; did you mean {close[0]!r}?" if close else " (IANA names, e.g. Europe/Berlin)"
        raise BadParameter("tz", f"{name!r} is not a known time zone{hint}")
    return name


def parse_limit(param: str, value: int | str | None, default: int, maximum: int) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise BadParameter(param, f"{value!r} is not a whole number") from None
    if not 1 <= number <= maximum:
        raise BadParameter(param, f"must be between 1 and {maximum}")
    return number


def parse_series_id(param: str, value: int | str) -> int:
    """A series id as an int or a decimal string (signed 64-bit)."""
    try:
        number = int(value) if isinstance(value, int) else int(value.strip(), 10)
    except ValueError:
        raise BadParameter(param, f"{value!r} is not a series id (a decimal integer)") from None
    if not INT64_MIN <= number <= INT64_MAX:
        raise BadParameter(param, f"{value!r} is not a series id (outside signed 64-bit)")
    return number


def parse_series_ids(param: str, text: str) -> list[int]:
    """Comma-separated series ids, without repeats, at most MAX_SERIES_IDS."""
    parts = [p for p in (s.strip() for s in text.split(",")) if p]
    if not parts:
        raise BadParameter(param, "give at least one series id")
    if len(parts) > MAX_SERIES_IDS:
        raise BadParameter(param, f"at most {MAX_SERIES_IDS} series per request")
    return list(dict.fromkeys(parse_series_id(param, p) for p in parts))


def encode_cursor(position: int) -> str:
    return base64.urlsafe_b64encode(str(position).encode()).decode().rstrip("=")


def decode_cursor(param: str, text: str | None) -> int | None:
    """The position inside an opaque cursor returned by an earlier page."""
    if not text:
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii")
        if not re.fullmatch(r"-?\d{1,20}", raw):
            raise ValueError(raw)
        return int(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadParameter(
            param, "not a cursor returned by this API; pass `next_cursor` unchanged"
        ) from None


def decode_offset(param: str, text: str | None) -> int:
    """The row offset inside a page cursor (0 without one)."""
    offset = decode_cursor(param, text)
    if offset is None:
        return 0
    if offset < 0:
        raise BadParameter(param, "not a cursor returned by this API; pass `next_cursor` unchanged")
    return offset


def parse_functions(text: str | None, default: str = "mean") -> list[str]:
    """Names of aggregate functions from `mean,max,p95`, in order, without repeats."""
    names = [n.strip().lower() for n in (text or default).split(",") if n.strip()]
    if not names:
        names = [default]
    for name in names:
        function_sql(name)
    if len(names) > 20:
        raise BadParameter("fn", "at most 20 functions per request")
    return list(dict.fromkeys(names))


def function_sql(name: str, value: str = "value", ts: str = "ts") -> str:
    """The SQL of one aggregate function over the columns `value` and `ts`."""
    template = FUNCTIONS.get(name)
    if template is None:
        template = f"quantile_cont({{value}}, {_quantile(name)})"
    return template.format(value=value, ts=ts)


def _quantile(name: str) -> str:
    match = _QUANTILE.fullmatch(name)
    refusal = BadParameter("fn", f"unknown function {name!r}; valid are {FUNCTION_HELP}")
    if match is None:
        raise refusal
    try:
        percent = Decimal(match[1])
    except InvalidOperation:
        raise refusal from None
    if not 0 < percent < 100:
        raise refusal
    return str(percent / 100)


def check_bucket_count(count: int) -> None:
    if count > MAX_BUCKETS:
        raise BadParameter(
            "bucket",
            f"{count} buckets between `from` and `to`; at most {MAX_BUCKETS} per request: "
            "use a larger bucket or a shorter range",
        )
