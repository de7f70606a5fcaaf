"""Numenta Anomaly Benchmark (NAB v1.1) scoring, as described in benchmarks/nab_dev/README.md.

A detector gives one score in [0, 1] per row. A row is an alarm when its score >= T.

- Probation: the first min(floor(0.15 * rows), 750) rows of each file; alarms there are
  ignored.
- Inside a window only the earliest alarm counts: A_TP * s(y) / s(-1) with
  y = -(end - i + 1) / width and s(y) = 2 / (1 + e^(5y)) - 1.
- A window without an alarm costs -A_FN.
- An alarm outside every window costs A_FP * s(y) (negative) with
  y = (i - end_prev) / (width_prev - 1) from the closest earlier window; before the
  file's first window it costs the full -A_FP.
- The raw score is the sum over all files for one threshold T shared by all files, T
  chosen to maximise it among every distinct score and "no alarm at all".
- Normalised: 100 * (raw - raw_null) / (raw_perfect - raw_null), raw_null = -A_FN * W,
  raw_perfect = A_TP * W (W windows).

`optimise(files, profile)` finds T with one sweep over all scores (each distinct score
changes the raw score by known amounts: a row outside windows adds its FP cost, a new
earliest alarm in a window replaces the window's previous value).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Profile:
    name: str
    a_tp: float
    a_fp: float
    a_fn: float
    a_tn: float = 1.0  # listed by NAB, unused


PROFILES: dict[str, Profile] = {
    "standard": Profile("standard", 1.0, 0.11, 1.0),
    "reward_low_FP_rate": Profile("reward_low_FP_rate", 1.0, 0.22, 1.0),
    "reward_low_FN_rate": Profile("reward_low_FN_rate", 1.0, 0.11, 2.0),
}


@dataclass
class NabFile:
    """One labelled series: rows in file order, windows as inclusive row ranges."""

    name: str
    times_us: IntArray
    values: FloatArray
    windows: list[tuple[int, int]]

    @property
    def probation(self) -> int:
        return probation_rows(self.times_us.size)


@dataclass
class Result:
    profile: str
    threshold: float  # inf = no alarm at all
    raw: float
    score: float  # normalised
    windows: int
    windows_hit: int
    fp_rows: int
    per_file: dict[str, float] = field(default_factory=dict)


def probation_rows(rows: int, percent: float = 0.15) -> int:
    return int(min(math.floor(percent * rows), percent * 5000))


def sigmoid(y: FloatArray | float) -> FloatArray:
    """NAB's scaled sigmoid s(y) = 2 / (1 + e^(5y)) - 1."""
    y = np.clip(np.asarray(y, dtype=np.float64), -100.0, 100.0)
    out: FloatArray = 2.0 / (1.0 + np.exp(5.0 * y)) - 1.0
    return out


S_MINUS_1 = float(sigmoid(-1.0))


def tp_value(i: int | IntArray, start: int, end: int, profile: Profile) -> FloatArray:
    width = end - start + 1
    y = -(end - np.asarray(i, dtype=np.float64) + 1.0) / width
    out: FloatArray = profile.a_tp * sigmoid(y) / S_MINUS_1
    return out


def fp_costs(rows: int, windows: list[tuple[int, int]], profile: Profile) -> FloatArray:
    """Cost (<= 0) of an alarm at each row if that row is outside every window
    (rows inside windows get NaN)."""
    idx = np.arange(rows, dtype=np.float64)
    cost = np.full(rows, -profile.a_fp)
    for s, e in sorted(windows):
        width = e - s + 1
        after = idx > e
        y = (idx[after] - e) / max(width - 1, 1)
        cost[after] = profile.a_fp * sigmoid(y)
    for s, e in windows:
        cost[s : e + 1] = np.nan
    return cost


def score_file(
    scores: FloatArray, windows: list[tuple[int, int]], threshold: float, profile: Profile
) -> tuple[float, int, int]:
    """Raw score of one file at one threshold: (raw, windows hit, FP rows)."""
    scores = np.asarray(scores, dtype=np.float64)
    n = scores.size
    prob = probation_rows(n)
    alarm = scores >= threshold
    alarm[:prob] = False
    raw = 0.0
    hit = 0
    for s, e in windows:
        a = np.flatnonzero(alarm[s : e + 1])
        if a.size:
            raw += float(tp_value(s + int(a[0]), s, e, profile))
            hit += 1
        else:
            raw -= profile.a_fn
    cost = fp_costs(n, windows, profile)
    fp = alarm & ~np.isnan(cost)
    raw += float(cost[fp].sum())
    return raw, hit, int(fp.sum())


