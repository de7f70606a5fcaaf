"""What every wire-format parser gets and gives: `parse(body, ctx) -> Batch`, no I/O."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ...errors import FieldError, ValidationFailed
from ...model import Batch, SeriesKey, SeriesMeta

MAX_FIELD_ERRORS = 100


@dataclass(frozen=True, slots=True)
class ParseContext:
    tenant_id: int
    now_us: int
    max_future_us: int  # timestamps above this are refused
    precision: str | None = None
    params: dict[str, str] = field(default_factory=dict)


Parser = Callable[[bytes, ParseContext], Batch]


class BatchBuilder:
    """Collects points column by column; one series id per (metric, tags) seen."""

    def __init__(self, tenant_id: int) -> None:
        self.tenant_id = tenant_id
        self.sids: list[int] = []
        self.ts: list[int] = []
        self.values: list[float] = []
        self.series: dict[int, SeriesMeta] = {}
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

    def error(self, loc: str, msg: str) -> None:
        if len(self.errors) < MAX_FIELD_ERRORS:
            self.errors.append(FieldError(loc, msg))

    def build(self) -> Batch:
        if self.errors:
            raise ValidationFailed(self.errors)
        if not self.sids:
            raise ValidationFailed([FieldError("body", "the batch holds no points")])
        return Batch(
            self.tenant_id,
            np.array(self.sids, dtype=np.int64),
            np.array(self.ts, dtype=np.int64),
            np.array(self.values, dtype=np.float64),
            self.series,
        )
