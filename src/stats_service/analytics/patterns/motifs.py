"""Motifs and discords with the matrix profile (stumpy).

The matrix profile gives, for every window of `m` buckets, the z-normalised distance
to its nearest other window. Its smallest values are motifs (a pattern that recurs:
the window and its nearest neighbour), its largest are discords (a window unlike any
other). Each found window excludes the `m` buckets around it (and its neighbour's) from
the next picks, so the answer lists distinct places.

The window is given (a duration) or derived: the dominant period of the series when the
spectrum has a clear one, else a twentieth of the series; between 4 buckets and a
quarter of the series.

stumpy compiles its numba functions on first use (tens of seconds); `enable_jit_cache`
keeps the compiled code on disk (NUMBA_CACHE_DIR, default ~/.cache/stats-service/numba)
so only the first use on a machine pays it.
"""

from __future__ import annotations

import importlib
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import BadParameter
from ...model import Float64Array
from .data import Grid, period_of
from .spectrum import peaks

MIN_WINDOW = 4
_JIT_LOCK = threading.Lock()
_JIT_READY = False


def cache_dir() -> Path:
    given = os.environ.get("NUMBA_CACHE_DIR")
    if given:
        return Path(given)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "stats-service" / "numba"


def enable_jit_cache() -> None:
    """Keep stumpy's compiled functions on disk (once per process; best effort: without
    a writable cache directory they are compiled again by each process)."""
    global _JIT_READY
    with _JIT_LOCK:
        if _JIT_READY:
            return
        _JIT_READY = True
        import numba
        from stumpy import cache as stumpy_cache

        try:
            where = cache_dir()
            where.mkdir(parents=True, exist_ok=True)
            if not os.environ.get("NUMBA_CACHE_DIR"):
                setattr(numba.config, "CACHE_DIR", str(where))  # noqa: B010
            for module_name, func_name in stumpy_cache.get_njit_funcs():
                module = importlib.import_module(f".{module_name}", package="stumpy")
                getattr(module, func_name).enable_caching()
        except (OSError, AttributeError):
            return


def matrix_profile(series: Float64Array, m: int) -> tuple[Float64Array, np.ndarray]:
    """(distances, nearest neighbour index) of every window of `m` buckets."""
    enable_jit_cache()
    import stumpy

    profile = stumpy.stump(series, m)
    distances = np.asarray(profile[:, 0], dtype=np.float64)
    neighbours = np.asarray(profile[:, 1], dtype=np.int64)
    return distances, neighbours


def derive_window(series: Float64Array) -> int:
    n = series.shape[0]
    window = n // 20
    found = peaks(series, 1)
    if found and found[0][1] >= 0.2:
        window = round(found[0][0])
    return int(max(MIN_WINDOW, min(window, n // 4)))


def check_window(m: int, n: int) -> None:
    if m < MIN_WINDOW or m > n // 4:
        raise BadParameter(
            "window",
            f"{m} buckets: the window must be between {MIN_WINDOW} buckets and a quarter "
            f"of the range ({n} buckets with data, so at most {n // 4})",
        )


def _pick(order: np.ndarray, distances: Float64Array, count: int, m: int, pair: Any) -> list[int]:
    """The first `count` indexes of `order` (finite distance) outside the exclusion
    zones of those already picked (and of their neighbours when `pair` gives them)."""
    blocked = np.zeros(distances.shape[0], dtype=bool)
    out: list[int] = []
    for index in order.tolist():
        if len(out) >= count:
            break
        if blocked[index] or not np.isfinite(distances[index]):
            continue
        out.append(index)
        for at in (index, pair(index)) if pair is not None else (index,):
            if at is not None and at >= 0:
                blocked[max(0, at - m + 1) : at + m] = True
    return out


def analyse(grid: Grid, *, window: int | None = None, top: int = 3) -> dict[str, Any]:
    series = grid.values[0]
    derived = window is None
    m = derive_window(series) if window is None else window
    check_window(m, grid.n)
    distances, neighbours = matrix_profile(series, m)
    order = np.argsort(distances, kind="stable")
    motif_at = _pick(order, distances, top, m, lambda i: int(neighbours[i]))
    discord_at = _pick(order[::-1], distances, top, m, None)
    motifs = []
    for index in motif_at:
        other = int(neighbours[index])
        first, second = sorted((index, other))
        motifs.append(
            {
                "distance": round(float(distances[index]), 6),
                "a": {"index": first, "time": grid.time(first)},
                "b": {"index": second, "time": grid.time(second)},
            }
        )
    discords = [
        {
            "distance": round(float(distances[i]), 6),
            "index": i,
            "time": grid.time(i),
            "nearest": {"index": int(neighbours[i]), "time": grid.time(int(neighbours[i]))},
        }
        for i in discord_at
    ]
    return {
        **grid.head(),
        "window": {**period_of(m, grid.width_s), "derived": derived},
        "motifs": motifs,
        "discords": discords,
    }