def _events(
    scores: FloatArray, windows: list[tuple[int, int]], profile: Profile
) -> tuple[float, FloatArray, FloatArray]:
    """(raw score with no alarm, event thresholds, event deltas): the raw score at T is
    base + sum of deltas whose threshold >= T."""
    scores = np.asarray(scores, dtype=np.float64)
    n = scores.size
    prob = probation_rows(n)
    base = -profile.a_fn * len(windows)
    cost = fp_costs(n, windows, profile)
    rows = np.arange(n)
    fp_rows = (rows >= prob) & ~np.isnan(cost)
    ev_t = [scores[fp_rows]]
    ev_d = [cost[fp_rows]]
    for s, e in windows:
        lo = max(s, prob)
        if lo > e:
            continue
        seg = scores[lo : e + 1]
        pmax = np.maximum.accumulate(seg)
        rec = np.flatnonzero(np.concatenate(([True], pmax[1:] > pmax[:-1])))
        vals = tp_value(lo + rec, s, e, profile)
        # sweeping T down: the highest record switches the window from -A_FN to its
        # value, each lower record moves the earliest alarm earlier
        rec_t = seg[rec]
        prev = np.concatenate((vals[1:], [-profile.a_fn]))
        ev_t.append(rec_t)
        ev_d.append(vals - prev)
    return base, np.concatenate(ev_t), np.concatenate(ev_d)


def optimise(
    files: list[tuple[str, FloatArray, list[tuple[int, int]]]], profile: Profile
) -> Result:
    """Best single threshold over all files (name, scores, windows) for a profile."""
    base = 0.0
    ts: list[FloatArray] = []
    ds: list[FloatArray] = []
    n_windows = 0
    for _, scores, windows in files:
        b, t, d = _events(scores, windows, profile)
        base += b
        ts.append(t)
        ds.append(d)
        n_windows += len(windows)
    t_all = np.concatenate(ts) if ts else np.zeros(0)
    d_all = np.concatenate(ds) if ds else np.zeros(0)
    best_raw, best_t = base, math.inf
    if t_all.size:
        order = np.argsort(-t_all, kind="stable")
        t_s = t_all[order]
        cum = base + np.cumsum(d_all[order])
        # the raw score at T = t_s[k] includes every event with threshold >= t_s[k]:
        # take the last position of each run of equal thresholds
        last = np.flatnonzero(np.concatenate((t_s[1:] != t_s[:-1], [True])))
        k = int(last[np.argmax(cum[last])])
        if cum[k] > best_raw:
            best_raw, best_t = float(cum[k]), float(t_s[k])
    per_file: dict[str, float] = {}
    hit = fp = 0
    raw_check = 0.0
    for name, scores, windows in files:
        r, h, f = score_file(scores, windows, best_t, profile)
        per_file[name] = per_file.get(name, 0.0) + r
        raw_check += r
        hit += h
        fp += f
    null = -profile.a_fn * n_windows
    perfect = profile.a_tp * n_windows
    norm = 100.0 * (raw_check - null) / (perfect - null) if n_windows else 0.0
    return Result(profile.name, best_t, raw_check, norm, n_windows, hit, fp, per_file)


def evaluate(
    files: list[tuple[str, FloatArray, list[tuple[int, int]]]],
) -> dict[str, Result]:
    return {name: optimise(files, p) for name, p in PROFILES.items()}


# --- the data ---------------------------------------------------------------------


def _parse_times(stamps: list[str]) -> IntArray:
    arr = np.array([s.strip().replace(" ", "T") for s in stamps], dtype="datetime64[us]")
    out: IntArray = arr.astype(np.int64)
    return out


def load(root: str | Path) -> list[NabFile]:
    """The labelled files of a NAB directory (data/<category>/<file>.csv and
    labels/combined_windows.json), sorted by name; windows as row ranges."""
    root = Path(root)
    labels = json.loads((root / "labels" / "combined_windows.json").read_text())
    out: list[NabFile] = []
    for name in sorted(labels):
        path = root / "data" / name
        lines = path.read_text().strip().splitlines()[1:]
        stamps, vals = zip(*(ln.split(",", 1) for ln in lines), strict=True)
        t = _parse_times(list(stamps))
        v = np.array([float(x) for x in vals], dtype=np.float64)
        rows: list[tuple[int, int]] = []
        for ws, we in labels[name]:
            s_us = int(_parse_times([ws])[0])
            e_us = int(_parse_times([we])[0])
            s_rows = np.flatnonzero(t == s_us)
            e_rows = np.flatnonzero(t == e_us)
            if s_rows.size == 0 or e_rows.size == 0:
                raise ValueError(f"{name}: window {ws}..{we} is not on the file's rows")
            rows.append((int(s_rows[0]), int(e_rows[-1])))
        out.append(NabFile(name, t, v, rows))
    return out
