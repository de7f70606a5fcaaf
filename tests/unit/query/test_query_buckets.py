"""Bucket alignment and grids: epoch-aligned under a day, calendar days and weeks in a zone."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from stats_service.errors import BadParameter
from stats_service.query.buckets import Buckets
from stats_service.query.columns import times, values

S = 1_000_000
H = 3600 * S
D = 24 * H
BERLIN = ZoneInfo("Europe/Berlin")


def us(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp()) * S


def grid(buckets: Buckets, start: str, end: str) -> list[int]:
    out: list[int] = buckets.starts(buckets.keys(us(start), us(end))).tolist()
    return out


def test_sub_day_buckets_align_to_the_epoch() -> None:
    five = Buckets(300 * S)
    assert five.start_of(us("2024-05-01T12:07:59+00:00")) == us("2024-05-01T12:05:00+00:00")
    assert five.key_of(-1) == -300 * S
    starts = grid(five, "2024-05-01T12:07:00+00:00", "2024-05-01T12:20:00+00:00")
    assert times(np.array(starts)) == [
        "2024-05-01T12:05:00Z",
        "2024-05-01T12:10:00Z",
        "2024-05-01T12:15:00Z",
    ]


def test_day_buckets_follow_the_calendar_across_dst() -> None:
    days = Buckets(D, "Europe/Berlin")
    starts = np.array(grid(days, "2024-03-30T12:00:00+00:00", "2024-04-01T12:00:00+00:00"))
    assert times(starts, "Europe/Berlin") == [
        "2024-03-30T00:00:00+01:00",
        "2024-03-31T00:00:00+01:00",  # 23 hours long
        "2024-04-01T00:00:00+02:00",
    ]
    assert np.diff(starts).tolist() == [24 * H, 23 * H]
    autumn = grid(days, "2024-10-27T00:00:00+02:00", "2024-10-28T00:00:00+01:00")
    assert autumn == [us("2024-10-27T00:00:00+02:00")]
    assert days.start_of(us("2024-10-27T23:30:00+01:00")) == us("2024-10-27T00:00:00+02:00")
    # keys are local midnights as naive epoch microseconds: whole days
    assert days.key_of(us("2024-03-31T23:59:00+02:00")) == us("2024-03-31T00:00:00+00:00")


def test_week_buckets_start_on_monday() -> None:
    weeks = Buckets(7 * D, "Europe/Berlin")
    start = weeks.start_of(us("2024-05-01T12:00:00+00:00"))  # a Wednesday
    assert datetime.fromtimestamp(start / S, BERLIN).isoformat() == "2024-04-29T00:00:00+02:00"
    starts = grid(weeks, "2024-05-01T00:00:00+00:00", "2024-05-20T00:00:00+02:00")
    assert all(datetime.fromtimestamp(t / S, BERLIN).weekday() == 0 for t in starts)
    assert len(starts) == 3


def test_a_day_without_midnight_starts_when_its_clock_does() -> None:
    # Santiago's clocks jump from 24:00 to 01:00 on 2024-09-08: that day has no midnight
    days = Buckets(D, "America/Santiago")
    assert days.start_of(us("2024-09-08T12:00:00-03:00")) == us("2024-09-08T01:00:00-03:00")


def test_a_day_with_two_midnights_starts_at_the_first() -> None:
    # Havana turns 01:00 back to 00:00 on 2024-11-03: midnight happens twice
    days = Buckets(D, "America/Havana")
    assert days.start_of(us("2024-11-03T12:00:00-05:00")) == us("2024-11-03T00:00:00-04:00")


def test_a_skipped_day_has_no_bucket() -> None:
    # Samoa skipped 2011-12-30 when it moved across the date line
    days = Buckets(D, "Pacific/Apia")
    starts = grid(days, "2011-12-29T12:00:00-10:00", "2011-12-31T12:00:00+14:00")
    assert np.all(np.diff(starts) > 0) and len(starts) == 2


def test_sql_of_the_two_kinds() -> None:
    assert "TIMESTAMP '1970-01-01'" in Buckets(60 * S).sql()
    assert "timezone('Europe/Berlin'" in Buckets(D, "Europe/Berlin").sql()
    assert "INTERVAL 7 DAY" in Buckets(7 * D).sql()


def test_too_many_buckets_are_refused() -> None:
    with pytest.raises(BadParameter) as info:
        Buckets(S).keys(0, 200_000 * S)
    assert info.value.errors[0].loc == "query.bucket"
    Buckets(S).check(0, 99_999 * S)


def test_json_ready_values() -> None:
    assert values(np.array([1.5, np.nan, np.inf])) == [1.5, None, None]
    assert times(np.array([1_714_564_800_123_456]), micros=True) == ["2024-05-01T12:00:00.123456Z"]
