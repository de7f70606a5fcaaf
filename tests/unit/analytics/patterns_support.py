"""Synthetic grids for the pattern analysis unit tests."""

from __future__ import annotations

import numpy as np

from stats_service.analytics.patterns.data import Grid
from stats_service.model import Float64Array
from stats_service.query.series import SeriesInfo

START_US = 1_790_000_000 * 1_000_000  # a whole minute
MINUTE_US = 60_000_000


def grid(*columns: Float64Array, width_us: int = MINUTE_US) -> Grid:
    n = columns[0].shape[0]
    starts = START_US + np.arange(n, dtype=np.int64) * width_us
    infos = [
        SeriesInfo(100 + i, f"m{i}", "dev", {"device": "dev"}, None, 0, None, None)
        for i in range(len(columns))
    ]
    gaps = {"interpolated": 0, "trimmed_start": 0, "trimmed_end": 0}
    return Grid(width_us, starts, [np.asarray(c, dtype=np.float64) for c in columns], infos, gaps)
