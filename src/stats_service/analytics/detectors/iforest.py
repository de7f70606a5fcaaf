"""Isolation Forest over window features: each point is described by its signed robust
z, the z of its step from the previous point, the z of the short-term mean and the
short-term spread (see _features.point_features). A scikit-learn IsolationForest is
fitted on a schedule (every `refit` points, counted from the stream's start) on the
features of the `train` points before the refit point (past points only, fixed random
seed, so the same past always gives the same forest) and scores the points until the
next refit. The isolation score is calibrated per series against its recent record."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ._features import point_features
from ._window import WindowDetector
from .base import FloatArray, IntArray

FEATURES = ("z", "step_z", "short_mean_z", "short_spread")


class IForest(WindowDetector):
    name: ClassVar[str] = "iforest"
    defaults: ClassVar[dict[str, Any]] = {
        "window": 288,
        "step": 8,
        "short": 6,
        "min_points": 64,
        "train": 2000,  # feature rows a forest is fitted on
        "refit": 500,  # points between refits
        "min_train": 200,  # no forest (score 0) before this many rows
        "trees": 50,
        "max_samples": 256,
        "seed": 0,
        "block": 64,
        "keep": 20,
        "warmup": 500,  # points before the first score
        "min_record": 0.1,  # smallest value that counts as unusual
    }

    def __init__(self, state: dict[str, Any] | None = None, **params: Any) -> None:
        self._models: dict[int, Any] = {}
        super().__init__(state=state, **params)

    def history(self) -> int:
        p = self.params
        return int(p["window"]) + int(p["step"]) + int(p["train"]) + int(p["refit"]) + 2

    def initial_extra(self) -> dict[str, Any]:
        return {"records": {}}

    def _forest(self, anchor: int, feats: FloatArray, first_abs: int) -> Any:
        from sklearn.ensemble import IsolationForest

        if anchor in self._models:
            return self._models[anchor]
        p = self.params
        lo = max(anchor - int(p["train"]), int(p["min_points"]), first_abs)
        rows = feats[lo - first_abs : anchor - first_abs]
        model = None
        if rows.shape[0] >= int(p["min_train"]):
            model = IsolationForest(
                n_estimators=int(p["trees"]),
                max_samples=min(int(p["max_samples"]), rows.shape[0]),
                random_state=int(p["seed"]),
            ).fit(rows)
        self._models = {anchor: model}
        return model

    def compute(self, t: IntArray, v: FloatArray, start: int, base: int) -> FloatArray:
        p = self.params
        n_new = v.size - start
        refit = int(p["refit"])
        abs_new = base + start + np.arange(n_new)
        anchors = (abs_new // refit) * refit
        # feature rows from the first training row on; the buffer holds their windows
        first_abs = max(base, int(anchors[0]) - int(p["train"]))
        feats = point_features(
            v,
            first_abs - base,
            base,
            int(p["window"]),
            int(p["step"]),
            int(p["min_points"]),
            int(p["short"]),
        )
        raw = np.zeros(n_new)
        for a in np.unique(anchors).tolist():
            model = self._forest(int(a), feats, first_abs)
            sel = anchors == a
            if model is None:
                continue
            rows = feats[abs_new[sel] - first_abs]
            raw[sel] = np.maximum(-model.score_samples(rows) - 0.5, 0.0)
        raw[abs_new < int(p["min_points"])] = 0.0
        s = self.calibrate(raw, abs_new)
        self._explain = {
            "rule": self.name,
            "isolation_score": float(raw[-1] + 0.5),
            "features": dict(zip(FEATURES, feats[-1].tolist(), strict=True)),
        }
        return s
