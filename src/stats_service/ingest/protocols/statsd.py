"""StatsD (Etsy) and DogStatsD lines, aggregated over one flush interval.

The UDP listener (`listeners/statsd.py`) collects the datagrams of one interval and hands
them on as one body, the datagrams joined by newlines, with these params:

    flush_us     end of the interval (UTC microseconds): the timestamp of every point
    interval_s   length of the interval in seconds (counter and timer rates)
    gauges       JSON [[name, {tags}, value], ...]: the earlier values of the gauges that
                 this body changes relatively (`+N` / `-N`)
    percentiles  comma-separated percentiles of timers, e.g. "50,90,95,99"

so that the aggregation is a pure function of body + params and `replay` re-creates
exactly the points that were written. A line is

    <name>:<value>[:<value>...]|<type>[|@<sample rate>][|#<tag>[:<value>],...]

with type c (counter), g (gauge), s (set), ms (timer), h (histogram) or d (distribution).
What each type becomes is in docs/protocols/statsd.md. A malformed line is skipped
(`BatchBuilder.drop`) and the rest of the interval is written.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np
import orjson

from ...errors import BadRequest
from ...model import DEVICE_TAG, Batch
from .base import BatchBuilder, ParseContext
from .json_v1 import DEVICE_MSG, DEVICE_RE, MAX_NAME, MAX_TAG_VALUE, MAX_TAGS, TAG_KEY_RE

GaugeKey = tuple[str, tuple[tuple[str, str], ...]]  # metric name, sorted tags

DEFAULT_PERCENTILES: tuple[float, ...] = (50.0, 90.0, 95.0, 99.0)
DEFAULT_INTERVAL_S = 10.0
TIMER_TYPES = frozenset({"ms", "h", "d"})
TYPES = frozenset({"c", "g", "s"}) | TIMER_TYPES
HOST_TAG = "host"
TIMER_UNIT = "ms"
RATE_UNIT = "1/s"
NUMBER_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
TIMESTAMP_RE = re.compile(r"T\d+")
_SPACES = re.compile(r"\s+")
_NOT_NAME = re.compile(r"[^a-zA-Z0-9_.\-]")


class LineError(ValueError):
    """Why one line is skipped."""


@dataclass(frozen=True, slots=True)
class Line:
    """One parsed StatsD line: every value of it shares name, type, rate and tags."""

    name: str
    kind: str
    values: tuple[str, ...]
    rate: float
    tags: tuple[tuple[str, str], ...]

    @property
    def key(self) -> GaugeKey:
        return self.name, self.tags


@dataclass(slots=True)
class _Samples:
    """The values of one timer, histogram or distribution in the interval."""

    values: list[float] = field(default_factory=list)
    count: float = 0.0  # scaled by the sample rates
    milliseconds: bool = False


# -- lines ------------------------------------------------------------------------------


def sanitize_name(raw: str) -> str:
    """Etsy statsd's key rule: whitespace -> `_`, `/` -> `-`, other characters than
    letters, digits, `_ - .` removed."""
    return _NOT_NAME.sub("", _SPACES.sub("_", raw).replace("/", "-"))


def parse_line(text: str, default_device: str | None = None) -> Line:
    """One line; raises LineError with the reason when it cannot be used."""
    return LineParser(default_device)(text)


class LineParser:
    """Parses the lines of one body. Names and tag sections repeat from line to line, so
    what they become (or why they are refused) is remembered."""

    def __init__(self, default_device: str | None = None) -> None:
        self.default_device = default_device
        self._names: dict[str, str] = {}
        self._tags: dict[str, tuple[tuple[str, str], ...] | str] = {}  # str: why refused

    def __call__(self, text: str) -> Line:
        if text.startswith("_e{"):
            raise LineError("DogStatsD events are not stored (skipped)")
        if text.startswith("_sc|"):
            raise LineError("DogStatsD service checks are not stored (skipped)")
        head, sep, rest = text.partition("|")
        if not sep:
            raise LineError("expected <name>:<value>|<type>")
        raw_name, colon, raw_values = head.partition(":")
        if not colon:
            raise LineError("expected <name>:<value>|<type> (no `:` after the name)")
        name = self._names.get(raw_name)
        if name is None:
            name = self._names[raw_name] = sanitize_name(raw_name)
        if not name or len(name) > MAX_NAME:
            raise LineError(f"metric names are 1-{MAX_NAME} of the characters a-z A-Z 0-9 _ - .")
        sections = rest.split("|")
        kind = sections[0]
        if kind not in TYPES:
            raise LineError(f"unknown metric type {kind[:20]!r}; use c, g, s, ms, h or d")
        values = tuple(raw_values.split(":"))
        for value in values:
            _check_value(kind, value)
        rate = 1.0
        tag_text = ""
        for section in sections[1:]:
            if section.startswith("@"):
                rate = _rate(section[1:])
            elif section.startswith("#"):
                tag_text = section[1:]
            elif section.startswith("c:") or TIMESTAMP_RE.fullmatch(section):
                continue  # DogStatsD container id / client timestamp: points use flush time
            else:
                raise LineError(f"unknown field {section[:20]!r}; expected @rate or #tags")
        tags = self._tags.get(tag_text)
        if tags is None:
            try:
                tags = tag_tuple(tag_text, self.default_device)
            except LineError as exc:
                tags = str(exc)
            self._tags[tag_text] = tags
        if isinstance(tags, str):
            raise LineError(tags)
        return Line(name, kind, values, rate, tags)


def tag_tuple(text: str, default_device: str | None) -> tuple[tuple[str, str], ...]:
    """The sorted tags of a DogStatsD tag section (without its `#`)."""
    tags = _tags(text)
    _device(tags, default_device)
    return tuple(sorted(tags.items()))


def _check_value(kind: str, value: str) -> None:
    if kind == "s":
        if not value:
            raise LineError("a set member must not be empty")
        return
    if not NUMBER_RE.fullmatch(value):
        raise LineError(f"value {value[:30]!r} is not a number")
    if kind == "ms" and value.startswith("-"):
        raise LineError("a timer value must not be negative")
    if not math.isfinite(float(value)):
        raise LineError(f"value {value[:30]!r} is not a finite number")


def _rate(text: str) -> float:
    try:
        rate = float(text) if NUMBER_RE.fullmatch(text) else math.nan
    except ValueError:
        rate = math.nan
    if not 0 < rate <= 1:
        raise LineError(f"sample rate @{text[:20]} must be a number in (0, 1]")
    return rate


def _tags(text: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    parts = [p for p in text.split(",") if p]
    if len(parts) > MAX_TAGS:
        raise LineError(f"at most {MAX_TAGS} tags")
    for part in parts:
        key, colon, value = part.partition(":")
        if not colon:
            value = "true"
        if not TAG_KEY_RE.fullmatch(key):
            raise LineError(f"tag name {key[:40]!r}: 1-64 letters, digits, _ . : - ")
        if not 0 < len(value) <= MAX_TAG_VALUE:
            raise LineError(f"tag {key!r}: values are 1-{MAX_TAG_VALUE} characters")
        if key in tags:
            raise LineError(f"tag {key!r} is given twice")
        tags[key] = value
    return tags


def _device(tags: dict[str, str], default_device: str | None) -> None:
    """The tag `device`, else `host`, names the device (as everywhere else)."""
    if DEVICE_TAG not in tags and HOST_TAG in tags:
        tags[DEVICE_TAG] = tags.pop(HOST_TAG)
    device = tags.get(DEVICE_TAG)
    if device is None:
        if default_device is not None:
            tags[DEVICE_TAG] = default_device
        return
    if not DEVICE_RE.fullmatch(device):
        raise LineError(f"device {device[:40]!r} {DEVICE_MSG}")


def split_lines(body: bytes) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, line) of every non-empty line."""
    for number, raw in enumerate(body.split(b"\n"), 1):
        line = raw.strip()
        if line:
            yield number, line


