"""How the measurement and tag set of an InfluxDB line map onto our series.

One `SeriesEntry` per distinct raw measurement-and-tags text: it knows the tags (device
included), how field keys become metric names, the unit, and remembers the series of
every field key and field-key sequence seen with it, so a repeated series key costs one
dict lookup.
The rules are documented in `influx_line.py`.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from ...model import DEVICE_TAG, SeriesKey, SeriesMeta
from .base import BatchBuilder
from .influx_scan import LineError, scan_key
from .json_v1 import DEVICE_MSG, DEVICE_RE

MAX_NAME = 256  # measurement, tag keys and values, field keys and the metric names made of them
MAX_TAGS = 64
HOST_TAG = "host"
HA_DOMAIN_TAG = "domain"
HA_ENTITY_TAG = "entity_id"
# control characters, and the lone surrogates that stand for undecodable bytes
_FORBIDDEN = re.compile(r"[\x00-\x1f\ud800-\udfff]")


Series = tuple[int, SeriesMeta]  # id and metadata; the metadata is shared: never mutated
# Bounds of the process-wide memory (see `entry_for`): entries of keys up to
# MAX_CACHED_KEY characters, each remembering at most MAX_FIELDS field keys and
# MAX_LAYOUTS field-key sequences of at most MAX_LAYOUT_CHARS characters; anything
# bigger is computed again (or read by the exact reader) each time.
MAX_CACHED_KEY = 1024
MAX_ENTRIES = 8192
MAX_FIELDS = 64
MAX_LAYOUTS = 8
MAX_LAYOUT_CHARS = 4096


@dataclass(slots=True)
class Layout:
    """One field-key sequence under one series key, as the fast path meets it: a
    pattern that matches exactly these keys in this order, and their series."""

    pattern: re.Pattern[str] | None  # None: these keys are refused (the line goes exact)
    sids: tuple[int, ...] = ()
    metas: dict[int, SeriesMeta] = field(default_factory=dict)
    unit: bool = False  # whether any of them has a unit


@dataclass(slots=True, eq=False)
class SeriesEntry:
    """Measurement + tag set of a line, mapped (the rules are in `influx_line`). It is
    a pure function of tenant, default device and key text, so it is shared by the
    requests of the process (see `entry_for`); what a request uses is registered in its
    own `BatchBuilder` with `register`."""

    tenant_id: int
    measurement: str
    tags: tuple[tuple[str, str], ...]  # sorted, device included
    home_assistant: bool = False
    unit: str | None = None  # Home Assistant: the unit of the `value` field
    error: str | None = None  # why lines with this key are refused
    cached: bool = True  # shared by requests (see `entry_for`)
    fields: dict[str, Series] = field(default_factory=dict)
    layouts: dict[tuple[str, ...], Layout] = field(default_factory=dict)

    def metric(self, field_key: str) -> str:
        if self.home_assistant:
            return field_key
        return self.measurement if field_key == "value" else f"{self.measurement}_{field_key}"

    def series(self, field_key: str) -> Series:
        """The series of one field under this key (LineError for a bad field key)."""
        known = self.fields.get(field_key)
        if known is not None:
            return known
        if len(field_key) > MAX_NAME:
            raise LineError(f"field key longer than {MAX_NAME} characters")
        if _FORBIDDEN.search(field_key):
            raise LineError("field key contains control characters")
        metric = self.metric(field_key)
        if len(metric) > MAX_NAME:
            raise LineError(f"metric name {metric[:60]!r}... is longer than {MAX_NAME} characters")
        make = series_key if self.cached else series_key.__wrapped__
        key, sid = make(self.tenant_id, metric, self.tags)
        known = (sid, SeriesMeta(key, self.unit if field_key == "value" else None))
        if self.cached and len(self.fields) < MAX_FIELDS:
            self.fields[field_key] = known
        return known

    def layout(self, names: tuple[str, ...]) -> Layout:
        """The layout of a field-key sequence (its pattern is None when a key is bad)."""
        layout = self.layouts.get(names)
        if layout is not None:
            return layout
        layout = Layout(None)  # empty or very long field keys: the exact reader takes them
        if all(names) and sum(map(len, names)) <= MAX_LAYOUT_CHARS:
            try:
                series = tuple(self.series(name) for name in names)
            except LineError:
                pass
            else:
                layout = Layout(
                    fields_pattern(names),
                    tuple(sid for sid, _ in series),
                    dict(series),
                    any(meta.unit for _, meta in series),
                )
        if self.cached and len(self.layouts) < MAX_LAYOUTS:
            self.layouts[names] = layout
        return layout


def register(builder: BatchBuilder, sid: int, meta: SeriesMeta) -> None:
    """Add a series to the request's batch; a unit, once given, is kept."""
    known = builder.series.get(sid)
    if known is None or (meta.unit and not known.unit):
        builder.series[sid] = meta


