"""Robust z-score: distance of a point from the median of the trailing window, in units
of the window's MAD (scaled to a standard deviation), calibrated per series against the
largest z of the recent past (_window.record_ratio_score): 0.5 means "as unusual as the
most unusual point of the last `keep` x `block` points", near 1 well beyond it."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ._window import MAD_TO_SIGMA, WindowDetector, anchor_windows, median_mad_rows
from .base import FloatArray, IntArray


def robust_z(
    v: FloatArray, start: int, base: int, window: int, step: int, min_points: int
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """z of rows start.. of v against the median/MAD of the `window` points before their
    anchor (see _window.anchor_windows). Returns (z, median, sigma) per new row."""
    inv, wins, ok = anchor_windows(v, base, start, window, step, min_points)
    n_new = v.size - start
    if wins is None:
        zero = np.zeros(n_new)
        return zero, zero, zero
    med, mad = median_mad_rows(wins)
    sigma = MAD_TO_SIGMA * mad
    floor = 1e-6 * np.maximum(np.abs(med), 1.0)
    sigma = np.where(np.isfinite(sigma), np.maximum(sigma, floor), np.inf)
    sigma = np.where(ok > 0, sigma, np.inf)
    med_r = np.nan_to_num(med, nan=0.0)[inv]
    sig_r = sigma[inv]
    z = np.abs(v[start:] - med_r) / sig_r
    return z, med_r, sig_r


class RobustZ(WindowDetector):
    name: ClassVar[str] = "robust_z"
    defaults: ClassVar[dict[str, Any]] = {
        "window": 288,
        "step": 4,
        "min_points": 64,
        "warmup": 288,
        "block": 64,
        "keep": 20,
        "min_record": 3.0,
    }

    def history(self) -> int:
        return int(self.params["window"]) + int(self.params["step"])

    def initial_extra(self) -> dict[str, Any]:
        return {"records": {}}

    def compute(self, t: IntArray, v: FloatArray, start: int, base: int) -> FloatArray:
        p = self.params
        z, med, sig = robust_z(
            v, start, base, int(p["window"]), int(p["step"]), int(p["min_points"])
        )
        abs_idx = base + start + np.arange(z.size)
        s = self.calibrate(z, abs_idx)
        self._explain = {
            "rule": self.name,
            "z": float(z[-1]),
            "median": float(med[-1]),
            "sigma": float(sig[-1]) if np.isfinite(sig[-1]) else None,
        }
        out: FloatArray = s
        return out
