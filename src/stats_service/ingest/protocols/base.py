"""What every wire-format parser gets and gives: `parse(body, ctx) -> Batch`, no I/O."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ...errors import FieldError, ValidationFailed
from ...model import Batch, SeriesKey, SeriesMeta, States

MAX_FIELD_ERRORS = 100


@dataclass(frozen=True, slots=True)
class ParseContext:
    tenant_id: int
    now_us: int
    max_future_us: int  # timestamps above this are refused
    precision: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    device: str | None = None  # set for a device key: the device every point belongs to


Parser = Callable[[bytes, ParseContext], Batch]


class BatchBuilder:
    """Collects points column by column; one series id per (metric, tags) seen."""

    def __init__(self, tenant_id: int) -> None:
        self.tenant_id = tenant_id
        self.sids: list[int] = []
        self.ts: list[int] = []
        self.values: list[float] = []
        self.series: dict[int, SeriesMeta] = {}
        self.state_sids: list[int] = []
        self.state_ts: list[int] = []
        self.state_text: list[str] = []
        self.dropped: list[FieldError] = []
        self.dropped_count = 0
        self._ids: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}
        self._by_tags: dict[tuple[tuple[str, str], ...], dict[str, int]] = {}
        self.errors: list[FieldError] = []

    def ids_for(self, tags: tuple[tuple[str, str], ...]) -> dict[str, int]:
        """Metric name -> series id of the series already seen with these tags."""
        ids = self._by_tags.get(tags)
        if ids is None:
            ids = self._by_tags[tags] = {}
        return ids

    def series_id(self, metric: str, tags: tuple[tuple[str, str], ...], unit: str | None) -> int:
        cache_key = (metric, tags)
        sid = self._ids.get(cache_key)
        if sid is None:
            key = SeriesKey(self.tenant_id, metric, tags)
            sid = key.series_id
            self._ids[cache_key] = sid
            self.ids_for(tags)[metric] = sid
            self.series[sid] = SeriesMeta(key, unit)
        elif unit and not self.series[sid].unit:
            self.series[sid].unit = unit
        return sid

    def add(self, sid: int, ts: int, value: float) -> None:
        self.sids.append(sid)
        self.ts.append(ts)
        self.values.append(value)

    def add_state(self, sid: int, ts: int, text: str) -> None:
        """A text value (a state such as "on" or a firmware version), kept as text."""
        self.state_sids.append(sid)
        self.state_ts.append(ts)
        self.state_text.append(text)

    def error(self, loc: str, msg: str) -> None:
        """A mistake that refuses the whole request (strict formats such as JSON v1)."""
        if len(self.errors) < MAX_FIELD_ERRORS:
            self.errors.append(FieldError(loc, msg))

    def drop(self, loc: str, msg: str) -> None:
        """A line or message skipped by a lenient format; the rest is still written."""
        self.dropped_count += 1
        if len(self.dropped) < MAX_FIELD_ERRORS:
            self.dropped.append(FieldError(loc, msg))

    @property
    def count(self) -> int:
        return len(self.sids) + len(self.state_sids)

    def build(self, *, allow_empty: bool = False) -> Batch:
        """The batch. Strict errors refuse it whole; dropped lines refuse it only when
        nothing valid is left (then the dropped lines are the errors)."""
        if self.errors:
            raise ValidationFailed(self.errors)
        if not self.count:
            if self.dropped:
                raise ValidationFailed(self.dropped)
            if not allow_empty:
                raise ValidationFailed([FieldError("body", "the batch holds no points")])
        states = None
        if self.state_sids:
            states = States(
                np.array(self.state_sids, dtype=np.int64),
                np.array(self.state_ts, dtype=np.int64),
                self.state_text,
            )
        return Batch(
            self.tenant_id,
            np.array(self.sids, dtype=np.int64),
            np.array(self.ts, dtype=np.int64),
            np.array(self.values, dtype=np.float64),
            self.series,
            states=states,
            dropped=self.dropped,
            dropped_count=self.dropped_count,
        )