@functools.lru_cache(maxsize=65_536)
def series_key(
    tenant_id: int, metric: str, tags: tuple[tuple[str, str], ...]
) -> tuple[SeriesKey, int]:
    """A series key and its id. Hashing the canonical key costs ~20 us, as much as
    parsing 100 points, and a Telegraf or TSBS fleet sends the same series in every
    request: so this pure function is memoised for the process (bounded, thread-safe)."""
    key = SeriesKey(tenant_id, metric, tags)
    return key, key.series_id


@functools.lru_cache(maxsize=4096)
def fields_pattern(names: tuple[str, ...]) -> re.Pattern[str]:
    """Matches a field set with exactly these (unescaped-free) keys, capturing values."""
    return re.compile(",".join(re.escape(name) + "=([^,=]*)" for name in names))


def entry_for(tenant_id: int, default_device: str | None, key: str) -> SeriesEntry | None:
    """The series entry of a raw measurement-and-tags text (None when the text is not a
    valid key). Memoised for the process: a fleet repeats its keys in every request, and
    with thousands of hosts most keys are new to each request. Long keys are not kept."""
    if len(key) <= MAX_CACHED_KEY:
        return _cached_entry(tenant_id, default_device, key)
    entry = _entry(tenant_id, default_device, key)
    if entry is not None:
        entry.cached = False
    return entry


def _entry(tenant_id: int, default_device: str | None, key: str) -> SeriesEntry | None:
    try:
        _, measurement, tags = scan_key(key + " ")
    except LineError:
        return None
    return map_series(tenant_id, measurement, tags, default_device)


_cached_entry = functools.lru_cache(maxsize=MAX_ENTRIES)(_entry)


def refused(tenant_id: int, reason: str) -> SeriesEntry:
    return SeriesEntry(tenant_id, "", (), error=reason)


def map_series(
    tenant_id: int, measurement: str, tags: list[tuple[str, str]], default_device: str | None
) -> SeriesEntry:
    """The series entry of a measurement and its (unescaped, distinct) tags."""
    if len(measurement) > MAX_NAME:
        return refused(tenant_id, f"measurement longer than {MAX_NAME} characters")
    if _FORBIDDEN.search(measurement):
        return refused(tenant_id, "measurement contains control characters")
    if len(tags) > MAX_TAGS:
        return refused(tenant_id, f"more than {MAX_TAGS} tags")
    for key, value in tags:
        if len(key) > MAX_NAME or len(value) > MAX_NAME:
            return refused(
                tenant_id, f"tag {key[:60]!r} longer than {MAX_NAME} characters (key or value)"
            )
        if _FORBIDDEN.search(key) or _FORBIDDEN.search(value):
            return refused(tenant_id, f"tag {key[:60]!r} contains control characters")
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
            return refused(tenant_id, f"device {device[:60]!r} {DEVICE_MSG}")
        named[DEVICE_TAG] = device
    return SeriesEntry(tenant_id, measurement, tuple(sorted(named.items())), home_assistant, unit)
