"""Which series a live subscription receives: `device=`, `metric=`, `run=`, `series=` and
`tag.<key>=` of its query string.

Each parameter takes a comma-separated list of alternatives (one of them must match);
all given parameters must hold. A name with `*`, `?` or `[` in it is a glob
(`metric=cpu_*`, `device=esp32-?`). `run=r1` is short for `tag.run=r1` (a run's steps are
points tagged `run=<id>`). No parameter at all selects every series of the tenant.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..errors import BadParameter
from ..model import SeriesKey
from ..query.params import parse_series_ids

GLOB_CHARS = frozenset("*?[")
MAX_ALTERNATIVES = 1000
TAG_PREFIX = "tag."
RUN_TAG = "run"
PARAMETERS = ("key", "device", "metric", "run", "series", "keepalive")
KEEPALIVE_RANGE_S = (1.0, 300.0)


@dataclass(frozen=True, slots=True)
class Names:
    """Alternatives of one parameter: exact names and globs. Empty: no filter."""

    exact: frozenset[str] = frozenset()
    globs: tuple[str, ...] = ()
    _pattern: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def parse(cls, param: str, text: str | None) -> Names:
        if text is None:
            return cls()
        names = list(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))
        if not names:
            raise BadParameter(param, "give at least one name, or leave the parameter out")
        if len(names) > MAX_ALTERNATIVES:
            raise BadParameter(param, f"at most {MAX_ALTERNATIVES} names")
        globs = tuple(n for n in names if GLOB_CHARS & set(n))
        pattern = None
        if globs:
            try:
                pattern = re.compile("|".join(f"(?:{fnmatch.translate(g)})" for g in globs))
            except re.error as exc:
                raise BadParameter(param, f"not a valid glob: {exc}") from None
        return cls(frozenset(n for n in names if n not in globs), globs, pattern)

    def __bool__(self) -> bool:
        return bool(self.exact or self.globs)

    def matches(self, name: str | None) -> bool:
        if not self:
            return True
        if name is None:
            return False
        if name in self.exact:
            return True
        return self._pattern is not None and self._pattern.match(name) is not None

    def describe(self) -> list[str]:
        return sorted(self.exact) + list(self.globs)


@dataclass(frozen=True, slots=True)
class Selection:
    """Series of one tenant that a subscription receives."""

    tenant_id: int
    metrics: Names = Names()
    devices: Names = Names()
    tags: tuple[tuple[str, Names], ...] = ()  # `run=` is the tag `run`
    series: frozenset[int] = frozenset()

    def matches(self, series_id: int, key: SeriesKey) -> bool:
        if key.tenant_id != self.tenant_id:  # never another tenant's series
            return False
        if self.series and series_id not in self.series:
            return False
        if not self.metrics.matches(key.metric) or not self.devices.matches(key.device):
            return False
        if self.tags:
            tags = dict(key.tags)
            return all(names.matches(tags.get(k)) for k, names in self.tags)
        return True

    def describe(self) -> dict[str, object]:
        """The selection as the `hello` message repeats it."""
        return {
            "metric": self.metrics.describe(),
            "device": self.devices.describe(),
            "tags": {k: names.describe() for k, names in self.tags},
            "series": sorted(str(s) for s in self.series),
        }


@dataclass(frozen=True, slots=True)
class Request:
    """A subscription's query string, parsed (the tenant comes later, from the key)."""

    key: str | None
    metrics: Names
    devices: Names
    tags: tuple[tuple[str, Names], ...]
    series: frozenset[int]
    keepalive_s: float | None

    def selection(self, tenant_id: int) -> Selection:
        return Selection(tenant_id, self.metrics, self.devices, self.tags, self.series)


def parse_request(items: Iterable[tuple[str, str]]) -> Request:
    """The query parameters of `WS /v1/live`; a repeated parameter adds alternatives.
    Raises BadParameter naming the parameter."""
    values: dict[str, str] = {}
    for name, value in items:
        if name not in PARAMETERS and not name.startswith(TAG_PREFIX):
            raise BadParameter(
                name,
                "unknown parameter; valid are " + ", ".join(PARAMETERS) + " and tag.<key>",
            )
        values[name] = f"{values[name]},{value}" if name in values else value
    tags: dict[str, Names] = {}
    for name, value in values.items():
        if name.startswith(TAG_PREFIX):
            key = name[len(TAG_PREFIX) :]
            if not key:
                raise BadParameter(name, "give the tag key after `tag.`, e.g. tag.room=kitchen")
            tags[key] = Names.parse(name, value)
    if "run" in values:
        if RUN_TAG in tags:
            raise BadParameter("run", "give run= or tag.run=, not both")
        tags[RUN_TAG] = Names.parse("run", values["run"])
    series = frozenset(parse_series_ids("series", values["series"])) if "series" in values else None
    api_key = (values.get("key") or "").strip()
    return Request(
        key=api_key or None,
        metrics=Names.parse("metric", values.get("metric")),
        devices=Names.parse("device", values.get("device")),
        tags=tuple(sorted(tags.items())),
        series=series or frozenset(),
        keepalive_s=_keepalive(values.get("keepalive")),
    )


def _keepalive(text: str | None) -> float | None:
    if text is None:
        return None
    low, high = KEEPALIVE_RANGE_S
    try:
        seconds = float(text)
    except ValueError:
        raise BadParameter("keepalive", f"{text!r} is not a number of seconds") from None
    if not math.isfinite(seconds) or not low <= seconds <= high:
        raise BadParameter("keepalive", f"must be between {low:g} and {high:g} seconds")
    return seconds
