"""Dominant periods of a series: the periodogram (scipy) of the evenly bucketed,
linearly detrended series, Hann window. The top peaks are reported with their period
(buckets, seconds, a duration) and their share of the total power (the peak's bin and
its two neighbours, where the window spreads it). Periods longer than half the series
(fewer than two cycles seen) are left out.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import signal

from ...model import Float64Array
from .data import Grid, period_of


def peaks(values: Float64Array, top: int = 5) -> list[tuple[float, float]]:
    """(period in buckets, power share) of the strongest peaks, strongest first."""
    n = values.shape[0]
    if n < 8 or float(np.std(values)) == 0.0:
        return []
    freqs, power = signal.periodogram(values, fs=1.0, window="hann", detrend="linear")
    power = np.asarray(power, dtype=np.float64)
    total = float(power[1:].sum())
    if total <= 0.0:
        return []
    found, _ = signal.find_peaks(np.r_[0.0, power[1:], 0.0])  # same indexes as power
    out = []
    for index in found:
        f = float(freqs[index])
        if f <= 0 or 1.0 / f > n / 2:
            continue
        share = float(power[max(1, index - 1) : index + 2].sum()) / total
        out.append((_refine(freqs, power, int(index)), share))
    out.sort(key=lambda p: -p[1])
    return out[:top]


def _refine(freqs: Float64Array, power: Float64Array, index: int) -> float:
    """The period at a peak, refined by a parabola through the peak's bin and its
    neighbours (in log power), so a period between two bins is not rounded to one."""
    f = float(freqs[index])
    if index >= 2 and index + 1 < power.shape[0]:
        a, b, c = np.log(power[index - 1 : index + 2] + 1e-300)
        denom = a - 2 * b + c
        if denom < 0:
            offset = 0.5 * (a - c) / denom
            step = float(freqs[1] - freqs[0])
            f = f + max(-0.5, min(0.5, float(offset))) * step
    return 1.0 / f


def analyse(grid: Grid, *, top: int = 5) -> dict[str, Any]:
    found = peaks(grid.values[0], top)
    periods = [{**period_of(p, grid.width_s), "power_share": round(s, 4)} for p, s in found]
    return {**grid.head(), "periods": periods, "dominant": periods[0] if periods else None}
