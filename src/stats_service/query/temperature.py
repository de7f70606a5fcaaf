"""The temperature summary (`GET /v1/temperature/summary`): per device, the statistics of
its temperature/v1 series over a range and their daily minimum and maximum.

Built on the generic read code: `stats.statistics` for count/min/max/mean/last per
series, `aggregate.aggregate` with calendar-day buckets (in `tz`) for the daily rows.
The only SQL of its own reads the series catalogue (which devices, which series), never
the points.
"""

from __future__ import annotations

from typing import Any

import duckdb

from ..errors import BadParameter
from ..storage.marks_cache import ColdCatalog, MarksCache
from .aggregate import AggregateQuery, aggregate
from .buckets import Buckets
from .columns import time_or_none
from .params import DAY_US, TimeRange, encode_cursor
from .series import SERIES_COLUMNS, SeriesInfo
from .stats import statistics

# the numeric fields of temperature/v1, in the order they are reported
METRICS = ("temperature", "humidity", "pressure", "battery", "rssi")
DAILY = ("temperature", "humidity")  # daily min/max of these
FIRMWARE = "firmware"
DEFAULT_SPAN_US = 7 * DAY_US
MAX_SPAN_DAYS = 366
MAX_DEVICES = 500
_STATS = ("count", "min", "max", "mean", "last", "last_ts")

# Series of a device and nothing else (the series temperature/v1 writes; readings sent
# through /v1/ingest under the same device and metric names, without further tags, too).
_OWN_SERIES = "json_extract_string(s.tags, '$.device') = s.device AND len(json_keys(s.tags)) = 1"

_DEVICES_SQL = f"""
SELECT DISTINCT s.device FROM series s
WHERE s.tenant_id = ? AND s.metric = 'temperature' AND s.device IS NOT NULL AND {_OWN_SERIES}
  {{device}}
ORDER BY s.device LIMIT ? OFFSET ?
"""

_SERIES_SQL = f"""
SELECT {SERIES_COLUMNS} FROM series s
WHERE s.tenant_id = ? AND s.device IN (SELECT unnest(?::VARCHAR[]))
  AND s.metric IN (SELECT unnest(?::VARCHAR[])) AND {_OWN_SERIES}
"""


def check_span(span: TimeRange) -> None:
    if span.to_us - span.from_us > MAX_SPAN_DAYS * DAY_US:
        raise BadParameter(
            "from", f"the range spans more than {MAX_SPAN_DAYS} days; ask for a shorter range"
        )


def summary(
    cur: duckdb.DuckDBPyConnection,
    tenant_id: int,
    span: TimeRange,
    *,
    device: str | None = None,
    tz: str = "UTC",
    limit: int = 100,
    offset: int = 0,
    marks: MarksCache | None = None,
    cold: ColdCatalog | None = None,
) -> dict[str, Any]:
    """{"from", "to", "tz", "devices": [...], "next_cursor"}: one page of devices that
    have a temperature series, ordered by name."""
    check_span(span)
    where, params = ("AND s.device = ?", [device]) if device is not None else ("", [])
    rows = cur.execute(
        _DEVICES_SQL.format(device=where), [tenant_id, *params, limit + 1, offset]
    ).fetchall()
    names = [str(r[0]) for r in rows[:limit]]
    more = len(rows) > limit
    series = [
        SeriesInfo.from_row(r)
        for r in cur.execute(_SERIES_SQL, [tenant_id, names, [*METRICS, FIRMWARE]]).fetchall()
    ]
    numeric = [s for s in series if s.metric != FIRMWARE]
    stats = {
        (e["device"], e["metric"]): e for e in statistics(cur, tenant_id, numeric, span)["series"]
    }
    daily_series = [s for s in numeric if s.metric in DAILY]
    days: dict[tuple[str | None, str], dict[str, Any]] = {}
    if daily_series:
        query = AggregateQuery(span, Buckets(DAY_US, tz), ("min", "max"), "none", "1d")
        answers = aggregate(
            cur, tenant_id, [s.id for s in daily_series], query, scoped=True, marks=marks, cold=cold
        )
        for info, answer in zip(daily_series, answers, strict=True):
            days[(info.device, info.metric)] = answer
    firmware = {s.device: s.last_state for s in series if s.metric == FIRMWARE}
    return {
        "from": time_or_none(span.from_us),
        "to": time_or_none(span.to_us),
        "tz": tz,
        "devices": [_device(name, stats, days, firmware.get(name)) for name in names],
        "next_cursor": encode_cursor(offset + limit) if more else None,
    }


def _device(
    name: str,
    stats: dict[tuple[str | None, str], dict[str, Any]],
    days: dict[tuple[str | None, str], dict[str, Any]],
    firmware: str | None,
) -> dict[str, Any]:
    metrics: dict[str, Any] = {}
    for metric in METRICS:
        entry = stats.get((name, metric))
        if entry is not None:
            metrics[metric] = {"unit": entry["unit"]} | {k: entry[k] for k in _STATS}
    temperature = metrics.get("temperature", {})
    return {
        "device": name,
        "firmware": firmware,
        "last_ts": temperature.get("last_ts"),
        "last_temperature": temperature.get("last"),
        "metrics": metrics,
        "daily": _daily(name, days),
    }


def _daily(name: str, days: dict[tuple[str | None, str], dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per day with readings: `day` (local date in `tz`), `start` (the first
    instant of that day), `readings` (temperature readings) and min/max per field."""
    rows: dict[str, dict[str, Any]] = {}
    for metric in DAILY:
        answer = days.get((name, metric))
        if answer is None:
            continue
        for start, count, low, high in zip(
            answer["t"], answer["count"], answer["min"], answer["max"], strict=True
        ):
            row = rows.setdefault(start, {"day": start[:10], "start": start, "readings": 0})
            if metric == "temperature":
                row["readings"] = count
            row[f"{metric}_min"] = low
            row[f"{metric}_max"] = high
    return [rows[start] for start in sorted(rows, key=lambda s: rows[s]["day"])]
