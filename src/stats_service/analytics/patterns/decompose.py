"""Seasonal decomposition: trend + seasonal + residual by STL (statsmodels, robust:
outliers are down-weighted in a few outer passes).

The period is given (a duration, turned into buckets) or detected: the dominant period
of the spectrum (spectrum.py), rounded to whole buckets. The answer has the three
components on the bucket grid and the strength of trend and seasonality (Wang, Smith
& Hyndman: 1 - var(residual) / var(component + residual), 0 when the component does
not stand out).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from statsmodels.tsa.seasonal import STL

from ...errors import BadParameter, BadRequest
from ...model import Float64Array
from ...query.columns import times, values
from .data import Grid, period_of
from .spectrum import peaks

ROBUST_PASSES = 3  # outer (robustness) passes of STL; statsmodels' default 15 is 4x slower


def detect_period(series: Float64Array) -> int | None:
    """The dominant period in whole buckets (None when there is none of 2 buckets or more)."""
    for period, _share in peaks(series, 5):
        rounded = round(period)
        if 2 <= rounded <= series.shape[0] // 2:
            return int(rounded)
    return None


def work(grid: Grid, period: int | None) -> int:
    """The cost of an STL fit, roughly: buckets x period (of the period to be used)."""
    found = period if period is not None else detect_period(grid.values[0])
    return grid.n * (found or 0)


def _strength(component: Float64Array, resid: Float64Array) -> float:
    total = float(np.var(component + resid))
    if total == 0.0:
        return 0.0
    return max(0.0, 1.0 - float(np.var(resid)) / total)


def analyse(grid: Grid, *, period: int | None = None) -> dict[str, Any]:
    series = grid.values[0]
    detected = period is None
    if period is None:
        period = detect_period(series)
        if period is None:
            raise BadRequest(
                "no period found in the series; give one with `period` (e.g. period=1h)"
            )
    if period < 2 or grid.n < 2 * period:
        raise BadParameter(
            "period",
            f"{period} buckets: a period must be at least 2 buckets and the range must "
            f"hold two periods ({grid.n} buckets with data)",
        )
    fit = STL(series, period=period, robust=True).fit(outer_iter=ROBUST_PASSES)
    trend = np.asarray(fit.trend, dtype=np.float64)
    seasonal = np.asarray(fit.seasonal, dtype=np.float64)
    resid = np.asarray(fit.resid, dtype=np.float64)
    return {
        **grid.head(),
        "period": {**period_of(period, grid.width_s), "detected": detected},
        "strength": {
            "trend": round(_strength(trend, resid), 4),
            "seasonal": round(_strength(seasonal, resid), 4),
        },
        "t": times(grid.starts),
        "observed": values(series),
        "trend": values(trend),
        "seasonal": values(seasonal),
        "resid": values(resid),
    }
