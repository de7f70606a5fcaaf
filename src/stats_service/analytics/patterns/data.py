"""The input of every pattern analysis: series read as aligned, evenly spaced buckets.

`load` reads the bucket means of one or more series of a tenant with the store's
aggregate reader (`query.aggregate`, tier and cold-file aware), linearly interpolates
empty buckets between two with data, trims the empty buckets at both ends (common to
all series, so the series stay aligned) and reports what it did (`gaps`). Input larger
than `max_points` (raw points read, or buckets times series) is refused with a 400
naming the limit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np

from ...errors import BadParameter, BadRequest, FieldError
from ...model import Float64Array, Int64Array
from ...query import aggregate as aggregates
from ...query.buckets import Buckets
from ...query.columns import series_id, times
from ...query.params import TimeRange
from ...query.series import SeriesInfo, series_by_ids
from ...storage.marks_cache import ColdCatalog, MarksCache

LIMIT_SETTING = "analysis_max_points"


@dataclass(frozen=True, slots=True)
class Grid:
    """Aligned buckets of one or more series: `starts` (UTC microseconds of each bucket)
    and one float array per series in `values` (no NaN: gaps are interpolated)."""

    width_us: int
    starts: Int64Array
    values: list[Float64Array]
    series: list[SeriesInfo]
    gaps: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.starts.shape[0])

    @property
    def width_s(self) -> float:
        return self.width_us / 1_000_000

    def time(self, index: int) -> str:
        return times(self.starts[index : index + 1])[0]

    def head(self) -> dict[str, Any]:
        """What every answer starts with: the series, the range and the bucket grid."""
        span = times(np.array([self.starts[0], self.starts[-1] + self.width_us], dtype=np.int64))
        return {
            "series": [_series(info) for info in self.series],
            "from": span[0],
            "to": span[1],
            "bucket": duration_text(self.width_s),
            "buckets": self.n,
            "gaps": self.gaps,
        }


def _series(info: SeriesInfo) -> dict[str, Any]:
    return {
        "series_id": series_id(info.id),
        "metric": info.metric,
        "device": info.device,
        "tags": info.tags,
        "unit": info.unit,
    }


def check_size(buckets: Buckets, span: TimeRange, series: int, max_points: int) -> None:
    """Refuse a grid of more buckets than the limit before reading anything."""
    cells = ((span.to_us - span.from_us + buckets.width_us - 1) // buckets.width_us) * series
    if cells > max_points:
        raise BadParameter(
            "bucket",
            f"the range holds {cells} buckets ({series} series), more than the analysis "
            f"limit {LIMIT_SETTING}={max_points}; use a wider bucket or a shorter range",
        )


def owned(cur: duckdb.DuckDBPyConnection, tenant_id: int, ids: list[int]) -> list[SeriesInfo]:
    """The tenant's series of `ids`; 404 for an unknown one or another tenant's."""
    return series_by_ids(cur, tenant_id, ids)


def load(
    cur: duckdb.DuckDBPyConnection,
    tenant_id: int,
    ids: list[int],
    span: TimeRange,
    buckets: Buckets,
    *,
    max_points: int,
    min_buckets: int,
    marks: MarksCache | None = None,
    cold: ColdCatalog | None = None,
) -> Grid:
    """Bucket means of the series of `ids` on one grid (see the module's doc)."""
    check_size(buckets, span, len(ids), max_points)
    infos = owned(cur, tenant_id, ids)
    query = aggregates.AggregateQuery(span, buckets, ("mean",), "linear")
    bodies = aggregates.aggregate(cur, tenant_id, ids, query, scoped=True, marks=marks, cold=cold)
    read = sum(sum(body["count"]) for body in bodies)
    if read > max_points:
        raise BadRequest(
            f"the range holds {read} points, more than the analysis limit "
            f"{LIMIT_SETTING}={max_points}; shorten the range (from, to)",
            errors=[FieldError("query.from", f"{read} points to read; at most {max_points}")],
        )
    starts = buckets.starts(buckets.keys(span.from_us, span.to_us))
    columns = [np.array([np.nan if v is None else v for v in b["mean"]], float) for b in bodies]
    counts = [np.asarray(b["count"], dtype=np.int64) for b in bodies]
    known = np.ones(starts.shape[0], dtype=bool)
    for column in columns:
        known &= np.isfinite(column)
    inside = np.flatnonzero(known)
    if inside.shape[0] < min_buckets:
        names = ", ".join(str(i) for i in ids)
        raise BadRequest(
            f"series {names}: {inside.shape[0]} buckets with data in the range, at least "
            f"{min_buckets} are needed; widen the range (from, to) or use a smaller bucket",
            errors=[FieldError("query.from", "too few buckets with data in the range")],
        )
    lo, hi = int(inside[0]), int(inside[-1]) + 1
    empty = sum(int((c[lo:hi] == 0).sum()) for c in counts)
    gaps = {
        "interpolated": empty,
        "trimmed_start": lo,
        "trimmed_end": int(starts.shape[0] - hi),
        "note": "empty buckets inside the range are interpolated linearly; empty buckets "
        "at its ends are left out",
    }
    return Grid(buckets.width_us, starts[lo:hi], [c[lo:hi] for c in columns], infos, gaps)


_UNITS = (("d", 86_400), ("h", 3600), ("m", 60), ("s", 1))


def duration_text(seconds: float) -> str:
    """`1h`, `1h30m`, `90s` -> `1m30s`, `0.5s`, `-4m`: a compact duration."""
    if seconds < 0:
        return "-" + duration_text(-seconds)
    if seconds == 0 or seconds != int(seconds):
        return f"{seconds:g}s"
    rest = int(seconds)
    parts = []
    for unit, size in _UNITS:
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(parts)


def period_of(buckets: float, width_s: float) -> dict[str, Any]:
    """A period (or lag, window) in buckets, in seconds and as a duration (rounded to
    whole buckets, the resolution of the data)."""
    seconds = buckets * width_s
    return {
        "buckets": round(float(buckets), 3),
        "seconds": round(seconds, 3),
        "duration": duration_text(round(round(buckets) * width_s, 3)),
    }
