"""IQR fences: how far a point lies outside [q25 - k*IQR, q75 + k*IQR] of the trailing
window, in IQR units, calibrated per series against the recent record distance (see
_window.record_ratio_score). Points inside the fences score 0."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ._window import WindowDetector, anchor_windows, quantile_rows
from .base import FloatArray, IntArray


class IQRFences(WindowDetector):
    name: ClassVar[str] = "iqr"
    defaults: ClassVar[dict[str, Any]] = {
        "window": 288,
        "step": 8,
        "k": 1.5,
        "min_points": 64,
        "block": 64,
        "keep": 20,
        "warmup": 288,  # points before the first score
        "min_record": 1.0,  # smallest value that counts as unusual
    }

    def history(self) -> int:
        return int(self.params["window"]) + int(self.params["step"])

    def initial_extra(self) -> dict[str, Any]:
        return {"records": {}}

    def compute(self, t: IntArray, v: FloatArray, start: int, base: int) -> FloatArray:
        p = self.params
        n_new = v.size - start
        inv, wins, ok = anchor_windows(
            v, base, start, int(p["window"]), int(p["step"]), int(p["min_points"])
        )
        if wins is None:
            return np.zeros(n_new)
        q = quantile_rows(wins, (0.25, 0.75))
        q25, q75 = q[:, 0], q[:, 1]
        iqr = q75 - q25
        floor = 1e-6 * np.maximum(np.maximum(np.abs(q25), np.abs(q75)), 1.0)
        iqr = np.where(ok > 0, np.maximum(np.nan_to_num(iqr, nan=np.inf), floor), np.inf)
        lo = (q25 - float(p["k"]) * iqr)[inv]
        hi = (q75 + float(p["k"]) * iqr)[inv]
        x = v[start:]
        dist = np.maximum(np.maximum(lo - x, x - hi), 0.0) / iqr[inv]
        dist = np.nan_to_num(dist, nan=0.0, posinf=0.0)
        abs_idx = base + start + np.arange(n_new)
        s = self.calibrate(dist, abs_idx)
        self._explain = {
            "rule": self.name,
            "outside_by_iqr": float(dist[-1]),
            "lower_fence": float(lo[-1]) if np.isfinite(lo[-1]) else None,
            "upper_fence": float(hi[-1]) if np.isfinite(hi[-1]) else None,
        }
        return s
