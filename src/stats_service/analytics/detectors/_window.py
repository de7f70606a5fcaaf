"""Shared machinery of the catalogue's detectors: a bounded history buffer that makes
every detector a stream.

A detector keeps the last `history` points (times, values), the count `n` of points
seen so far and a few running numbers (`extra`, e.g. the largest z so far). `score`
appends the new points to the buffer and asks the subclass for the scores of the new
rows only. Everything a score uses is a trailing window of the buffer or a running
number, so the score of point i depends on points 0..i only: scoring a prefix gives the
same scores as the same rows of the full series, and `make(name, state=d.state())`
goes on exactly where `d` stopped.

Windowed statistics are computed at *anchors*: every `step` points (counted from the
first point of the stream, so the anchors do not depend on how the stream is cut into
calls) from the `window` points before the anchor. Point i uses the anchor at or before
i. This keeps the cost at O(n * window / step) and uses past points only.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .base import FloatArray, IntArray

MAD_TO_SIGMA = 1.4826


def as_arrays(times_us: Any, values: Any) -> tuple[IntArray, FloatArray]:
    t = np.asarray(times_us, dtype=np.int64).ravel()
    v = np.asarray(values, dtype=np.float64).ravel()
    if t.shape != v.shape:
        raise ValueError("times_us and values must have the same length")
    return t, v


def ffill(v: FloatArray, last: float) -> FloatArray:
    """Non-finite values take the last finite value before them (`last` carries it
    across calls; 0 when there is none yet)."""
    bad = ~np.isfinite(v)
    if not bad.any():
        return v
    idx = np.where(bad, -1, np.arange(v.size))
    idx = np.maximum.accumulate(idx)
    fill = last if np.isfinite(last) else 0.0
    out: FloatArray = np.where(idx >= 0, v[np.maximum(idx, 0)], fill)
    return out


def anchor_windows(
    v: FloatArray, base: int, start: int, window: int, step: int, min_points: int = 8
) -> tuple[IntArray, Rows | None, IntArray]:
    """The anchors that rows start.. of `v` use, and the trailing windows behind them.

    `v` is the buffer (absolute index of v[0] is `base`); rows `start:` are the new
    ones. Returns (anchor_of_row, windows, ok): anchor_of_row[k] is the position in the
    returned list of anchors used by new row k; windows holds one row per anchor
    (`window` columns, NaN-padded at the left while the stream is young), and ok
    marks anchors that had at least `min_points` past points."""
    n_new = v.size - start
    abs_idx = base + start + np.arange(n_new)
    anchor_abs = (abs_idx // step) * step
    uniq, inv = np.unique(anchor_abs, return_inverse=True)
    rel = uniq - base  # position of each anchor in the buffer
    if uniq.size == 0:
        return inv.astype(np.int64), None, np.zeros(0, dtype=np.int64)
    padded = np.concatenate((np.full(window, np.nan), v))
    # window for anchor at buffer position r is v[r-window:r] = padded[r:r+window]
    if (rel < 0).any():
        raise RuntimeError("history buffer too short for the anchors")
    view = sliding_window_view(padded, window)
    wins = Rows(view, rel)
    have = np.minimum(uniq, window)  # past points available (absolute count)
    ok = (have >= min_points).astype(np.int64)
    # rows whose window starts before the stream start carry NaN where there is no data
    return inv.astype(np.int64), wins, ok


class WindowDetector:
    """Base class: buffer, state round trip, update(), explain()."""

    name: ClassVar[str] = "window"
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, state: dict[str, Any] | None = None, **params: Any) -> None:
        unknown = set(params) - set(self.defaults)
        if unknown:
            raise ValueError(
                f"{self.name}: unknown parameter(s) {sorted(unknown)}; "
                f"known: {sorted(self.defaults)}"
            )
        merged = dict(self.defaults)
        if state is not None:
            merged.update(state.get("params", {}))
        merged.update(params)
        self.params: dict[str, Any] = merged
        self._n = 0
        self._t: IntArray = np.zeros(0, dtype=np.int64)
        self._v: FloatArray = np.zeros(0, dtype=np.float64)
        self._last = float("nan")
        self.extra: dict[str, Any] = self.initial_extra()
        self._explain: dict[str, Any] = {"rule": self.name, "reason": "no point scored yet"}
        if state is not None:
            self._n = int(state["n"])
            self._t = np.asarray(state["t"], dtype=np.int64)
            self._v = np.asarray(state["v"], dtype=np.float64)
            self._last = float(state.get("last", float("nan")))
            self.extra.update(state.get("extra", {}))
            self._explain = dict(state.get("explain", self._explain))
            self.restore()

    # --- for subclasses -------------------------------------------------------
    def history(self) -> int:
        """How many past points the scores of new points may use."""
        raise NotImplementedError

    def initial_extra(self) -> dict[str, Any]:
        return {}

    def restore(self) -> None:
        """Rebuild anything derived (fitted models) after a state was loaded."""

    def compute(self, t: IntArray, v: FloatArray, start: int, base: int) -> FloatArray:
        """Scores of rows start.. of the buffer (t, v); v[0] has absolute index base.
        May update self.extra (running numbers) and self._explain."""
        raise NotImplementedError

    # --- the interface --------------------------------------------------------
    def score(self, times_us: IntArray, values: FloatArray) -> FloatArray:
        t_new, v_new = as_arrays(times_us, values)
        if t_new.size == 0:
            return np.zeros(0, dtype=np.float64)
        v_new = ffill(v_new, self._last)
        self._last = float(v_new[-1])
        h = self._t.size
        t = np.concatenate((self._t, t_new))
        v = np.concatenate((self._v, v_new))
        base = self._n - h
        out = self.compute(t, v, h, base)
        out = np.clip(np.nan_to_num(out, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
        self._n += t_new.size
        keep = max(int(self.history()), 1)
        self._t = t[-keep:].copy()
        self._v = v[-keep:].copy()
        self.after_score(t, v, base)
        return out

    def calibrate(self, f: FloatArray, abs_idx: IntArray) -> FloatArray:
        """record_ratio_score with the detector's block/keep/warmup parameters and its
        records in extra["records"]."""
        p = self.params
        return record_ratio_score(
            f,
            abs_idx,
            self.extra["records"],
            int(p["block"]),
            int(p["keep"]),
            warmup=int(p["warmup"]),
            min_record=float(p["min_record"]),
        )

    def after_score(self, t: IntArray, v: FloatArray, base: int) -> None:
        """Hook after the buffer moved on (e.g. refit models on schedule)."""

    def update(self, time_us: int, value: float) -> float:
        return float(self.score(np.array([time_us]), np.array([value]))[0])

    def state(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "params": dict(self.params),
            "n": self._n,
            "t": self._t.tolist(),
            "v": self._v.tolist(),
            "last": self._last if np.isfinite(self._last) else None,
            "extra": _jsonable(self.extra),
            "explain": _jsonable(self._explain),
        }

    def explain(self) -> dict[str, Any]:
        return dict(self._explain)


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return [_jsonable(v) for v in x.tolist()]
    if isinstance(x, (np.floating, float)):
        f = float(x)
        return f if np.isfinite(f) else None
    if isinstance(x, (np.integer,)):
        return int(x)
    return x


def _nanmedian_row(row: FloatArray) -> float:
    row = row[~np.isnan(row)]
    return float(np.median(row)) if row.size else float("nan")


class Rows:
    """Rows `rel` of a sliding-window view, materialised a chunk at a time."""

    def __init__(self, view: FloatArray, rel: IntArray) -> None:
        self.view = view
        self.rel = rel

    def __len__(self) -> int:
        return int(self.rel.size)

    def chunk(self, lo: int, hi: int) -> FloatArray:
        out: FloatArray = self.view[self.rel[lo:hi]]
        return out

    def all(self) -> FloatArray:
        return self.chunk(0, len(self))


def median_mad_rows(w: Rows, chunk: int = 2048) -> tuple[FloatArray, FloatArray]:
    """Median and MAD (not rescaled) of each row of `w`, ignoring NaN. Works in chunks
    that stay in cache (a plain np.median of a large 2-D copy is several times slower)."""
    rows = len(w)
    med = np.empty(rows)
    mad = np.empty(rows)
    for lo in range(0, rows, chunk):
        c = w.chunk(lo, lo + chunk)
        nan_rows = np.flatnonzero(np.isnan(c).any(axis=1))
        if nan_rows.size:
            for i in nan_rows:
                m = _nanmedian_row(c[i])
                med[lo + i] = m
                mad[lo + i] = _nanmedian_row(np.abs(c[i] - m))
            c[nan_rows] = 0.0
        m_c = np.median(c, axis=1)
        np.subtract(c, m_c[:, None], out=c)
        np.abs(c, out=c)
        d_c = np.median(c, axis=1, overwrite_input=True)
        if nan_rows.size:
            keep = np.ones(c.shape[0], dtype=bool)
            keep[nan_rows] = False
            med[lo : lo + c.shape[0]][keep] = m_c[keep]
            mad[lo : lo + c.shape[0]][keep] = d_c[keep]
        else:
            med[lo : lo + c.shape[0]] = m_c
            mad[lo : lo + c.shape[0]] = d_c
    return med, mad


def running_max(x: FloatArray, prev: float) -> FloatArray:
    """max(prev, x[0..k]) for each k."""
    out: FloatArray = np.maximum.accumulate(np.concatenate(([prev], x)))[1:]
    return out


def block_records(
    f: FloatArray, abs_idx: IntArray, blocks: dict[str, float], block: int, keep: int
) -> FloatArray:
    """For each row: the largest f over the previous `keep` whole blocks of `block`
    points and the rows of its own block before it (strictly before the row).
    `blocks` maps block id (str) → max and is updated (only the last keep+1 stay)."""
    m = f.size
    out = np.zeros(m)
    if m == 0:
        return out
    bid = abs_idx // block
    starts = np.flatnonzero(np.concatenate(([True], bid[1:] != bid[:-1])))
    ends = np.concatenate((starts[1:], [m]))
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        b = int(bid[s])
        prior = [blocks.get(str(b - k), 0.0) for k in range(1, keep + 1)]
        base_max = max(prior) if prior else 0.0
        own = blocks.get(str(b), 0.0)
        seg = f[s:e]
        run = np.maximum.accumulate(np.concatenate(([own], seg)))[:-1]
        out[s:e] = np.maximum(run, base_max)
        blocks[str(b)] = float(max(own, float(seg.max())))
    last = int(bid[-1])
    for k in [k for k in blocks if int(k) < last - keep]:
        del blocks[k]
    return out


def record_ratio_score(
    f: FloatArray,
    abs_idx: IntArray,
    blocks: dict[str, float],
    block: int = 64,
    keep: int = 20,
    power: float = 4.0,
    warmup: int = 0,
    min_record: float = 0.0,
) -> FloatArray:
    """Per-series calibration: f divided by the largest f of the recent past (the last
    `keep` blocks of `block` points, see block_records; at least `min_record`, the
    smallest value that can count as unusual at all), mapped to r^p / (1 + r^p):
    0.5 when a point equals the recent record, near 1 well above it. Points before
    `warmup` (absolute index) score 0 and set no record: a young window is no yardstick."""
    f = np.nan_to_num(np.asarray(f, dtype=np.float64), nan=0.0, posinf=0.0)
    if warmup > 0:
        f = np.where(abs_idx < warmup, 0.0, f)
    before = np.maximum(block_records(f, abs_idx, blocks, block, keep), min_record)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(before > 0, f / np.where(before > 0, before, 1.0), 0.0)
    rp = r**power
    out: FloatArray = rp / (1.0 + rp)
    return out


def quantile_rows(w: Rows, qs: tuple[float, ...], chunk: int = 2048) -> FloatArray:
    """Quantiles (columns) of each row of `w`, ignoring NaN; shape (rows, len(qs))."""
    rows = len(w)
    out = np.full((rows, len(qs)), np.nan)
    for lo in range(0, rows, chunk):
        c = w.chunk(lo, lo + chunk)
        nan_rows = np.isnan(c).any(axis=1)
        if (~nan_rows).any():
            out[lo : lo + c.shape[0]][~nan_rows] = np.quantile(c[~nan_rows], qs, axis=1).T
        for i in np.flatnonzero(nan_rows):
            row = c[i][~np.isnan(c[i])]
            if row.size:
                out[lo + i] = np.quantile(row, qs)
    return out


def trailing_mean_std(v: FloatArray, start: int, k: int) -> tuple[FloatArray, FloatArray]:
    """Mean and population std of the last k values up to each row start.. (fewer at the
    stream's start). Computed per window (not by a running sum), so the result does not
    depend on where the buffer begins."""
    k = max(int(k), 1)
    lo = max(start - k + 1, 0)
    seg = v[lo:]
    pad = k - 1 - (start - lo)
    padded = np.concatenate((np.full(pad, np.nan), seg)) if pad > 0 else seg
    win = sliding_window_view(padded, k)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean: FloatArray = np.nanmean(win, axis=1) if pad > 0 else win.mean(axis=1)
        std: FloatArray = np.nanstd(win, axis=1) if pad > 0 else win.std(axis=1)
    return mean, std