def read_lines(
    lines: Iterable[tuple[int, bytes]], builder: BatchBuilder | None, default_device: str | None
) -> Iterator[tuple[int, Line]]:
    """Parsed lines; each bad one is dropped on the builder (when given) with its reason."""
    parse_one = LineParser(default_device)
    for number, raw in lines:
        try:
            yield number, parse_one(raw.decode("utf-8"))
        except UnicodeDecodeError:
            if builder is not None:
                builder.drop(f"line {number}", "is not UTF-8")
        except LineError as exc:
            if builder is not None:
                builder.drop(f"line {number}", str(exc))


# -- gauges -----------------------------------------------------------------------------


def apply_gauge(line: Line, fallback: float) -> float:
    """The gauge after `line`: `+N` and `-N` change `fallback` (its value so far, 0 when
    it has none), anything else sets it. As in Etsy statsd, `-5` always means "five
    less": a negative value is set by sending 0 first. Raises LineError when the result
    would leave the float range (the gauge then keeps its value)."""
    value = fallback
    for text in line.values:
        number = float(text)
        value = value + number if text[0] in "+-" else number
    if not math.isfinite(value):
        raise LineError("the gauge would leave the float range; it keeps its value")
    return value


def gauge_updates(
    body: bytes, carried: Mapping[GaugeKey, float], default_device: str | None = None
) -> tuple[dict[GaugeKey, float], dict[GaugeKey, float]]:
    """Looks only at gauge lines: (the carried values that relative lines of this body
    need, the value of every gauge after the body). The listener sends the first as the
    `gauges` param and keeps the second for the next interval, without aggregating
    everything twice; `aggregate` reaches the same values."""
    needed: dict[GaugeKey, float] = {}
    updated: dict[GaugeKey, float] = {}
    candidates = ((n, raw) for n, raw in split_lines(body) if b"|g" in raw)
    for _, line in read_lines(candidates, None, default_device):
        if line.kind != "g":
            continue
        key = line.key
        if key not in updated and key in carried and line.values[0][0] in "+-":
            needed[key] = carried[key]
        start = updated.get(key, carried.get(key, 0.0))
        with contextlib.suppress(LineError):  # aggregate() drops such a line
            updated[key] = apply_gauge(line, start)
    return needed, updated


