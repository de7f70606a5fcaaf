"""Fill of empty buckets on a full bucket grid, in numpy (no per-bucket Python).

none      only buckets that hold data are returned (no grid at all)
null      every bucket of the grid; empty ones are null
previous  an empty bucket repeats the value of the last bucket with data before it
zero      an empty bucket is 0
linear    an empty bucket between two with data is interpolated in time; none at the ends
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ..errors import BadParameter
from ..model import Float64Array, Int64Array

FILLS = ("none", "null", "previous", "zero", "linear")
BoolArray = npt.NDArray[np.bool_]


def parse_fill(text: str | None) -> str:
    mode = (text or "none").strip().lower()
    if mode not in FILLS:
        raise BadParameter("fill", f"{text!r} is not a fill mode; valid are {', '.join(FILLS)}")
    return mode


def _slots(grid: Int64Array, at: Int64Array) -> tuple[Int64Array, BoolArray]:
    """Index in `grid` of every bucket start in `at`, and whether it is on the grid."""
    index = np.searchsorted(grid, at).astype(np.int64)
    if grid.shape[0] == 0:
        return index, np.zeros(at.shape[0], dtype=np.bool_)
    inside = (index < grid.shape[0]) & (grid[np.minimum(index, grid.shape[0] - 1)] == at)
    return index, inside


def place(grid: Int64Array, at: Int64Array, column: Float64Array) -> Float64Array:
    """`column` (values at the bucket starts `at`) spread over the grid; NaN elsewhere."""
    out = np.full(grid.shape[0], np.nan, dtype=np.float64)
    index, inside = _slots(grid, at)
    out[index[inside]] = column[inside]
    return out


def counts(grid: Int64Array, at: Int64Array, column: Int64Array) -> Int64Array:
    """Point counts over the grid: 0 for an empty bucket."""
    out = np.zeros(grid.shape[0], dtype=np.int64)
    index, inside = _slots(grid, at)
    out[index[inside]] = column[inside]
    return out


def fill(grid: Int64Array, column: Float64Array, has_data: BoolArray, mode: str) -> Float64Array:
    """The grid-shaped `column` with its empty buckets (`~has_data`) filled per `mode`."""
    out = column.copy()
    empty = ~has_data
    if mode == "zero":
        out[empty] = 0.0
    elif mode == "previous":
        source = np.where(has_data, np.arange(out.shape[0]), -1)
        source = np.maximum.accumulate(source) if source.shape[0] else source
        filled = np.where(source >= 0, column[np.maximum(source, 0)], np.nan)
        out[empty] = filled[empty]
    elif mode == "linear":
        known = has_data & np.isfinite(column)
        if known.sum() >= 2:
            inner = empty & (grid > grid[known][0]) & (grid < grid[known][-1])
            out[inner] = np.interp(grid[inner], grid[known], column[known])
    return out
