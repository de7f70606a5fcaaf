"""What every MQTT payload format shares: the message, topic filters, JSON paths, output.

A format (preset or configured rule) is a `Handler`: the topic filters it subscribes to
and `handle(msg, out)`, which turns one message into points and text values through
`Output` or says that the message is not its own (returns False).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from ....model import DEVICE_TAG
from ...timestamps import format_us
from ..base import BatchBuilder
from ..json_v1 import DEVICE_RE

MAX_NAME = 200
MAX_TEXT = 4096
MAX_UNIT = 32
MAX_PROBLEMS = 3

Tags = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Message:
    """One received MQTT message as archived in the bundle."""

    topic: str
    payload: bytes
    received_us: int
    retain: bool = False

    @property
    def levels(self) -> list[str]:
        return self.topic.split("/")

    def text(self) -> str:
        """The payload as text (UTF-8), surrounding whitespace removed."""
        return self.payload.decode("utf-8").strip()

    def json(self) -> Any:
        """The payload as JSON; raises ValueError when it is not."""
        return orjson.loads(self.payload)


class Handler(Protocol):
    @property
    def filters(self) -> tuple[str, ...]:
        """The topic filters this handler subscribes to."""

    def handle(self, msg: Message, out: Output) -> bool:
        """Add what `msg` holds to `out`; False when the message is not this handler's."""


def filter_matches(topic_filter: str, topic: str) -> bool:
    """MQTT topic filter matching (`+` one level, `#` the rest, including the parent)."""
    flevels = topic_filter.split("/")
    tlevels = topic.split("/")
    if tlevels[0].startswith("$") and flevels[0] in ("+", "#"):
        return False  # $SYS and friends only match filters that name them
    for i, level in enumerate(flevels):
        if level == "#":
            return True
        if i >= len(tlevels):
            return False
        if level != "+" and level != tlevels[i]:
            return False
    return len(tlevels) == len(flevels)


def check_filter(topic_filter: str) -> str | None:
    """Why a topic filter is invalid, or None."""
    if not topic_filter or len(topic_filter.encode()) > 65535:
        return "must be 1-65535 bytes"
    levels = topic_filter.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return "`#` must be a whole level and the last one"
        if "+" in level and level != "+":
            return "`+` must be a whole level"
    return None


def filter_covers(wide: str, narrow: str) -> bool:
    """True when every topic matching `narrow` also matches `wide` (for de-duplication)."""
    wl, nl = wide.split("/"), narrow.split("/")
    for i, level in enumerate(wl):
        if level == "#":
            return True
        if i >= len(nl):
            return False
        if nl[i] == "#":
            return False
        if level != "+" and (nl[i] == "+" or level != nl[i]):
            return False
    return len(wl) == len(nl)


def minimal_filters(filters: list[str]) -> list[str]:
    """The filters without those another one covers, so no message arrives twice."""
    unique = list(dict.fromkeys(filters))
    return [f for f in unique if not any(g != f and filter_covers(g, f) for g in unique)]


# -- JSON paths ($.a.b, $.a[0], $['a b']) ---------------------------------------------

_PATH_PART = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]")


def compile_path(path: str) -> tuple[str | int, ...]:
    """The steps of a JSON path; raises ValueError when it is not one we support."""
    if not path.startswith("$"):
        raise ValueError(f"JSON path {path!r} must start with `$` (e.g. $.ENERGY.Power)")
    steps: list[str | int] = []
    pos = 1
    while pos < len(path):
        match = _PATH_PART.match(path, pos)
        if match is None:
            raise ValueError(
                f"JSON path {path!r}: cannot read from {path[pos:]!r}; use .name, [0] or ['name']"
            )
        name, index, quoted, dquoted = match.groups()
        if index is not None:
            steps.append(int(index))
        else:
            steps.append(next(s for s in (name, quoted, dquoted) if s is not None))
        pos = match.end()
    return tuple(steps)


_MISSING = object()


def resolve_path(doc: Any, steps: tuple[str | int, ...]) -> Any:
    """The value at `steps`, or `MISSING` when the document has nothing there."""
    for step in steps:
        if isinstance(step, int):
            if not isinstance(doc, list) or step >= len(doc):
                return _MISSING
            doc = doc[step]
        else:
            if not isinstance(doc, dict) or step not in doc:
                return _MISSING
            doc = doc[step]
    return doc


MISSING = _MISSING