def encode_gauges(gauges: Mapping[GaugeKey, float]) -> str:
    rows = [[name, dict(tags), value] for (name, tags), value in gauges.items()]
    return orjson.dumps(rows).decode()


def decode_gauges(text: str | None) -> dict[GaugeKey, float]:
    if not text:
        return {}
    try:
        rows = orjson.loads(text)
        return {
            (str(name), tuple(sorted((str(k), str(v)) for k, v in tags.items()))): float(value)
            for name, tags, value in rows
        }
    except (orjson.JSONDecodeError, TypeError, ValueError, AttributeError):
        raise BadRequest("param `gauges` must be JSON [[name, {tags}, value], ...]") from None


# -- one interval -----------------------------------------------------------------------


def parse_percentiles(text: str) -> tuple[float, ...]:
    """Parses e.g. `50,90,99.9` into (50.0, 90.0, 99.9); raises ValueError."""
    found: list[float] = []
    for part in text.split(","):
        if not part.strip():
            continue
        value = float(part)
        if not 0 < value <= 100:
            raise ValueError(f"percentile {part.strip()} is not in (0, 100]")
        if value not in found:
            found.append(value)
    return tuple(found)


def percentile_name(p: float) -> str:
    return "p" + f"{p:g}".replace(".", "_")


def aggregate(
    lines: Iterable[tuple[int, bytes]],
    builder: BatchBuilder,
    carried: Mapping[GaugeKey, float],
    interval_s: float,
    flush_us: int,
    percentiles: tuple[float, ...] = DEFAULT_PERCENTILES,
    default_device: str | None = None,
) -> dict[GaugeKey, float]:
    """Adds the points of one interval to `builder` (all stamped `flush_us`) and returns
    the value of every gauge the interval set.

    One name (with its tags) takes one type per interval: a gauge wins, otherwise the
    first type seen; the lines of another type are dropped with the reason."""
    parsed = list(read_lines(lines, builder, default_device))
    gauge_keys = {line.key for _, line in parsed if line.kind == "g"}
    kinds: dict[GaugeKey, str] = {}
    counters: dict[GaugeKey, float] = {}
    timers: dict[GaugeKey, _Samples] = {}
    sets: dict[GaugeKey, set[str]] = {}
    gauges: dict[GaugeKey, float] = {}
    for number, line in parsed:
        key = line.key
        family = "timer" if line.kind in TIMER_TYPES else line.kind
        if line.kind == "g":
            try:
                gauges[key] = apply_gauge(line, gauges.get(key, carried.get(key, 0.0)))
            except LineError as exc:
                builder.drop(f"line {number}", str(exc))
            continue
        if family != "timer":
            first = "g" if key in gauge_keys else kinds.setdefault(key, family)
            if first != family:
                builder.drop(
                    f"line {number}",
                    f"{line.name} is a {_KIND_NAMES[first]} in this interval; "
                    "one name (and tags) takes one type",
                )
                continue
        if family == "c":
            counters[key] = counters.get(key, 0.0) + sum(float(v) for v in line.values) / line.rate
        elif family == "s":
            sets.setdefault(key, set()).update(line.values)
        else:
            samples = timers.get(key)
            if samples is None:
                samples = timers[key] = _Samples()
            samples.values.extend(float(v) for v in line.values)
            samples.count += len(line.values) / line.rate
            samples.milliseconds = samples.milliseconds or line.kind == "ms"
    for (name, tags), total in counters.items():
        _point(builder, name, tags, None, flush_us, total)
        _point(builder, f"{name}.rate", tags, RATE_UNIT, flush_us, total / interval_s)
    for (name, tags), samples in timers.items():
        _add_timer(builder, name, tags, samples, flush_us, percentiles)
    for (name, tags), value in gauges.items():
        _point(builder, name, tags, None, flush_us, value)
    for (name, tags), members in sets.items():
        _point(builder, name, tags, None, flush_us, float(len(members)))
    return gauges


