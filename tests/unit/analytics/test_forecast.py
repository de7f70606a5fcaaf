"""analytics/forecast.py: seasonality, candidates, backtest errors, intervals, gaps."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stats_service.analytics import forecast as fc
from stats_service.errors import BadParameter

HOUR_US = 3600 * 10**6
MINUTE_US = 60 * 10**6


def daily(n: int, seed: int = 0, noise: float = 0.5) -> np.ndarray:
    i = np.arange(n)
    return 20 + 5 * np.sin(2 * np.pi * i / 24) + np.random.default_rng(seed).normal(0, noise, n)


def test_daily_season_detected_chosen_model_beats_naive_and_covers_the_truth() -> None:
    n, h = 24 * 14, 48
    y = daily(n + h, seed=1)
    out = fc.run(y[:n], h, (80.0, 95.0), HOUR_US)
    assert out.season.buckets == 24 and out.season.detected
    assert out.season.as_dict(HOUR_US)["duration"] == "1d"
    by_model = {c.model: c for c in out.candidates}
    assert set(by_model) == set(fc.MODELS)
    assert out.chosen != "seasonal_naive"
    best = by_model[out.chosen]
    assert best.mase is not None and by_model["seasonal_naive"].mase is not None
    assert best.mase < by_model["seasonal_naive"].mase
    lo, hi = out.bands[95.0]
    truth = y[n:]
    assert np.mean((truth >= lo) & (truth <= hi)) >= 0.85
    lo80, hi80 = out.bands[80.0]
    assert np.all(lo <= lo80) and np.all(hi80 <= hi)
    # the forecast follows the daily shape: its peak is near 6 o'clock (sin peak)
    assert int(np.argmax(out.mean[:24])) in range(4, 9)


def test_no_season_in_white_noise_or_random_walk() -> None:
    rng = np.random.default_rng(2)
    assert fc.detect_season(rng.normal(0, 1, 400), HOUR_US).buckets is None
    assert fc.detect_season(np.cumsum(rng.normal(0, 1, 400)), HOUR_US).buckets is None


def test_hourly_season_in_minute_buckets() -> None:
    i = np.arange(60 * 8)
    y = 3 * np.cos(2 * np.pi * i / 60) + np.random.default_rng(4).normal(0, 0.3, len(i))
    assert fc.detect_season(y, MINUTE_US).buckets == 60


def test_random_walk_intervals_widen_with_the_horizon() -> None:
    y = np.cumsum(np.random.default_rng(3).normal(0, 1, 300))
    out = fc.run(y, 30, (95.0,), HOUR_US)
    lo, hi = out.bands[95.0]
    width = hi - lo
    assert width[-1] > 2 * width[0]
    assert np.all(np.diff(width) >= -1e-9)


def test_linear_trend_is_continued() -> None:
    n = 200
    y = 3 + 0.5 * np.arange(n) + np.random.default_rng(5).normal(0, 0.1, n)
    out = fc.run(y, 20, (80.0,), HOUR_US)
    expected = 3 + 0.5 * np.arange(n, n + 20)
    assert np.max(np.abs(out.mean - expected)) < 1.0
    assert out.chosen in ("arima", "ets")


def test_forced_model_and_seasonal_naive_intervals() -> None:
    y = daily(24 * 5, seed=6)
    out = fc.run(y, 48, (95.0,), HOUR_US, season=24, model="seasonal_naive")
    assert [c.model for c in out.candidates] == ["seasonal_naive"]
    assert not out.season.detected and out.season.buckets == 24
    assert out.mean[:24] == pytest.approx(y[-24:]) and out.mean[24:] == pytest.approx(y[-24:])
    lo, hi = out.bands[95.0]
    width = hi - lo
    # one season ahead, then two: the band widens by sqrt(2)
    assert width[30] / width[0] == pytest.approx(math.sqrt(2))


def test_errors() -> None:
    actual = np.array([1.0, 2.0, 3.0])
    assert fc.smape(actual, actual) == 0.0
    assert fc.smape(np.array([0.0]), np.array([0.0])) == 0.0
    assert fc.smape(np.array([1.0]), np.array([3.0])) == pytest.approx(100.0)
    train = np.array([0.0, 1.0, 2.0, 3.0])  # naive in-sample MAE = 1
    assert fc.mase(actual, actual + 2, train, 1) == pytest.approx(2.0)


def test_backtest_plan_keeps_two_seasons_of_training() -> None:
    h, origins = fc.backtest_plan(100, 10, 24)
    assert h == 10 and origins == [70, 80, 90]
    h, origins = fc.backtest_plan(60, 30, 24)
    assert h == 15 and all(o >= 50 for o in origins)


def test_prepare_interpolates_short_gaps_and_cuts_at_long_ones() -> None:
    starts = np.arange(100, dtype=np.int64) * HOUR_US
    raw = np.arange(100, dtype=np.float64)
    raw[[10, 11, 12]] = np.nan
    raw[:2] = np.nan
    history = fc.prepare(starts, raw)
    assert history.filled == 3 and history.values[8:11] == pytest.approx([10, 11, 12])
    assert history.starts[0] == 2 * HOUR_US
    raw[20:40] = np.nan  # longer than MAX_GAP, and 60 buckets follow
    history = fc.prepare(starts, raw)
    assert history.starts[0] == 40 * HOUR_US and history.filled == 0
    assert any("gap of 20" in note for note in history.notes)


def test_too_few_points_and_parameters() -> None:
    with pytest.raises(BadParameter, match="at least 12"):
        fc.run(np.arange(5.0), 3, (95.0,), HOUR_US)
    with pytest.raises(BadParameter) as refused:
        fc.run(np.arange(30.0), 3, (95.0,), HOUR_US, season=24)
    assert refused.value.param == "season"
    assert fc.parse_levels("95, 80,80") == (80.0, 95.0)
    for bad in ("0", "100", "x", "1,2,3,4,5,6"):
        with pytest.raises(BadParameter):
            fc.parse_levels(bad)
    assert fc.default_bucket_us(7 * 86_400 * 10**6) == 1800 * 10**6
    assert fc.duration_text(86_400 * 10**6) == "1d" and fc.duration_text(90 * 10**6) == "90s"


def test_degenerate_histories_still_forecast() -> None:
    # a constant series: ARIMA cannot be fitted (reported), the forecast is the constant
    out = fc.run(np.full(50, 3.0), 5, (95.0,), HOUR_US)
    by_model = {c.model: c for c in out.candidates}
    assert by_model["arima"].error and "ARIMA" in by_model["arima"].error
    assert out.mean == pytest.approx([3.0] * 5)
    assert all(np.isfinite(band).all() for pair in out.bands.values() for band in pair)
    # twelve points, the least accepted: at least one backtest fold
    out = fc.run(np.arange(12.0), 3, (80.0,), HOUR_US)
    assert any(c.folds >= 1 for c in out.candidates)
    assert np.isfinite(out.mean).all()