def number_of(value: Any) -> float | None:
    """A finite number from a JSON number, a boolean (1/0) or a numeric string."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def leaves(doc: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted path, value) of every scalar under an object; list items get `.0`, `.1`."""
    found: list[tuple[str, Any]] = []
    items: Any
    if isinstance(doc, dict):
        items = doc.items()
    elif isinstance(doc, list):
        items = ((str(i), v) for i, v in enumerate(doc))
    else:
        return [(prefix, doc)]
    for key, value in items:
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict | list):
            found.extend(leaves(value, path))
        else:
            found.append((path, value))
    return found


# -- output --------------------------------------------------------------------------


@dataclass(slots=True)
class Output:
    """Where a handler puts what one message holds; collects the message's problems.

    Points go straight into the bundle's builder; the problems of one message become
    one dropped entry, so `dropped_count` counts messages, not values.
    """

    builder: BatchBuilder
    received_us: int
    max_future_us: int
    problems: list[str] = field(default_factory=list)
    added: int = 0

    def problem(self, msg: str) -> None:
        self.problems.append(msg)

    def _series(self, device: str | None, metric: str, unit: str | None, tags: Tags) -> int | None:
        if device is not None and not DEVICE_RE.fullmatch(device):
            self.problem(
                f"device {device[:80]!r} must be 1-128 letters, digits and . _ : @ - "
                "(starting with a letter or digit)"
            )
            return None
        if not 0 < len(metric) <= MAX_NAME or any(ord(c) < 32 for c in metric):
            self.problem(f"metric names are 1-{MAX_NAME} printable characters: {metric[:80]!r}")
            return None
        if unit is not None and not 0 < len(unit) <= MAX_UNIT:
            unit = None
        all_tags = dict(tags)
        if device is not None:
            all_tags[DEVICE_TAG] = device
        return self.builder.series_id(metric, tuple(sorted(all_tags.items())), unit)

    def _ts(self, ts: int | None) -> int | None:
        if ts is None:
            return self.received_us
        if ts > self.max_future_us:
            self.problem(f"{format_us(ts)} lies too far in the future; check the device clock")
            return None
        return ts

    def number(
        self,
        device: str | None,
        metric: str,
        value: float,
        *,
        ts: int | None = None,
        unit: str | None = None,
        tags: Tags = (),
    ) -> None:
        at = self._ts(ts)
        sid = self._series(device, metric, unit, tags)
        if sid is None or at is None:
            return
        if not math.isfinite(value):
            self.problem(f"{metric}: {value} is not a finite number")
            return
        self.builder.add(sid, at, value)
        self.added += 1

    def text(
        self,
        device: str | None,
        metric: str,
        text: str,
        *,
        ts: int | None = None,
        unit: str | None = None,
        tags: Tags = (),
    ) -> None:
        if len(text) > MAX_TEXT:
            self.problem(f"{metric}: text values are at most {MAX_TEXT} characters")
            return
        at = self._ts(ts)
        sid = self._series(device, metric, unit, tags)
        if sid is None or at is None:
            return
        self.builder.add_state(sid, at, text)
        self.added += 1

    def auto(
        self,
        device: str | None,
        metric: str,
        value: Any,
        *,
        ts: int | None = None,
        unit: str | None = None,
        tags: Tags = (),
    ) -> None:
        """A number when the value is one (or a numeric string), else a text value."""
        number = number_of(value)
        if number is not None:
            self.number(device, metric, number, ts=ts, unit=unit, tags=tags)
        elif isinstance(value, str):
            self.text(device, metric, value, ts=ts, unit=unit, tags=tags)
        elif value is None:
            self.problem(f"{metric}: null is not a value")
        else:
            self.text(device, metric, orjson.dumps(value).decode(), ts=ts, unit=unit, tags=tags)

    def merge(self, other: BatchBuilder) -> None:
        """Take the points of a builder a shared parser filled (ThingsBoard documents)."""
        b = self.builder
        for sid, meta in other.series.items():
            if sid not in b.series:
                b.series[sid] = meta
            elif meta.unit and not b.series[sid].unit:
                b.series[sid].unit = meta.unit
        b.sids.extend(other.sids)
        b.ts.extend(other.ts)
        b.values.extend(other.values)
        b.state_sids.extend(other.state_sids)
        b.state_ts.extend(other.state_ts)
        b.state_text.extend(other.state_text)
        self.added += other.count
        for error in other.dropped:
            self.problem(f"{error.loc}: {error.msg}")
