"""Seasonal decomposition residuals: statsmodels' STL (robust) is fitted on the trailing
`window` points before a refit point (every `refit` points, counted from the stream's
start, past points only). Until the next refit a point is compared with what the fit
expects at its place: the fit's last trend value plus the seasonal value one period
back. The residual, in units of the fit's residual spread (MAD), is calibrated per
series against its recent record. The period is `period_us` (one day) in points at the
window's median sampling step; a window shorter than two periods, or a period below 2
points, falls back to the window's median (no season)."""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np

from ._window import MAD_TO_SIGMA, WindowDetector
from .base import FloatArray, IntArray

DAY_US = 86_400_000_000


class STLResidual(WindowDetector):
    name: ClassVar[str] = "stl"
    defaults: ClassVar[dict[str, Any]] = {
        "window": 1152,  # points an STL fit sees (4 days of 5-minute data)
        "refit": 288,
        "robust": False,
        "period_us": DAY_US,
        "min_points": 64,
        "block": 64,
        "keep": 20,
        "warmup": 600,  # points before the first score
        "min_record": 4.0,  # smallest value that counts as unusual
    }

    def __init__(self, state: dict[str, Any] | None = None, **params: Any) -> None:
        self._fits: dict[int, tuple[FloatArray, int, float, float] | None] = {}
        super().__init__(state=state, **params)

    def history(self) -> int:
        return int(self.params["window"]) + int(self.params["refit"])

    def initial_extra(self) -> dict[str, Any]:
        return {"records": {}}

    def _fit(
        self, anchor: int, t: IntArray, v: FloatArray, base: int
    ) -> tuple[FloatArray, int, float, float] | None:
        """(last period of the seasonal, period, last trend, residual sigma) or None."""
        if anchor in self._fits:
            return self._fits[anchor]
        p = self.params
        hi = anchor - base
        lo = max(0, hi - int(p["window"]))
        y = v[lo:hi]
        out: tuple[FloatArray, int, float, float] | None = None
        if y.size >= int(p["min_points"]):
            steps = np.diff(t[lo:hi])
            steps = steps[steps > 0]
            period = round(int(p["period_us"]) / float(np.median(steps))) if steps.size else 0
            if period >= 2 and y.size >= 2 * period + 1:
                from statsmodels.tsa.seasonal import STL

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    jump = max(1, period // 10)  # LOESS every `jump` points: 10x faster
                    res = STL(
                        y,
                        period=period,
                        robust=bool(p["robust"]),
                        seasonal_jump=jump,
                        trend_jump=jump,
                        low_pass_jump=jump,
                    ).fit()
                seasonal = np.asarray(res.seasonal)[-period:]
                trend = float(np.asarray(res.trend)[-1])
                resid = np.asarray(res.resid)
            else:
                period = 1
                seasonal = np.zeros(1)
                trend = float(np.median(y))
                resid = y - trend
            mad = float(np.median(np.abs(resid - np.median(resid))))
            sigma = max(MAD_TO_SIGMA * mad, 1e-6 * max(abs(trend), 1.0))
            out = (seasonal.astype(np.float64), period, trend, sigma)
        self._fits = {anchor: out}
        return out

    def compute(self, t: IntArray, v: FloatArray, start: int, base: int) -> FloatArray:
        p = self.params
        n_new = v.size - start
        refit = int(p["refit"])
        abs_new = base + start + np.arange(n_new)
        anchors = (abs_new // refit) * refit
        f = np.zeros(n_new)
        expected = np.full(n_new, np.nan)
        for a in np.unique(anchors).tolist():
            fit = self._fit(int(a), t, v, base)
            if fit is None:
                continue
            seasonal, period, trend, sigma = fit
            sel = np.flatnonzero(anchors == a)
            k = abs_new[sel] - a  # steps after the fit's last point - 1
            e = trend + seasonal[k % period]
            expected[sel] = e
            f[sel] = np.abs(v[start + sel] - e) / sigma
        s = self.calibrate(f, abs_new)
        self._explain = {
            "rule": self.name,
            "residual_sigmas": float(f[-1]),
            "expected": float(expected[-1]) if np.isfinite(expected[-1]) else None,
        }
        return s
