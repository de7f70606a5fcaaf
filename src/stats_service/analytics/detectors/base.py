"""What every anomaly detector is.

A detector scores a series point by point as a stream: the score of point i uses only
points 0..i (scoring a prefix gives the same scores as the same rows of the full
series). Scores are in [0, 1]; thresholds adapt to each series (no per-series constant).

    detector = make("ensemble")                # from the catalogue (detectors/__init__.py)
    scores = detector.score(times_us, values)  # one score per point, a float64 array
    state = detector.state()                   # JSON-able: what `train` saves, so that
    detector = make("ensemble", state=state)   # scoring goes on where it stopped
    s = detector.update(t_us, value)           # one more point (real-time scoring)
    why = detector.explain()                   # what drove the last score (feature/rule)
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class Detector(Protocol):
    name: str

    def score(self, times_us: IntArray, values: FloatArray) -> FloatArray:
        """Scores of these points, in order, continuing from the detector's state."""
        ...

    def update(self, time_us: int, value: float) -> float:
        """The score of one more point."""
        ...

    def state(self) -> dict[str, Any]:
        """What is needed to go on scoring later (JSON-able)."""
        ...

    def explain(self) -> dict[str, Any]:
        """Why the last point got its score: e.g. {"rule": "robust_z", "z": 7.2}."""
        ...
