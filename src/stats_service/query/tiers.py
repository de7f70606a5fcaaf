"""Choose the rollup tier that answers a bucketed aggregate exactly, and its SQL.

A tier can answer a query when every function is computable from the stored count,
sum, min, max, first and last (`ROLLUP_FUNCTIONS`) and every query bucket boundary is a
multiple of the tier's resolution (so each tier bucket lies in exactly one query
bucket; checked on the actual bucket starts, which also covers day buckets in a time
zone whose offset is not a whole number of hours). For each series the coarsest such
tier is read for the whole tier buckets between its watermark floor and `done_until`;
raw points answer the rest (the uneven edges of the range and the recent buckets not
yet rolled up), so the answer equals the one from raw data alone.

Functions that need every point (median, stddev, percentiles) are answered from raw;
when the policy already deleted raw points inside the range the request is refused with
a message that says from when raw data exists, instead of a silently partial answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import duckdb
import numpy as np
import pyarrow as pa

from ..errors import BadParameter
from ..storage.marks_cache import MarksCache
from ..storage.rollup_policy import format_duration
from ..storage.rollups import Mark, read_marks
from .buckets import Buckets
from .params import TimeRange

ROLLUP_FUNCTIONS: dict[str, str] = {
    "count": "sum(n)::BIGINT",
    "mean": "sum(sum) / sum(n)",
    "min": "min(min)",
    "max": "max(max)",
    "sum": "sum(sum)",
    "first": "arg_min(first, first_ts)",
    "last": "arg_max(last, last_ts)",
}
_NEVER = -(2**62)


@dataclass(frozen=True, slots=True)
class Plan:
    """Per series: the tier read for [lo, hi) (tier 0: none), raw for the rest."""

    series: list[int]
    tier_us: list[int]
    lo: list[int]
    hi: list[int]
    labels: list[str]  # what answered, e.g. ["1h", "raw"]
    wanted: tuple[int, int]  # [from, to) asked for
    answered: tuple[int, int]  # [from, to) of the data read: wider than asked only where
    # raw points at an uneven edge were already deleted

    @property
    def head(self) -> dict[str, object]:
        """Fields of the answer: `tiers`, and `answered_from`/`answered_to` if widened."""
        out: dict[str, object] = {"tiers": self.labels}
        if self.answered[0] < self.wanted[0]:
            out["answered_from"] = _iso(self.answered[0])
        if self.answered[1] > self.wanted[1]:
            out["answered_to"] = _iso(self.answered[1])
        return out

    def table(self) -> pa.Table:
        return pa.table(
            {
                "series_id": pa.array(self.series, pa.int64()),
                "tier_us": pa.array(self.tier_us, pa.int64()),
                "lo": pa.array(self.lo, pa.int64()).cast(pa.timestamp("us")),
                "hi": pa.array(self.hi, pa.int64()).cast(pa.timestamp("us")),
            }
        )


def plan(
    cur: duckdb.DuckDBPyConnection,
    ids: list[int],
    span: TimeRange,
    buckets: Buckets,
    functions: tuple[str, ...],
    marks: MarksCache | None = None,
) -> Plan:
    """The tiers that answer this query for each series of `ids` (already scoped); the
    watermarks come from `marks` (kept between reads) when given, else from the table."""
    by_series = marks.read(cur, ids) if marks is not None else read_marks(cur, ids)
    exact = all(fn in ROLLUP_FUNCTIONS for fn in functions)
    starts = _boundaries(buckets, span)
    tiers, los, his, labels = [], [], [], set()
    for sid in ids:
        raw_floor, rollups = _split(by_series.get(sid, []))
        if not exact:
            if raw_floor > span.from_us:
                needs = ", ".join(fn for fn in functions if fn not in ROLLUP_FUNCTIONS)
                raise BadParameter(
                    "fn",
                    f"{needs} need(s) raw points, and the rollup policy deleted the raw points "
                    f"of series {sid} before {_iso(raw_floor)}; ask from that time on, or use "
                    f"only {', '.join(ROLLUP_FUNCTIONS)} (exact from the rollup tiers)",
                )
            choice: tuple[int, int, int] | None = (0, span.to_us, span.to_us)
        else:
            choice = _choose(rollups, raw_floor, span, starts)
        if choice is None:
            raise BadParameter(
                "bucket",
                f"series {sid} has no raw points before {_iso(raw_floor)} and no rollup tier "
                f"that covers {_iso(span.from_us)} and divides these buckets (tiers: "
                f"{', '.join(format_duration(m.tier_us) for m in rollups) or 'none'}); "
                "use a bucket that is a multiple of a tier, aligned to it, or a later `from`",
            )
        tier, lo, hi = choice
        tiers.append(tier)
        los.append(lo)
        his.append(hi)
        if tier:
            labels.add(tier)
        if not tier or lo > span.from_us or hi < span.to_us:
            labels.add(0)
    order = sorted(labels, reverse=True)
    names = ["raw" if t == 0 else format_duration(t) for t in order]
    widened = (min([span.from_us, *los]), max([span.to_us, *his]))
    return Plan(list(ids), tiers, los, his, names, (span.from_us, span.to_us), widened)


def _split(marks: list[Mark]) -> tuple[int, list[Mark]]:
    raw_floor = _NEVER
    rollups = []
    for mark in marks:
        if mark.tier_us == 0:
            raw_floor = mark.deleted_until_us if mark.deleted_until_us is not None else _NEVER
        elif mark.done_until_us is not None:
            rollups.append(mark)
    return raw_floor, sorted(rollups, key=lambda m: -m.tier_us)


def _boundaries(buckets: Buckets, span: TimeRange) -> np.ndarray:
    """UTC starts of every query bucket after the first, and the range's ends."""
    if not buckets.calendar:
        return np.array([buckets.width_us], dtype=np.int64)  # epoch-aligned: the width
    starts = buckets.starts(buckets.keys(span.from_us, span.to_us))
    return np.asarray(starts[1:] if starts.size > 1 else starts[:0])


