"""Change-point aware level-shift detection: a two-sided CUSUM of the standardised
values (robust z against the trailing window's median/MAD, signed), with a drift
allowance `k`. The CUSUM grows while the level stays away from the recent median and
falls back once the window has absorbed the new level, so a shift scores when it starts
(the change point) and not for ever after. Calibrated per series against the recent
record CUSUM (see _window.record_ratio_score)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ._window import WindowDetector
from .base import FloatArray, IntArray
from .robust_z import robust_z


def cusum(y: FloatArray, g0: float) -> FloatArray:
    """g_i = max(0, g_{i-1} + y_i) with g_{-1} = g0 (a plain loop: exact whatever the
    chunks the stream comes in)."""
    out = np.empty(y.size)
    g = float(g0)
    for i, yi in enumerate(y.tolist()):
        g = g + yi
        if g < 0.0:
            g = 0.0
        out[i] = g
    return out


class LevelShift(WindowDetector):
    name: ClassVar[str] = "level_shift"
    defaults: ClassVar[dict[str, Any]] = {
        "window": 288,
        "step": 8,
        "k": 1.0,  # drift allowance in sigmas
        "clip": 8.0,  # a single point moves the CUSUM by at most this many sigmas
        "min_points": 64,
        "block": 64,
        "keep": 20,
        "warmup": 288,  # points before the first score
        "min_record": 8.0,  # smallest value that counts as unusual
    }

    def history(self) -> int:
        return int(self.params["window"]) + int(self.params["step"])

    def initial_extra(self) -> dict[str, Any]:
        return {"g_up": 0.0, "g_down": 0.0, "records": {}}

    def compute(self, t: IntArray, v: FloatArray, start: int, base: int) -> FloatArray:
        p = self.params
        n_new = v.size - start
        _, med, sig = robust_z(
            v, start, base, int(p["window"]), int(p["step"]), int(p["min_points"])
        )
        zs = np.nan_to_num((v[start:] - med) / sig, nan=0.0, posinf=0.0, neginf=0.0)
        zs = np.clip(zs, -float(p["clip"]), float(p["clip"]))
        abs_idx = base + start + np.arange(n_new)
        zs[abs_idx < int(p["warmup"])] = 0.0  # the CUSUM starts with a full window
        k = float(p["k"])
        up = cusum(zs - k, float(self.extra["g_up"]))
        down = cusum(-zs - k, float(self.extra["g_down"]))
        self.extra["g_up"] = float(up[-1])
        self.extra["g_down"] = float(down[-1])
        g = np.maximum(up, down)
        s = self.calibrate(g, abs_idx)
        self._explain = {
            "rule": self.name,
            "cusum_up": float(up[-1]),
            "cusum_down": float(down[-1]),
            "direction": "up" if up[-1] >= down[-1] else "down",
            "median": float(med[-1]),
        }
        return s
