"""Topic rules from the configuration: a topic filter mapped to device, metric and value.

    topic = "sensors/+/+/reading"   # MQTT filter (+ one level, # the rest)
    device = "{topic[1]}"           # templates: {topic[N]} (N from 0, negative from the
    metric = "{topic[2]}"           #   end), {topic} the whole topic, {key} the path of
    value = "$.reading"             #   a flattened leaf; JSON path (absent: the payload)
    unit = "°C"
    tags = { room = "{topic[1]}" }
    type = "auto"                   # number | text | auto
    time = "$.ts"                   # JSON path of the timestamp (absent: receive time)
    time_format = "auto"            # auto | iso | s | ms | us | ns
    timezone = "Europe/Berlin"      # for ISO times without an offset

A value path that selects an object flattens it: every leaf becomes a metric named by
`metric` (default `{key}`, the dotted path below the object).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

from ...timestamps import MAX_US, MIN_US, TimestampError, epoch_to_us, parse_timestamp
from .base import (
    MISSING,
    Message,
    Output,
    check_filter,
    compile_path,
    filter_matches,
    leaves,
    number_of,
    resolve_path,
)

RULE_KEYS = frozenset(
    {
        "topic",
        "device",
        "metric",
        "value",
        "unit",
        "tags",
        "type",
        "time",
        "time_format",
        "timezone",
    }
)
TYPES = ("auto", "number", "text")
TIME_FORMATS = ("auto", "iso", "s", "ms", "us", "ns")
_FIELD = re.compile(r"\{([^{}]*)\}")
_TOPIC_INDEX = re.compile(r"^topic\[(-?\d+)\]$")
_EPOCH = datetime(1970, 1, 1, tzinfo=ZoneInfo("UTC"))


def _check_template(template: Any, where: str) -> str:
    if not isinstance(template, str) or not template:
        raise ValueError(f"{where} must be a non-empty string")
    for name in _FIELD.findall(template):
        if name not in ("topic", "key") and not _TOPIC_INDEX.match(name):
            raise ValueError(
                f"{where}: unknown placeholder {{{name}}}; use {{topic[N]}}, {{topic}} or {{key}}"
            )
    return template


def render(template: str, levels: list[str], topic: str, key: str) -> str | None:
    """The template filled in; None when it names a topic level that is not there."""
    missing = False

    def field(match: re.Match[str]) -> str:
        nonlocal missing
        name = match.group(1)
        if name == "topic":
            return topic
        if name == "key":
            return key
        index = int(name[6:-1])
        if not -len(levels) <= index < len(levels):
            missing = True
            return ""
        return levels[index]

    text = _FIELD.sub(field, template)
    return None if missing else text


class Rule:
    """One configured rule, checked when it is built (at start-up, with its location)."""

    def __init__(self, spec: dict[str, Any], where: str = "rule") -> None:
        unknown = set(spec) - RULE_KEYS
        if unknown:
            raise ValueError(
                f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(RULE_KEYS)}"
            )
        topic = spec.get("topic")
        if not isinstance(topic, str) or check_filter(topic):
            raise ValueError(f"{where}.topic: {check_filter(str(topic or '')) or 'is required'}")
        self.filters = (topic,)
        self.topic = topic
        self.device = _check_template(spec.get("device"), f"{where}.device")
        self.metric = _check_template(spec.get("metric", "{key}"), f"{where}.metric")
        value = spec.get("value")
        try:
            self.value = compile_path(value) if value is not None else None
            self.time = compile_path(spec["time"]) if spec.get("time") is not None else None
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        unit = spec.get("unit")
        if unit is not None and (not isinstance(unit, str) or not 0 < len(unit) <= 32):
            raise ValueError(f"{where}.unit must be a string of 1-32 characters")
        self.unit: str | None = unit
        tags = spec.get("tags") or {}
        if not isinstance(tags, dict) or "device" in tags:
            raise ValueError(f"{where}.tags must be a table of templates (not `device`)")
        self.tags = {
            str(k): _check_template(v, f"{where}.tags.{k}") for k, v in sorted(tags.items())
        }
        self.type = spec.get("type", "auto")
        if self.type not in TYPES:
            raise ValueError(f"{where}.type must be one of {', '.join(TYPES)}")
        self.time_format = spec.get("time_format", "auto")
        if self.time_format not in TIME_FORMATS:
            raise ValueError(f"{where}.time_format must be one of {', '.join(TIME_FORMATS)}")
        zone = spec.get("timezone")
        try:
            self.zone = ZoneInfo(zone) if zone else None
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{where}.timezone: unknown time zone {zone!r}") from None

    def handle(self, msg: Message, out: Output) -> bool:
        if not filter_matches(self.topic, msg.topic):
            return False
        levels = msg.levels
        doc = self._document(msg, out)
        if doc is MISSING:
            return True
        ts = self._time(doc, out)
        if ts is False:
            return True
        value = doc if self.value is None else resolve_path(doc, self.value)
        if value is MISSING:
            out.problem("the payload has no value at the rule's `value` path")
            return True
        device = render(self.device, levels, msg.topic, "")
        tags = []
        for name, template in self.tags.items():
            rendered = render(template, levels, msg.topic, "")
            if rendered:
                tags.append((name, rendered))
        if device is None:
            out.problem("the device template names a topic level the topic has not")
            return True
        items = leaves(value) if isinstance(value, dict | list) else [("", value)]
        for key, item in items:
            metric = render(self.metric, levels, msg.topic, key)
            if not metric:
                out.problem("the metric template gives an empty name")
                continue
            self._emit(device, metric, item, ts, tuple(tags), out)
        return True

    def _document(self, msg: Message, out: Output) -> Any:
        if self.value is None and self.time is None:
            try:
                return orjson.loads(msg.payload)
            except orjson.JSONDecodeError:
                try:
                    return msg.text()
                except UnicodeDecodeError:
                    out.problem("payload is neither JSON nor UTF-8 text")
                    return MISSING
        try:
            return msg.json()
        except ValueError:
            out.problem("payload is not JSON (the rule reads a JSON path)")
            return MISSING

    def _emit(
        self,
        device: str,
        metric: str,
        value: Any,
        ts: int | None,
        tags: tuple[tuple[str, str], ...],
        out: Output,
    ) -> None:
        if self.type == "number":
            number = number_of(value)
            if number is None:
                out.problem(f"{metric}: {str(value)[:40]!r} is not a number")
                return
            out.number(device, metric, number, ts=ts, unit=self.unit, tags=tags)
        elif self.type == "text":
            text = value if isinstance(value, str) else orjson.dumps(value).decode()
            out.text(device, metric, text, ts=ts, unit=self.unit, tags=tags)
        else:
            out.auto(device, metric, value, ts=ts, unit=self.unit, tags=tags)

    def _time(self, doc: Any, out: Output) -> int | bool | None:
        """The timestamp at the rule's `time` path; None for receive time, False on error."""
        if self.time is None:
            return None
        raw = resolve_path(doc, self.time)
        if raw is MISSING or raw is None:
            out.problem("the payload has no timestamp at the rule's `time` path")
            return False
        try:
            return read_time(raw, self.time_format, self.zone)
        except TimestampError as exc:
            out.problem(f"time: {exc}")
            return False


def read_time(raw: Any, time_format: str, zone: ZoneInfo | None) -> int:
    """UTC microseconds of a payload timestamp in the given format."""
    if time_format in ("s", "ms", "us", "ns"):
        number = number_of(raw) if not isinstance(raw, bool) else None
        if number is None:
            raise TimestampError(f"{str(raw)[:40]!r} is not an epoch number")
        value = int(number) if number.is_integer() else number
        return epoch_to_us(value, time_format)
    if isinstance(raw, str) and zone is not None:
        try:
            local = datetime.fromisoformat(raw.strip())
        except ValueError:
            raise TimestampError(f"{raw[:40]!r} is not an ISO date and time") from None
        if local.tzinfo is None:
            delta = local.replace(tzinfo=zone) - _EPOCH
            us = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
            if not MIN_US <= us <= MAX_US:
                raise TimestampError("timestamp is outside 1900-01-01 .. 9999-12-31")
            return us
    if time_format == "iso" and not isinstance(raw, str):
        raise TimestampError("expected an ISO 8601 / RFC 3339 string")
    return parse_timestamp(raw, None)