def _aligned(res: int, buckets_bounds: np.ndarray) -> bool:
    return bool(np.all(buckets_bounds % res == 0))


def _choose(
    rollups: list[Mark], raw_floor: int, span: TimeRange, bounds: np.ndarray
) -> tuple[int, int, int] | None:
    """(tier, lo, hi) of the coarsest tier that, with the raw points that still exist,
    covers the whole range; (0, to, to) for raw alone. When raw is gone at an uneven edge
    of the range, the finest tier that covers it answers the whole tier bucket there
    (the answer says so); None when nothing covers the range."""
    aligned = [m for m in rollups if _aligned(m.tier_us, bounds)]
    for mark in aligned:
        res = mark.tier_us
        lo = max(_ceil(span.from_us, res), _ceil(_floor_of(mark), res))
        hi = min(span.to_us // res * res, mark.done_until_us or _NEVER)
        if hi <= lo:
            continue
        head_ok = lo <= span.from_us or raw_floor <= span.from_us
        tail_ok = hi >= span.to_us or raw_floor <= hi
        if head_ok and tail_ok:
            return res, lo, hi
    if raw_floor <= span.from_us:
        return 0, span.to_us, span.to_us
    for mark in reversed(aligned):  # finest first: the least widening
        res = mark.tier_us
        lo = span.from_us // res * res
        hi = min(_ceil(span.to_us, res), mark.done_until_us or _NEVER)
        if _floor_of(mark) > lo or hi <= lo or (hi < span.to_us and raw_floor > hi):
            continue
        return res, lo, hi
    return None


def _ceil(us: int, res: int) -> int:
    return -(-us // res) * res


def _floor_of(mark: Mark) -> int:
    """Where the tier's rows begin: its first bucket or its trimming watermark."""
    return max(mark.since_us or _NEVER, mark.deleted_until_us or _NEVER)


def tiered_sql(buckets: Buckets, functions: tuple[str, ...], source: str) -> str:
    """(series_id, bucket key, count, f0, f1, ...) from the plan's rollup rows and the raw
    points outside them; `source` is the raw relation, `tier_plan` the registered plan."""
    columns = ", ".join(f"{ROLLUP_FUNCTIONS[fn]} AS f{i}" for i, fn in enumerate(functions))
    return f"""
WITH parts AS (
  SELECT r.series_id, r.bucket AS ts, r.n, r.sum, r.min, r.max, r.first_ts, r.first,
         r.last_ts, r.last
  FROM rollups r JOIN tier_plan p ON r.series_id = p.series_id AND r.tier_us = p.tier_us
  WHERE r.bucket >= p.lo AND r.bucket < p.hi AND r.tier_us IN (SELECT unnest(?::BIGINT[]))
    AND r.bucket >= make_timestamp(?::BIGINT) AND r.bucket < make_timestamp(?::BIGINT)
  UNION ALL
  SELECT x.series_id, x.ts, 1, x.value, x.value, x.value, x.ts, x.value, x.ts, x.value
  FROM {source} x JOIN tier_plan p ON x.series_id = p.series_id
  WHERE x.ts >= make_timestamp(?::BIGINT) AND x.ts < make_timestamp(?::BIGINT)
    AND x.ts < p.lo
  UNION ALL
  SELECT x.series_id, x.ts, 1, x.value, x.value, x.value, x.ts, x.value, x.ts, x.value
  FROM {source} x JOIN tier_plan p ON x.series_id = p.series_id
  WHERE x.ts >= make_timestamp(?::BIGINT) AND x.ts < make_timestamp(?::BIGINT)
    AND x.ts >= p.hi AND x.ts >= p.lo
)
SELECT series_id, {buckets.sql("ts")} AS b, sum(n)::BIGINT AS n, {columns}
FROM parts GROUP BY ALL ORDER BY series_id, b
"""


def _iso(us: int) -> str:
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)
    return moment.isoformat().replace("+00:00", "Z")


def read(
    cur: duckdb.DuckDBPyConnection,
    answered: Plan,
    span: TimeRange,
    buckets: Buckets,
    functions: tuple[str, ...],
    source: str = "points",
) -> dict[str, np.ndarray]:
    """Run the tiered query of `answered`; the same columns as the raw aggregate query."""
    cur.register("tier_plan", answered.table())
    try:
        sql = tiered_sql(buckets, functions, source)
        # raw before the tier rows (uneven `from`) and after them (not yet rolled up): two
        # scans bounded by constants, so DuckDB skips the row groups in between
        head = (span.from_us, min(max(answered.lo), span.to_us))
        tail = (max(span.from_us, min(answered.hi)), span.to_us)
        used = [t for t in answered.tier_us if t]
        rows = [sorted(set(used)), min(answered.lo), max(answered.hi)]
        data: dict[str, np.ndarray] = cur.execute(sql, [*rows, *head, *tail]).fetchnumpy()
    finally:
        cur.unregister("tier_plan")
    return data
