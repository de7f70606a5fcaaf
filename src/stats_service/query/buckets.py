"""Aligned time buckets: the SQL that assigns a point to its bucket, and the bucket grid.

Widths under a day are fixed and aligned to the Unix epoch (UTC). Widths of whole days
(1d, 7d = 1w, ...) follow the calendar of `tz`: a day bucket starts at local midnight and
lasts 23, 24 or 25 hours across DST changes; week buckets start on Monday (DuckDB's
`time_bucket` origin, 2000-01-03, is a Monday). Every bucket start is UTC microseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from ..model import Int64Array
from .params import DAY_US, check_bucket_count

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ORIGIN = date(2000, 1, 3)  # a Monday: DuckDB's default origin for day/week buckets


@dataclass(frozen=True, slots=True)
class Buckets:
    width_us: int
    tz: str = "UTC"

    @property
    def calendar(self) -> bool:
        """True for whole-day widths, which follow the calendar of `tz`."""
        return self.width_us % DAY_US == 0

    @property
    def days(self) -> int:
        return self.width_us // DAY_US

    def sql(self, ts: str = "ts") -> str:
        """SQL for the bucket start (UTC epoch microseconds) of the TIMESTAMP column `ts`."""
        if self.calendar:
            zone = self.tz.replace("'", "''")
            return (
                f"epoch_us(time_bucket(INTERVAL {self.days} DAY, timezone('UTC', {ts}), "
                f"'{zone}'))"
            )
        return (
            f"epoch_us(time_bucket(to_microseconds({self.width_us}::BIGINT), {ts}, "
            "TIMESTAMP '1970-01-01'))"
        )

    def start_of(self, us: int) -> int:
        """Start of the bucket holding the instant `us`."""
        if not self.calendar:
            return us // self.width_us * self.width_us
        local = (_EPOCH + timedelta(microseconds=us)).astimezone(ZoneInfo(self.tz)).date()
        offset = (local - _ORIGIN).days % self.days
        return self._midnight(local - timedelta(days=offset))

    def grid(self, from_us: int, to_us: int) -> Int64Array:
        """Starts of every bucket that overlaps [from_us, to_us), in order."""
        self.check(from_us, to_us)
        first = self.start_of(from_us)
        if not self.calendar:
            return np.arange(first, to_us, self.width_us, dtype=np.int64)
        local = (_EPOCH + timedelta(microseconds=first)).astimezone(ZoneInfo(self.tz)).date()
        starts: list[int] = []
        start = first
        while start < to_us:
            starts.append(start)
            local += timedelta(days=self.days)
            start = self._midnight(local)
        return np.array(starts, dtype=np.int64)

    def check(self, from_us: int, to_us: int) -> None:
        """Refuse ranges that would hold more than MAX_BUCKETS buckets."""
        width = self.width_us - (3600 * 1_000_000 if self.calendar else 0)  # a short DST day
        check_bucket_count((to_us - from_us) // width + 1)

    def _midnight(self, day: date) -> int:
        """UTC microseconds of the first instant of `day` in the zone (DST gaps included)."""
        local = datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(self.tz))
        delta = local.astimezone(UTC) - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
