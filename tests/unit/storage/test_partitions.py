"""Partition arithmetic: UTC days of timestamps, the days a batch touches, closed days."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np

from stats_service.model import Batch
from stats_service.storage.partitions import (
    DAY_US,
    day_of_us,
    day_start_us,
    touched_days,
)
from stats_service.storage.sources import parquet_scan


def us(text: str) -> int:
    moment = datetime.fromisoformat(text)
    return (moment - datetime(1970, 1, 1)) // timedelta(microseconds=1)


def batch(tenant: int, *stamps: str) -> Batch:
    ts = np.array([us(s) for s in stamps], dtype=np.int64)
    return Batch(tenant, np.ones(ts.size, dtype=np.int64), ts, np.zeros(ts.size))


def test_days_are_utc_and_half_open() -> None:
    assert day_of_us(us("2024-05-01T00:00:00")) == date(2024, 5, 1)
    assert day_of_us(us("2024-05-01T23:59:59.999999")) == date(2024, 5, 1)
    assert day_of_us(us("2024-05-02T00:00:00")) == date(2024, 5, 2)
    assert day_of_us(-1) == date(1969, 12, 31)
    assert day_start_us(date(2024, 5, 1)) == us("2024-05-01T00:00:00")
    assert day_start_us(date(1969, 12, 31)) == -DAY_US


def test_days_of_extreme_times_are_clamped() -> None:
    assert day_of_us(-(2**63)) == date.min
    assert day_of_us(2**63 - 1) == date.max


def test_touched_days_span_first_to_last_point_of_each_batch() -> None:
    first = us("2024-05-01T00:00:00") // DAY_US
    got = touched_days(
        [
            batch(1, "2024-05-03T10:00:00", "2024-05-01T23:00:00"),  # 1st..3rd, any order
            batch(2, "2024-05-01T12:00:00"),
            Batch(3, np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)),  # no numbers
        ]
    )
    assert got == {(1, first), (1, first + 1), (1, first + 2), (2, first)}


def test_parquet_scan_quotes_paths_and_keeps_directories_out_of_the_columns() -> None:
    sql = parquet_scan(["/data/cold/tenant=1/day=2024-05-01.parquet", "/it's/x.parquet"])
    assert sql == (
        "read_parquet(['/data/cold/tenant=1/day=2024-05-01.parquet', '/it''s/x.parquet'], "
        "hive_partitioning = false)"
    )
