"""Correlation and Granger causality: a known lag and a known cause."""

from __future__ import annotations

import numpy as np
import pytest
from patterns_support import grid

from stats_service.analytics.patterns import correlation, granger
from stats_service.errors import BadParameter


def lagged(n: int = 300, lag: int = 4, seed: int = 2) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, n + lag)
    y = 0.9 * x[:-lag] + rng.normal(0, 0.3, n)  # y[t] = 0.9 x[t - lag] + noise
    return x[lag:], y


def test_known_lag_found() -> None:
    x, y = lagged()
    z = np.random.default_rng(9).normal(0, 1, x.shape[0])
    answer = correlation.analyse(grid(x, y, z), max_lag=10)
    first = answer["pairs"][0]
    assert (first["a"], first["b"]) == ("100", "101")
    assert first["best_lag"]["buckets"] == 4 and first["best_lag"]["duration"] == "4m"
    assert first["leader"] == "a"
    assert first["best_pearson"] > 0.9 and first["best_spearman"] > 0.85
    assert abs(first["pearson"]) < 0.3  # at lag 0 they look unrelated
    assert answer["matrix"][0][0] == 1.0 and answer["matrix"][0][1] == first["pearson"]
    assert all(abs(p["best_pearson"]) < 0.3 for p in answer["pairs"][1:])  # z: noise


def test_negative_lag_when_the_second_leads() -> None:
    x, y = lagged(lag=3)
    answer = correlation.analyse(grid(y, x), max_lag=5)
    assert answer["pairs"][0]["best_lag"]["buckets"] == -3
    assert answer["pairs"][0]["leader"] == "b"


def test_x_granger_causes_y_and_not_the_reverse() -> None:
    rng = np.random.default_rng(4)
    n = 400
    x = rng.normal(0, 1, n)
    y = np.zeros(n)
    y[2:] = 0.8 * x[:-2]
    y += rng.normal(0, 0.5, n)  # y[t] = 0.8 x[t-2] + noise
    forward = granger.analyse(grid(x, y), max_lag=4)
    assert forward["granger_causes"] is True
    assert forward["best_lag"]["buckets"] == 2
    assert forward["best_lag"]["p_value"] < 0.01
    assert "Granger-causes" in forward["verdict"] and not forward["differenced"]
    assert [row["lag"] for row in forward["lags"]] == [1, 2, 3, 4]
    reverse = granger.analyse(grid(y, x), max_lag=4)
    assert reverse["granger_causes"] is False
    assert reverse["best_lag"]["p_value"] > 0.05
    assert reverse["verdict"].startswith("no evidence")


def test_random_walks_are_differenced() -> None:
    rng = np.random.default_rng(8)
    x = np.cumsum(rng.normal(0, 1, 300))
    y = np.cumsum(rng.normal(0, 1, 300))
    assert granger.analyse(grid(x, y), max_lag=2)["differenced"] is True


def test_too_many_lags_for_the_data() -> None:
    rng = np.random.default_rng(1)
    with pytest.raises(BadParameter) as refused:
        granger.analyse(grid(rng.normal(0, 1, 40), rng.normal(0, 1, 40)), max_lag=12)
    assert refused.value.param == "max_lag"