def _point(
    builder: BatchBuilder,
    name: str,
    tags: tuple[tuple[str, str], ...],
    unit: str | None,
    ts: int,
    value: float,
) -> None:
    if math.isfinite(value):
        builder.add(builder.series_id(name, tags, unit), ts, value)
    else:  # e.g. a sum of values near the float limit, or a sample rate scaling one
        builder.drop(name, "the aggregate of the interval is not a finite number")


_KIND_NAMES = {"c": "counter", "g": "gauge", "s": "set"}


def _add_timer(
    builder: BatchBuilder,
    name: str,
    tags: tuple[tuple[str, str], ...],
    samples: _Samples,
    flush_us: int,
    percentiles: tuple[float, ...],
) -> None:
    unit = TIMER_UNIT if samples.milliseconds else None
    values = np.asarray(samples.values, dtype=np.float64)
    with np.errstate(all="ignore"):  # overflow to inf is dropped by _point
        total = float(values.sum())
        stats: list[tuple[str, float, str | None]] = [
            ("count", samples.count, None),
            ("sum", total, unit),
            ("min", float(values.min()), unit),
            ("max", float(values.max()), unit),
            ("mean", total / len(values), unit),
        ]
        if percentiles:
            ranks = np.percentile(values, percentiles)
            stats.extend(
                (percentile_name(p), float(r), unit)
                for p, r in zip(percentiles, ranks, strict=True)
            )
    for suffix, value, stat_unit in stats:
        _point(builder, f"{name}.{suffix}", tags, stat_unit, flush_us, value)


def parse(body: bytes, ctx: ParseContext) -> Batch:
    """One flush interval (see the module docstring for its params)."""
    params = ctx.params
    try:
        flush_us = int(params.get("flush_us") or ctx.now_us)
        interval_s = float(params.get("interval_s") or DEFAULT_INTERVAL_S)
        percentiles = (
            parse_percentiles(params["percentiles"])
            if "percentiles" in params
            else DEFAULT_PERCENTILES
        )
    except ValueError as exc:
        raise BadRequest(f"invalid StatsD params: {exc}") from None
    if not (interval_s > 0 and math.isfinite(interval_s)):
        raise BadRequest("param `interval_s` must be a positive number of seconds")
    if flush_us > ctx.max_future_us:
        raise BadRequest("param `flush_us` lies in the future")
    builder = BatchBuilder(ctx.tenant_id)
    carried = decode_gauges(params.get("gauges"))
    aggregate(split_lines(body), builder, carried, interval_s, flush_us, percentiles, ctx.device)
    return builder.build(allow_empty=True)
