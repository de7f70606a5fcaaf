"""Spectrum and decomposition: a known period (1 h in 1 min buckets) is the dominant
period and the decomposition's period."""

from __future__ import annotations

import numpy as np
import pytest
from patterns_support import grid

from stats_service.analytics.patterns import decompose, spectrum
from stats_service.analytics.patterns.data import duration_text
from stats_service.errors import BadParameter, BadRequest


def hourly(n: int = 6 * 60, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 10.0 + 0.01 * t + 2.0 * np.sin(2 * np.pi * t / 60) + rng.normal(0, 0.3, n)


def test_hour_is_the_dominant_period() -> None:
    answer = spectrum.analyse(grid(hourly()))
    top = answer["dominant"]
    assert top["buckets"] == pytest.approx(60, rel=0.03)
    assert top["seconds"] == pytest.approx(3600, rel=0.03)
    assert top["duration"] == "1h"
    assert top["power_share"] > 0.5
    assert answer["periods"][0] == top


def test_period_between_two_bins_is_refined() -> None:
    rng = np.random.default_rng(5)
    t = np.arange(500)
    values = np.sin(2 * np.pi * t / 45) + rng.normal(0, 0.2, 500)  # 500/45: not a bin
    assert spectrum.analyse(grid(values))["dominant"]["buckets"] == pytest.approx(45, rel=0.03)


def test_noise_without_a_period_has_weak_peaks() -> None:
    rng = np.random.default_rng(11)
    answer = spectrum.analyse(grid(rng.normal(0, 1, 400)))
    assert all(p["power_share"] < 0.2 for p in answer["periods"])


def test_decomposition_detects_the_hour() -> None:
    answer = decompose.analyse(grid(hourly()))
    assert answer["period"] == {"buckets": 60, "seconds": 3600, "duration": "1h", "detected": True}
    seasonal = np.array(answer["seasonal"])
    assert float(np.std(seasonal)) == pytest.approx(2.0 / np.sqrt(2.0), rel=0.1)
    trend = np.array(answer["trend"])
    assert trend[-1] - trend[0] == pytest.approx(0.01 * 359, rel=0.25)
    assert answer["strength"]["seasonal"] > 0.8
    assert len(answer["t"]) == len(answer["resid"]) == 360


def test_decomposition_with_a_given_period_and_refusals() -> None:
    answer = decompose.analyse(grid(hourly()), period=30)
    assert answer["period"]["duration"] == "30m" and not answer["period"]["detected"]
    with pytest.raises(BadParameter) as too_long:
        decompose.analyse(grid(hourly()), period=200)
    assert too_long.value.param == "period"
    with pytest.raises(BadRequest):
        decompose.analyse(grid(np.full(100, 3.0)))


def test_duration_text() -> None:
    assert [duration_text(s) for s in (60, 3600, 5400, 90, 86400 + 60, 0.5, 0, -240)] == [
        "1m", "1h", "1h30m", "1m30s", "1d1m", "0.5s", "0s", "-4m",
    ]  # fmt: skip
