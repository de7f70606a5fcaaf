"""Window features: summary statistics of a series per fixed time window.

    cols = window_features(times_us, values, window_us=3_600_000_000)
    cols["mean"][k], cols["window_start"][k], ...

Windows are aligned to the epoch: window k covers [k * window_us, (k + 1) * window_us).
Only windows that hold at least one finite value are returned, in time order. Points
may come in any order; non-finite values (NaN, inf) are ignored. Everything is
vectorised with numpy (one sort per statistic family, no Python loop per window).

Columns (numpy arrays of equal length):
    window_start, window_end   int64 µs; end is exclusive (start + window_us)
    count                      int64, number of finite values in the window
    mean, std                  std is the population standard deviation (ddof=0)
    median, mad                mad = median(|x - median|), not rescaled
    min, max, range            range = max - min
    slope                      least-squares slope, value units per second (0 if the
                               window has one distinct time)
    q05, q95                   quantiles with linear interpolation (numpy's default)
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

COLUMNS = (
    "window_start",
    "window_end",
    "count",
    "mean",
    "std",
    "median",
    "mad",
    "min",
    "max",
    "range",
    "slope",
    "q05",
    "q95",
)
INT_COLUMNS = frozenset({"window_start", "window_end", "count"})


def _empty() -> dict[str, npt.NDArray[np.generic]]:
    return {c: np.empty(0, dtype=np.int64 if c in INT_COLUMNS else np.float64) for c in COLUMNS}


def _group_quantile(
    sorted_values: FloatArray, starts: IntArray, counts: IntArray, q: float
) -> FloatArray:
    """Quantile q of each group of `sorted_values` (each group sorted ascending),
    linear interpolation between order statistics like numpy's default."""
    pos = q * (counts - 1).astype(np.float64)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, counts - 1)
    frac = pos - lo
    a = sorted_values[starts + lo]
    b = sorted_values[starts + hi]
    out: FloatArray = a + (b - a) * frac
    return out


def window_features(
    times_us: npt.ArrayLike, values: npt.ArrayLike, window_us: int
) -> dict[str, npt.NDArray[np.generic]]:
    """Per fixed window: count, mean, std, median, MAD, min, max, range, slope, q05, q95.

    Empty input (or no finite value) gives empty columns. `window_us` must be > 0."""
    if int(window_us) <= 0:
        raise ValueError("window_us must be a positive number of microseconds")
    window_us = int(window_us)
    t = np.asarray(times_us, dtype=np.int64).ravel()
    v = np.asarray(values, dtype=np.float64).ravel()
    if t.shape != v.shape:
        raise ValueError("times_us and values must have the same length")
    keep = np.isfinite(v)
    if not keep.all():
        t, v = t[keep], v[keep]
    if t.size == 0:
        return _empty()

    win = np.floor_divide(t, window_us)
    # one sort by (window, value): groups become contiguous and sorted inside
    order = np.lexsort((v, win))
    win_s = win[order]
    v_s = v[order]
    t_s = t[order]
    boundary = np.flatnonzero(np.diff(win_s)) + 1
    starts = np.concatenate(([0], boundary)).astype(np.int64)
    counts = np.diff(np.concatenate((starts, [win_s.size]))).astype(np.int64)
    group = np.repeat(np.arange(starts.size), counts)
    n = counts.astype(np.float64)

    total = np.add.reduceat(v_s, starts)
    mean = total / n
    dev = v_s - mean[group]
    std = np.sqrt(np.add.reduceat(dev * dev, starts) / n)

    median = _group_quantile(v_s, starts, counts, 0.5)
    q05 = _group_quantile(v_s, starts, counts, 0.05)
    q95 = _group_quantile(v_s, starts, counts, 0.95)
    vmin = v_s[starts]
    vmax = v_s[starts + counts - 1]

    absdev = np.abs(v_s - median[group])
    order2 = np.lexsort((absdev, group))
    mad = _group_quantile(absdev[order2], starts, counts, 0.5)

    # least squares slope against time in seconds, centred per window for precision
    ts = (t_s - (win_s * window_us)).astype(np.float64) / 1e6
    tmean = np.add.reduceat(ts, starts) / n
    tdev = ts - tmean[group]
    sxx = np.add.reduceat(tdev * tdev, starts)
    sxy = np.add.reduceat(tdev * dev, starts)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.where(sxx > 0, sxy / np.where(sxx > 0, sxx, 1.0), 0.0)

    wstart = win_s[starts] * window_us
    return {
        "window_start": wstart.astype(np.int64),
        "window_end": (wstart + window_us).astype(np.int64),
        "count": counts,
        "mean": mean,
        "std": std,
        "median": median,
        "mad": mad,
        "min": vmin,
        "max": vmax,
        "range": vmax - vmin,
        "slope": slope,
        "q05": q05,
        "q95": q95,
    }
