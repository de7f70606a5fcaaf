"""Fill of empty buckets over the grid: every mode, pure numpy."""

from __future__ import annotations

import numpy as np
import pytest

from stats_service.errors import BadParameter
from stats_service.query.fill import counts, fill, parse_fill, place

NAN = np.nan
GRID = np.arange(0, 80, 10, dtype=np.int64)  # 8 buckets: 0, 10, ..., 70
AT = np.array([10, 20, 50], dtype=np.int64)  # buckets with data
VALUES = np.array([1.0, 3.0, 9.0])


def filled(mode: str) -> list[float | None]:
    column = place(GRID, AT, VALUES)
    has_data = counts(GRID, AT, np.ones(3, dtype=np.int64)) > 0
    out = fill(GRID, column, has_data, mode)
    return [None if np.isnan(v) else float(v) for v in out]


def test_place_and_counts_spread_over_the_grid() -> None:
    assert np.array_equal(counts(GRID, AT, np.array([4, 5, 6])), [0, 4, 5, 0, 0, 6, 0, 0])
    placed = place(GRID, AT, VALUES)
    assert np.isnan(placed[[0, 3, 4, 6, 7]]).all()
    assert placed[[1, 2, 5]].tolist() == [1.0, 3.0, 9.0]


def test_null() -> None:
    assert filled("null") == [None, 1.0, 3.0, None, None, 9.0, None, None]


def test_zero() -> None:
    assert filled("zero") == [0.0, 1.0, 3.0, 0.0, 0.0, 9.0, 0.0, 0.0]


def test_previous_carries_forward_but_not_before_the_first() -> None:
    assert filled("previous") == [None, 1.0, 3.0, 3.0, 3.0, 9.0, 9.0, 9.0]


def test_linear_interpolates_inside_only() -> None:
    assert filled("linear") == [None, 1.0, 3.0, 5.0, 7.0, 9.0, None, None]


def test_linear_follows_time_on_an_irregular_grid() -> None:
    grid = np.array([0, 23, 48, 72], dtype=np.int64)  # e.g. days of 23, 25, 24 hours
    column = np.array([0.0, NAN, NAN, 72.0])
    out = fill(grid, column, np.array([True, False, False, True]), "linear")
    assert out.tolist() == [0.0, 23.0, 48.0, 72.0]


def test_a_bucket_with_data_but_null_value_is_not_filled() -> None:
    grid = np.array([0, 1, 2], dtype=np.int64)
    column = np.array([1.0, NAN, NAN])  # bucket 1 holds one point: stddev is NULL
    out = fill(grid, column, np.array([True, True, False]), "previous")
    assert np.isnan(out[1]) and np.isnan(out[2])


def test_empty_grid_and_no_data() -> None:
    empty = np.zeros(0, dtype=np.int64)
    assert place(empty, AT, VALUES).shape == (0,)
    for mode in ("null", "previous", "zero", "linear"):
        out = fill(GRID, np.full(8, NAN), np.zeros(8, dtype=bool), mode)
        assert (out == 0).all() if mode == "zero" else np.isnan(out).all()


def test_parse_fill() -> None:
    assert parse_fill(None) == "none"
    assert parse_fill("Linear") == "linear"
    with pytest.raises(BadParameter) as info:
        parse_fill("cubic")
    assert info.value.errors[0].loc == "query.fill"
    assert "previous" in info.value.errors[0].msg
