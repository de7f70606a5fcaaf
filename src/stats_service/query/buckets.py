"""Aligned time buckets: the SQL key that assigns a point to its bucket, the bucket grid,
and the UTC start of each bucket.

Widths under a day are fixed and aligned to the Unix epoch; a bucket's key is its UTC
start in microseconds. Widths of whole days (1d, 7d = 1w, ...) follow the calendar of
`tz`: a point belongs to the local day it falls on (DuckDB converts each time to local
wall-clock time), the key is that local midnight as naive epoch microseconds, and the
bucket starts at the first instant of that local day (23, 24 or 25 hours long across DST
changes, starting at 01:00 where midnight is skipped). Weeks start on Monday (origin
2000-01-03). Keys are turned into UTC starts in Python, so the grid and the data agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from ..model import Int64Array
from .params import DAY_US, check_bucket_count

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_DAY = date(1970, 1, 1)
_ORIGIN = date(2000, 1, 3)  # a Monday


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
        """SQL for the bucket key (BIGINT) of the TIMESTAMP (UTC) column `ts`."""
        if self.calendar:
            zone = self.tz.replace("'", "''")
            local = f"timezone('{zone}', timezone('UTC', {ts}))"
            return (
                f"epoch_us(time_bucket(INTERVAL {self.days} DAY, {local}, TIMESTAMP '{_ORIGIN}'))"
            )
        return (
            f"epoch_us(time_bucket(to_microseconds({self.width_us}::BIGINT), {ts}, "
            "TIMESTAMP '1970-01-01'))"
        )

    def key_of(self, us: int) -> int:
        """Key of the bucket holding the instant `us`."""
        if not self.calendar:
            return us // self.width_us * self.width_us
        return _day_key(self._aligned(self._local_date(us)))

    def keys(self, from_us: int, to_us: int) -> Int64Array:
        """Keys of every bucket that overlaps [from_us, to_us), in order."""
        self.check(from_us, to_us)
        first = self.key_of(from_us)
        if not self.calendar:
            return np.arange(first, to_us, self.width_us, dtype=np.int64)
        day = _key_day(first)
        keys: list[int] = []
        starts: list[int] = []
        start = self._first_instant(day)
        while not keys or start < to_us:
            if starts and start == starts[-1]:  # a skipped local day (Samoa, 2011-12-30)
                keys.pop()
                starts.pop()
            keys.append(_day_key(day))
            starts.append(start)
            day += timedelta(days=self.days)
            start = self._first_instant(day)
        return np.array(keys, dtype=np.int64)

    def starts(self, keys: Int64Array) -> Int64Array:
        """UTC microseconds at which the buckets of `keys` start."""
        if not self.calendar:
            return keys
        unique, inverse = np.unique(keys, return_inverse=True)
        firsts = [self._first_instant(_key_day(int(k))) for k in unique.tolist()]
        return np.array(firsts, dtype=np.int64)[inverse].reshape(keys.shape)

    def start_of(self, us: int) -> int:
        """UTC start of the bucket holding the instant `us`."""
        return int(self.starts(np.array([self.key_of(us)], dtype=np.int64))[0])

    def check(self, from_us: int, to_us: int) -> None:
        """Refuse ranges that would hold more than MAX_BUCKETS buckets."""
        width = self.width_us - (3600 * 1_000_000 if self.calendar else 0)  # a short DST day
        check_bucket_count((to_us - from_us) // width + 1)

    def _local_date(self, us: int) -> date:
        return (_EPOCH + timedelta(microseconds=us)).astimezone(ZoneInfo(self.tz)).date()

    def _aligned(self, day: date) -> date:
        return day - timedelta(days=(day - _ORIGIN).days % self.days)

    def _first_instant(self, day: date) -> int:
        """UTC microseconds of the first instant of the local `day` (fold 0: the first of
        two midnights; the end of the gap when midnight is skipped)."""
        local = datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(self.tz))
        delta = local.astimezone(UTC) - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _day_key(day: date) -> int:
    return (day - _EPOCH_DAY).days * DAY_US


def _key_day(key: int) -> date:
    return _EPOCH_DAY + timedelta(days=key // DAY_US)
