"""window_features: per fixed window statistics against a plain per-window loop."""

from __future__ import annotations

import numpy as np
import pytest

from stats_service.analytics.features import COLUMNS, window_features

MIN = 60_000_000


def _reference(t: np.ndarray, v: np.ndarray, window_us: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {c: [] for c in COLUMNS}
    win = t // window_us
    for w in sorted(set(win.tolist())):
        m = win == w
        x, tt = v[m], t[m]
        med = float(np.median(x))
        ts = (tt - w * window_us) / 1e6
        slope = float(np.polyfit(ts, x, 1)[0]) if len(set(ts.tolist())) > 1 else 0.0
        row = {
            "window_start": w * window_us,
            "window_end": (w + 1) * window_us,
            "count": len(x),
            "mean": float(x.mean()),
            "std": float(x.std()),
            "median": med,
            "mad": float(np.median(np.abs(x - med))),
            "min": float(x.min()),
            "max": float(x.max()),
            "range": float(x.max() - x.min()),
            "slope": slope,
            "q05": float(np.quantile(x, 0.05)),
            "q95": float(np.quantile(x, 0.95)),
        }
        for c in COLUMNS:
            out[c].append(row[c])
    return out


def test_empty_input_gives_empty_columns() -> None:
    cols = window_features(np.array([], dtype=np.int64), np.array([]), MIN)
    assert set(cols) == set(COLUMNS)
    assert all(len(c) == 0 for c in cols.values())
    assert cols["count"].dtype == np.int64
    assert cols["mean"].dtype == np.float64


def test_matches_a_per_window_loop_on_random_unsorted_points() -> None:
    rng = np.random.default_rng(7)
    t = np.sort(rng.integers(0, 50 * MIN, 2000)).astype(np.int64)
    v = rng.normal(10, 3, t.size)
    perm = rng.permutation(t.size)
    cols = window_features(t[perm], v[perm], 5 * MIN)
    ref = _reference(t, v, 5 * MIN)
    for c in COLUMNS:
        np.testing.assert_allclose(cols[c], ref[c], rtol=1e-9, atol=1e-9, err_msg=c)


def test_known_window_values() -> None:
    t = np.array([0, 10_000_000, 20_000_000, 30_000_000, MIN + 5], dtype=np.int64)
    v = np.array([1.0, 2.0, 3.0, 10.0, 5.0])
    cols = window_features(t, v, MIN)
    assert cols["window_start"].tolist() == [0, MIN]
    assert cols["window_end"].tolist() == [MIN, 2 * MIN]
    assert cols["count"].tolist() == [4, 1]
    assert cols["mean"][0] == pytest.approx(4.0)
    assert cols["median"][0] == pytest.approx(2.5)
    assert cols["mad"][0] == pytest.approx(1.0)  # |x - 2.5| = 1.5, .5, .5, 7.5
    assert cols["min"][0] == 1.0 and cols["max"][0] == 10.0 and cols["range"][0] == 9.0
    assert cols["slope"][0] > 0
    # a window with one point: no spread, no slope
    assert cols["std"][1] == 0.0 and cols["mad"][1] == 0.0 and cols["slope"][1] == 0.0
    assert cols["q05"][1] == cols["q95"][1] == 5.0


def test_nan_values_are_ignored_and_gaps_give_no_window() -> None:
    t = np.array([0, 1, 2 * MIN, 5 * MIN], dtype=np.int64)
    v = np.array([1.0, np.nan, 3.0, np.inf])
    cols = window_features(t, v, MIN)
    assert cols["window_start"].tolist() == [0, 2 * MIN]
    assert cols["count"].tolist() == [1, 1]


def test_negative_times_and_bad_arguments() -> None:
    cols = window_features(np.array([-1, 0], dtype=np.int64), np.array([1.0, 2.0]), MIN)
    assert cols["window_start"].tolist() == [-MIN, 0]
    with pytest.raises(ValueError):
        window_features(np.array([0]), np.array([1.0]), 0)
    with pytest.raises(ValueError):
        window_features(np.array([0, 1]), np.array([1.0]), MIN)
