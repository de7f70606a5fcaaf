"""Correlation of aligned series: the Pearson matrix at lag 0 and, per pair, the lag in
[-max_lag, max_lag] buckets with the strongest correlation (largest |r|), with Spearman's
rank correlation at that lag.

A positive lag L means the second series follows the first by L buckets: a[t] goes with
b[t + L] (a leads). Each lag uses the overlap of the two shifted series only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from ...model import Float64Array
from .data import Grid, period_of

MIN_OVERLAP = 8


def pearson(a: Float64Array, b: Float64Array) -> float | None:
    if a.shape[0] < 3:
        return None
    sa, sb = float(np.std(a)), float(np.std(b))
    if sa == 0.0 or sb == 0.0:
        return None
    return float(np.mean((a - a.mean()) * (b - b.mean())) / (sa * sb))


def spearman(a: Float64Array, b: Float64Array) -> float | None:
    if a.shape[0] < 3 or float(np.std(a)) == 0.0 or float(np.std(b)) == 0.0:
        return None
    return float(stats.spearmanr(a, b).statistic)


def shifted(a: Float64Array, b: Float64Array, lag: int) -> tuple[Float64Array, Float64Array]:
    """a[t] and b[t + lag] over their overlap."""
    n = a.shape[0]
    if lag >= 0:
        return a[: n - lag], b[lag:]
    return a[-lag:], b[: n + lag]


def best_lag(a: Float64Array, b: Float64Array, max_lag: int) -> tuple[int, float | None]:
    best, best_r = 0, pearson(a, b)
    for lag in range(-max_lag, max_lag + 1):
        x, y = shifted(a, b, lag)
        if x.shape[0] < MIN_OVERLAP:
            continue
        r = pearson(x, y)
        if r is None:
            continue
        if (
            best_r is None
            or abs(r) > abs(best_r) + 1e-12
            or (abs(abs(r) - abs(best_r)) <= 1e-12 and abs(lag) < abs(best))
        ):
            best, best_r = lag, r
    return best, best_r


def _round(r: float | None) -> float | None:
    return None if r is None else round(r, 6)


def analyse(grid: Grid, *, max_lag: int = 0) -> dict[str, Any]:
    k = len(grid.values)
    matrix: list[list[float | None]] = [[None] * k for _ in range(k)]
    pairs = []
    for i in range(k):
        matrix[i][i] = 1.0 if float(np.std(grid.values[i])) > 0 else None
        for j in range(i + 1, k):
            a, b = grid.values[i], grid.values[j]
            r0 = _round(pearson(a, b))
            matrix[i][j] = matrix[j][i] = r0
            lag, r = best_lag(a, b, max_lag)
            x, y = shifted(a, b, lag)
            pairs.append(
                {
                    "a": str(grid.series[i].id),
                    "b": str(grid.series[j].id),
                    "pearson": r0,
                    "best_lag": period_of(lag, grid.width_s),
                    "best_pearson": _round(r),
                    "best_spearman": _round(spearman(x, y)),
                    "leader": None if lag == 0 else ("a" if lag > 0 else "b"),
                }
            )
    return {
        **grid.head(),
        "max_lag": period_of(max_lag, grid.width_s),
        "matrix": matrix,
        "pairs": pairs,
    }
