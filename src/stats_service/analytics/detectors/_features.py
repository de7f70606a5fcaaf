"""Point features from past points only, shared by the model-based detectors."""

from __future__ import annotations

import numpy as np

from ._window import trailing_mean_std
from .base import FloatArray
from .robust_z import robust_z


def point_features(
    v: FloatArray, start: int, base: int, window: int, step: int, min_points: int, short: int
) -> FloatArray:
    """Features of rows start.. of the buffer v (v[0] has absolute index base), columns:
    signed robust z of the value, signed robust z of the step from the previous value,
    z of the mean of the last `short` values, log of the last `short` values' spread
    over the window's spread. Each uses the point and the points before it only."""
    _, med, sig = robust_z(v, start, base, window, step, min_points)
    x = v[start:]
    z = (x - med) / sig
    d = np.empty_like(v)
    d[0] = 0.0
    np.subtract(v[1:], v[:-1], out=d[1:])
    _, dmed, dsig = robust_z(d, start, base, window, step, min_points)
    dz = (d[start:] - dmed) / dsig
    mean_k, std_k = trailing_mean_std(v, start, short)
    lz = (mean_k - med) / sig
    spread = np.log1p(std_k / np.where(np.isfinite(sig), sig, np.inf))
    out: FloatArray = np.column_stack((z, dz, lz, spread))
    out = np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)
    return np.clip(out, -50.0, 50.0)
