"""How the measurement and tag set of an InfluxDB line map onto our series.

One `SeriesEntry` per distinct raw measurement-and-tags text of a request: it knows the
tags (device included), how field names become metric names, the unit, and caches the
series id of every field seen with it, so a repeated series key costs one dict lookup.
The rules are documented in `influx_line.py`.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from ...model import DEVICE_TAG, SeriesKey, SeriesMeta
from .base import BatchBuilder
from .influx_scan import LineError
from .json_v1 import DEVICE_MSG, DEVICE_RE

MAX_NAME = 256  # measurement, tag keys and values, field keys and the metric names made of them
MAX_TAGS = 64
HOST_TAG = "host"
HA_DOMAIN_TAG = "domain"
HA_ENTITY_TAG = "entity_id"
# control characters, and the lone surrogates that stand for undecodable bytes
_FORBIDDEN = re.compile(r"[\x00-\x1f\ud800-\udfff]")


@dataclass(slots=True)
class Layout:
    """The fast path's memory of one field-key sequence under one series entry: a
    pattern that matches exactly these keys in this order, and their series ids."""

    pattern: re.Pattern[str] | None  # None: these keys are refused (the line goes exact)
    sids: tuple[int, ...] = ()


@dataclass(slots=True)
class SeriesEntry:
    """Measurement + tag set of a line, mapped: see `influx_line` for the rules."""

    measurement: str
    tags: tuple[tuple[str, str], ...]  # sorted, device included
    home_assistant: bool = False
    unit: str | None = None  # Home Assistant: the unit of the `value` field
    error: str | None = None  # why lines with this key are refused
    sids: dict[str, int] = field(default_factory=dict)
    last: Layout | None = None  # fast path: the layout of the previous line
    layouts: dict[tuple[str, ...], Layout] = field(default_factory=dict)

    def metric(self, field_key: str) -> str:
        if self.home_assistant:
            return field_key
        return self.measurement if field_key == "value" else f"{self.measurement}_{field_key}"

    def sid(self, field_key: str, builder: BatchBuilder) -> int:
        """The series id of one field under this key (LineError for a bad field key)."""
        sid = self.sids.get(field_key)
        if sid is not None:
            return sid
        if len(field_key) > MAX_NAME:
            raise LineError(f"field key longer than {MAX_NAME} characters")
        if _FORBIDDEN.search(field_key):
            raise LineError("field key contains control characters")
        metric = self.metric(field_key)
        if len(metric) > MAX_NAME:
            raise LineError(f"metric name {metric[:60]!r}... is longer than {MAX_NAME} characters")
        unit = self.unit if field_key == "value" else None
        key, sid = series_key(builder.tenant_id, metric, self.tags)
        meta = builder.series.get(sid)
        if meta is None:
            builder.series[sid] = SeriesMeta(key, unit)
        elif unit and not meta.unit:
            meta.unit = unit
        self.sids[field_key] = sid
        return sid


@functools.lru_cache(maxsize=65_536)
def series_key(
    tenant_id: int, metric: str, tags: tuple[tuple[str, str], ...]
) -> tuple[SeriesKey, int]:
    """A series key and its id. Hashing the canonical key costs ~20 us, as much as
    parsing 100 points, and a Telegraf or TSBS fleet sends the same series in every
    request: so this pure function is memoised for the process (bounded, thread-safe)."""
    key = SeriesKey(tenant_id, metric, tags)
    return key, key.series_id


def refused(reason: str) -> SeriesEntry:
    return SeriesEntry("", (), error=reason)


def map_series(
    measurement: str, tags: list[tuple[str, str]], default_device: str | None
) -> SeriesEntry:
    """The series entry of a measurement and its (unescaped, distinct) tags."""
    if len(measurement) > MAX_NAME:
        return refused(f"measurement longer than {MAX_NAME} characters")
    if _FORBIDDEN.search(measurement):
        return refused("measurement contains control characters")
    if len(tags) > MAX_TAGS:
        return refused(f"more than {MAX_TAGS} tags")
    for key, value in tags:
        if len(key) > MAX_NAME or len(value) > MAX_NAME:
            return refused(f"tag {key[:60]!r} longer than {MAX_NAME} characters (key or value)")
        if _FORBIDDEN.search(key) or _FORBIDDEN.search(value):
            return refused(f"tag {key[:60]!r} contains control characters")
    named = dict(tags)
    home_assistant = HA_DOMAIN_TAG in named and HA_ENTITY_TAG in named
    unit = None
    if home_assistant:
        device: str | None = f"{named.pop(HA_DOMAIN_TAG)}.{named.pop(HA_ENTITY_TAG)}"
        if measurement not in (device, dict(tags)[HA_ENTITY_TAG]):
            unit = measurement
    elif DEVICE_TAG in named:
        device = named[DEVICE_TAG]
    elif HOST_TAG in named:
        device = named.pop(HOST_TAG)
    else:
        device = default_device
    if device is not None:
        if not DEVICE_RE.fullmatch(device):
            return refused(f"device {device[:60]!r} {DEVICE_MSG}")
        named[DEVICE_TAG] = device
    return SeriesEntry(measurement, tuple(sorted(named.items())), home_assistant, unit)
