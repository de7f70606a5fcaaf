"""Online streaming detector: river's HalfSpaceTrees, learning one point at a time.

Each point is described by two features in [0, 1]: its signed robust z against the
trailing window and the signed robust z of its step from the previous point, squashed
by 0.5 + 0.5 * tanh(z / 3). The point is scored, then learnt. Half-space trees keep
mass counts of the last complete window of `window_size` points (the reference) and of
the current one, so the model after n points is a function of the last one or two
windows only: `state()` stores the points and a restored detector replays them into a
fresh forest (same seed, so the same trees), which gives exactly the same model. The
tree score s, as -log(1 - s), is calibrated per series against its recent record."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ._features import point_features
from ._window import WindowDetector
from .base import FloatArray, IntArray


def _squash(z: FloatArray) -> FloatArray:
    out: FloatArray = 0.5 + 0.5 * np.tanh(z / 3.0)
    return out


class OnlineHST(WindowDetector):
    name: ClassVar[str] = "online"
    defaults: ClassVar[dict[str, Any]] = {
        "window": 288,
        "step": 8,
        "min_points": 64,
        "trees": 10,
        "height": 4,
        "window_size": 250,
        "seed": 42,
        "block": 64,
        "keep": 20,
        "warmup": 2 * 250,  # points before the first score
        "min_record": 2.0,  # smallest value that counts as unusual
    }

    def __init__(self, state: dict[str, Any] | None = None, **params: Any) -> None:
        self._model: Any = None
        super().__init__(state=state, **params)

    def history(self) -> int:
        p = self.params
        return int(p["window"]) + int(p["step"]) + 2 * int(p["window_size"]) + 2

    def initial_extra(self) -> dict[str, Any]:
        return {"records": {}}

    def _new_model(self) -> Any:
        from river.anomaly import HalfSpaceTrees

        p = self.params
        return HalfSpaceTrees(
            n_trees=int(p["trees"]),
            height=int(p["height"]),
            window_size=int(p["window_size"]),
            seed=int(p["seed"]),
        )

    def _features(self, v: FloatArray, start: int, base: int) -> FloatArray:
        p = self.params
        f = point_features(
            v, start, base, int(p["window"]), int(p["step"]), int(p["min_points"]), 2
        )
        return _squash(f[:, :2])

    def compute(self, t: IntArray, v: FloatArray, start: int, base: int) -> FloatArray:
        p = self.params
        n_new = v.size - start
        if self._model is None:
            # restored (or new): replay the points the model's masses depend on
            self._model = self._new_model()
            n_seen = base + start
            ws = int(p["window_size"])
            first = max(0, (n_seen // ws - 1) * ws)
            if n_seen > first:
                old = self._features(v[:start], first - base, base)
                for a, b in old.tolist():
                    self._model.learn_one({"z": a, "dz": b})
        feats = self._features(v, start, base)
        model = self._model
        raw = np.zeros(n_new)
        for i, (a, b) in enumerate(feats.tolist()):
            x = {"z": a, "dz": b}
            raw[i] = model.score_one(x)
            model.learn_one(x)
        abs_new = base + start + np.arange(n_new)
        raw[abs_new < int(p["min_points"])] = 0.0
        raw = -np.log(np.maximum(1.0 - raw, 1e-9))  # tree scores crowd near 1: spread them
        s = self.calibrate(raw, abs_new)
        self._explain = {"rule": self.name, "tree_score": float(1.0 - np.exp(-raw[-1]))}
        return s
