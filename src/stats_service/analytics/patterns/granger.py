"""Granger causality: do past values of `cause` improve the prediction of `effect`
beyond effect's own past? statsmodels' `grangercausalitytests` (SSR F test) for every
lag 1..max_lag; the best lag is the one with the smallest p-value, and the verdict is
plain: `cause` Granger-causes `effect` when that p-value is below alpha (0.05 by default).

Granger tests assume stationary series: with `difference="auto"` (the default) both
series are differenced once when an augmented Dickey-Fuller test does not reject a unit
root for either (p >= 0.05); `difference=true/false` forces it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from statsmodels.tsa.stattools import adfuller, grangercausalitytests

from ...errors import BadParameter
from ...model import Float64Array
from .data import Grid, period_of

ALPHA = 0.05


def needs_difference(max_lag: int, *series: Float64Array) -> bool:
    """True when an ADF test (lags chosen by AIC up to 2·max_lag + 4) does not reject a
    unit root for one of the series."""
    for values in series:
        if float(np.std(values)) == 0.0:
            continue
        lags = min(2 * max_lag + 4, values.shape[0] // 4)
        p = float(adfuller(values, maxlag=lags, autolag="AIC", result_object=False)[1])
        if p >= ALPHA:
            return True
    return False


def lag_tests(
    cause: Float64Array, effect: Float64Array, max_lag: int
) -> list[dict[str, float | int]]:
    """Per lag: F statistic, p-value and degrees of freedom of the SSR F test."""
    data = np.column_stack([effect, cause])
    found = grangercausalitytests(data, maxlag=max_lag)
    out: list[dict[str, float | int]] = []
    for lag in range(1, max_lag + 1):
        f, p, df_denom, df_num = found[lag][0]["ssr_ftest"]
        out.append(
            {
                "lag": lag,
                "f": float(f) if math.isfinite(float(f)) else 0.0,
                "p_value": float(p) if math.isfinite(float(p)) else 1.0,
                "df": [int(df_num), int(df_denom)],  # type: ignore[dict-item]
            }
        )
    return out


def analyse(
    grid: Grid, *, max_lag: int, alpha: float = ALPHA, difference: str = "auto"
) -> dict[str, Any]:
    cause, effect = grid.values[0], grid.values[1]
    if float(np.std(cause)) == 0.0 or float(np.std(effect)) == 0.0:
        raise BadParameter("cause", "a constant series cannot cause or be caused (no variance)")
    auto = difference == "auto" and needs_difference(max_lag, cause, effect)
    differenced = difference == "true" or auto
    if differenced:
        cause, effect = np.diff(cause), np.diff(effect)
    if cause.shape[0] < 3 * max_lag + 10:
        raise BadParameter(
            "max_lag",
            f"{max_lag} lags need at least {3 * max_lag + 10} buckets with data "
            f"({cause.shape[0]} here); use a smaller max_lag or a longer range",
        )
    lags = lag_tests(cause, effect, max_lag)
    best = min(lags, key=lambda row: (row["p_value"], row["lag"]))
    causes = best["p_value"] < alpha
    names = [f"series {info.id} ({info.metric})" for info in grid.series]
    verdict = (
        f"{names[0]} Granger-causes {names[1]} (lag {best['lag']}, p={best['p_value']:.3g})"
        if causes
        else f"no evidence that {names[0]} Granger-causes {names[1]} "
        f"(smallest p={best['p_value']:.3g} at lag {best['lag']})"
    )
    return {
        **grid.head(),
        "cause": str(grid.series[0].id),
        "effect": str(grid.series[1].id),
        "max_lag": period_of(max_lag, grid.width_s),
        "alpha": alpha,
        "differenced": differenced,
        "lags": [{**row, **period_of(int(row["lag"]), grid.width_s)} for row in lags],
        "best_lag": {**period_of(int(best["lag"]), grid.width_s), "p_value": best["p_value"]},
        "granger_causes": causes,
        "verdict": verdict,
    }
