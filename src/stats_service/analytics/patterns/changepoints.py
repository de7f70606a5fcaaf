"""Change points: where the level (model `l2`) or the distribution (model `rbf`) of a
series changes, with ruptures.

Without `n_bkps` the number of changes is chosen by Pelt with a BIC-like penalty from
the noise level: for `l2`, 2·sigma²·ln(n) with sigma estimated robustly from the first
differences (so a steady trend or a few outliers do not inflate it); for `rbf` (which
works on the standardised series, a cost between 0 and 1 per point) 2·ln(n). A given
`pen` replaces either. With `n_bkps` the best `n_bkps` changes are found exactly (dynamic
programming).
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import ruptures as rpt

from ...errors import BadParameter
from ...model import Float64Array
from .data import Grid

MODELS = ("l2", "rbf")


def noise_sigma(values: Float64Array) -> float:
    """Robust noise level: MAD of the first differences / (0.6745·√2)."""
    if values.shape[0] < 3:
        return float(np.std(values))
    diff = np.diff(values)
    mad = float(np.median(np.abs(diff - np.median(diff))))
    sigma = mad / (0.6745 * math.sqrt(2.0))
    if sigma == 0.0:
        sigma = float(np.std(diff)) / math.sqrt(2.0)
    return sigma


def penalty(values: Float64Array, model: str) -> float:
    n = values.shape[0]
    if model == "l2":
        sigma = noise_sigma(values)
        return max(2.0 * sigma * sigma * math.log(n), 1e-12)
    return 2.0 * math.log(n)


def detect(
    values: Float64Array,
    *,
    model: str = "l2",
    n_bkps: int | None = None,
    pen: float | None = None,
    min_size: int = 3,
) -> tuple[list[int], float | None]:
    """Indexes where a new segment starts (ascending) and the penalty used (None with
    `n_bkps`). ruptures' kernel change point detection (C code): Pelt with a penalty,
    exact dynamic programming with `n_bkps`; the linear kernel is the `l2` cost."""
    n = values.shape[0]
    signal = values.reshape(-1, 1)
    if model == "rbf":
        std = float(np.std(values))
        signal = ((values - float(np.mean(values))) / (std if std > 0 else 1.0)).reshape(-1, 1)
    kernel = "linear" if model == "l2" else "rbf"
    algo = rpt.KernelCPD(kernel=kernel, min_size=min_size)
    if n_bkps is not None:
        if n_bkps == 0:
            return [], None
        try:
            ends = algo.fit(signal).predict(n_bkps=n_bkps)
        except rpt.exceptions.BadSegmentationParameters:
            raise BadParameter(
                "n_bkps", f"{n_bkps} changes with min_size {min_size} do not fit {n} buckets"
            ) from None
        return [int(e) for e in ends[:-1]], None
    used = pen if pen is not None else penalty(values, model)
    if n < 2 * min_size:
        return [], used
    ends = algo.fit(signal).predict(pen=used)
    return [int(e) for e in ends[:-1]], used


def analyse(
    grid: Grid,
    *,
    model: str = "l2",
    n_bkps: int | None = None,
    pen: float | None = None,
    min_size: int = 3,
) -> dict[str, Any]:
    values = grid.values[0]
    found, used = detect(values, model=model, n_bkps=n_bkps, pen=pen, min_size=min_size)
    edges = [0, *found, grid.n]
    segments = []
    for lo, hi in itertools.pairwise(edges):
        part = values[lo:hi]
        segments.append(
            {
                "start": grid.time(lo),
                "end": grid.time(hi - 1),
                "buckets": hi - lo,
                "mean": float(np.mean(part)),
                "std": float(np.std(part)),
            }
        )
    changes = []
    for i, index in enumerate(found):
        before = float(np.mean(values[edges[i] : index]))
        after = float(np.mean(values[index : edges[i + 2]]))
        changes.append(
            {
                "index": index,
                "time": grid.time(index),
                "before_mean": before,
                "after_mean": after,
                "shift": after - before,
            }
        )
    return {
        **grid.head(),
        "model": model,
        "penalty": used,
        "n_bkps": n_bkps,
        "noise_sigma": noise_sigma(values),
        "change_points": changes,
        "segments": segments,
    }
