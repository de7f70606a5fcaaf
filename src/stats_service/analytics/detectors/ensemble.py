"""The default detector: an ensemble of robust evidence, calibrated per series.

Members (each a non-negative "how unusual" number per point, from past points only):
    spike     robust z of the value against the trailing window (median/MAD)
    level     robust z of the mean of the last `short` points (level shifts, slow
              drifts into a new range)
    jump      robust z of the step from the previous value against the trailing steps
    season    robust z of the change from the same time one day earlier against the
              trailing window of such changes (breaks of a daily pattern)
    week      the same one week earlier (weekly patterns; needs the week in the
              buffer: at most `season_max_points` points back)
    spread    (off by default) spread of the last `spread_points` points over the
              window's spread

Calibration (the threshold adapts to each series): each member's value is divided by
the largest value that member reached in the recent past of this series (the last
`keep` blocks of `block` points; at least `min_record` sigmas, and at least `long_frac`
of the member's long-term record, which decays by `long_decay` per point) and by the
member's weight; the ratio r becomes r^p / (1 + r^p), so 0.5 means "as unusual as the
recent record". A member scores only after `warmup` points, and after
`<member>_mature` points of its own evidence. The ensemble score is the largest
calibrated member. After a point scores above `alarm_level`, the next `quiet` points
are damped to below `alarm_level` unless they score higher than that alarm (one alarm
per event, as NAB rewards). All settings are the same for every series (tuned once on
the NAB DEV files).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ._window import MAD_TO_SIGMA, WindowDetector, block_records, trailing_mean_std
from .base import FloatArray, IntArray
from .robust_z import robust_z

DAY_US = 86_400_000_000
MEMBERS = ("spike", "level", "jump", "season", "week", "spread")


def decayed_max(z: FloatArray, prev: float, decay: float) -> FloatArray:
    """M_i = max(M_{i-1} * decay, z_i) with M_{-1} = prev, vectorised in the log domain."""
    m = z.size
    if m == 0:
        return np.zeros(0)
    ld = float(np.log(decay))
    j = np.arange(m, dtype=np.float64)
    with np.errstate(divide="ignore"):
        lz = np.log(np.maximum(z, 0.0))
    lp = float(np.log(prev)) if prev > 0 else -np.inf
    acc = np.maximum.accumulate(np.maximum(lz - j * ld, lp + ld))
    out: FloatArray = np.exp(acc + j * ld)
    return out


def _shift_diff(v: FloatArray) -> FloatArray:
    d = np.empty_like(v)
    d[0] = 0.0
    np.subtract(v[1:], v[:-1], out=d[1:])
    return d


class Ensemble(WindowDetector):
    name: ClassVar[str] = "ensemble"
    defaults: ClassVar[dict[str, Any]] = {
        "window": 576,  # trailing points for median/MAD
        "step": 16,  # window statistics refreshed every `step` points
        "short": 12,  # points averaged by the level member
        "min_points": 64,  # no statistics from fewer past points
        "warmup": 240,  # no score before this many points
        "block": 128,  # records are kept per block of points ...
        "keep": 10,  # ... for this many blocks
        "power": 4.0,  # sharpness of the record ratio → score map
        "long_frac": 0.4,  # the record is at least this fraction of the long-term record
        "long_decay": 0.99995,  # per point decay of the long-term record
        "min_record": 3.0,  # sigmas: the smallest record that counts
        "alarm_level": 0.5,
        "quiet": 100,  # points damped after an alarm ...
        "quiet_margin": 0.0,  # ... unless they beat the alarm's score by this much
        "quiet_min_gap": 0,  # ... and come at least this many points after it
        "mature": 0,  # a member scores once it has had this many points of evidence
        "season_mature": 0,  # the same for the season member
        "week_mature": 1500,  # and for the week member
        "members": [m for m in MEMBERS if m != "spread"],
        "spread_points": 24,
        # a member's ratio is divided by its weight: members that set new records in
        # normal data more often (steps, seasonal changes) need a larger margin
        "weights": {"spike": 1.0, "level": 1.0, "jump": 1.1, "season": 1.25, "week": 1.0},
        "season_us": DAY_US,
        "week_us": 7 * DAY_US,
        "season_max_points": 2016,
    }

    def history(self) -> int:
        p = self.params
        return int(p["window"]) + int(p["step"]) + int(p["short"]) + 2 + int(p["season_max_points"])

    def initial_extra(self) -> dict[str, Any]:
        e: dict[str, Any] = {f"rec_{m}": {} for m in MEMBERS}
        e["since_alarm"] = 10**9
        return e

    def _season_diff(
        self, t: IntArray, v: FloatArray, lag_us: int
    ) -> tuple[FloatArray, FloatArray]:
        """x_i - x(t_i - season) (the last point at or before that time in the buffer),
        and a mask of where such a point exists."""
        lag_t = t - lag_us
        j = np.searchsorted(t, lag_t, side="right") - 1
        ok = j >= 0
        # times may repeat or go back a little: only trust lags about one season back
        jj = np.maximum(j, 0)
        ok &= np.abs((t - t[jj]) - lag_us) <= lag_us // 48
        d = np.where(ok, v - v[jj], 0.0)
        return d, ok.astype(np.float64)

    def compute(self, t: IntArray, v: FloatArray, start: int, base: int) -> FloatArray:
        p = self.params
        w, step, mp = int(p["window"]), int(p["step"]), int(p["min_points"])
        n_new = v.size - start
        feats: dict[str, FloatArray] = {}
        members = set(p["members"])
        z, med, sig = robust_z(v, start, base, w, step, mp)
        if "spike" in members:
            feats["spike"] = z
        if "level" in members:
            k = int(p["short"])
            mean_k, _ = trailing_mean_std(v, start, k)
            feats["level"] = np.abs(mean_k - med) / sig
        if "spread" in members:
            _, std_k = trailing_mean_std(v, start, int(p["spread_points"]))
            feats["spread"] = std_k / sig
        if "jump" in members:
            d = _shift_diff(v)
            zj, _, _ = robust_z(d, start, base, w, step, mp)
            feats["jump"] = zj
        for member, key in (("season", "season_us"), ("week", "week_us")):
            if member not in members:
                continue
            sd, ok = self._season_diff(t, v, int(p[key]))
            zs, _, _ = robust_z(sd, start, base, w, step, mp)
            # only once the whole trailing window holds such changes
            ok_back = np.concatenate((np.zeros(w), ok))[: ok.size]
            feats[member] = zs * ok[start:] * ok_back[start:]
        abs_idx = base + start + np.arange(n_new)
        young = abs_idx < max(mp, int(p["warmup"]))
        power = float(p["power"])
        best = np.zeros(n_new)
        which = np.full(n_new, -1)
        for k_m, name in enumerate(MEMBERS):
            if name not in feats:
                continue
            f = np.nan_to_num(feats[name], nan=0.0, posinf=0.0)
            f[young] = 0.0
            seen = int(self.extra.get(f"seen_{name}", 0))
            valid = np.cumsum(f > 0) + seen
            self.extra[f"seen_{name}"] = int(valid[-1])
            before = np.maximum(
                block_records(
                    f, abs_idx, self.extra[f"rec_{name}"], int(p["block"]), int(p["keep"])
                ),
                float(p["min_record"]),
            )
            if float(p["long_frac"]) > 0:
                prev_long = float(self.extra.get(f"long_{name}", 0.0))
                long = decayed_max(f, prev_long, float(p["long_decay"]))
                self.extra[f"long_{name}"] = float(long[-1])
                long_before = np.concatenate(([prev_long], long[:-1]))
                before = np.maximum(before, float(p["long_frac"]) * long_before)
            with np.errstate(divide="ignore", invalid="ignore"):
                r = np.where(before > 0, f / np.where(before > 0, before, 1.0), 0.0)
            # the first evidence of a young series has no record yet: ratio 1
            r = r / float(p["weights"].get(name, 1.0))
            mature = int(p.get(f"{name}_mature", p["mature"]))
            r = np.where(valid > mature, r, 0.0)
            rp = r**power
            s = rp / (1.0 + rp)
            better = s > best
            best = np.where(better, s, best)
            which = np.where(better, k_m, which)
        out = self._quiet(best)
        last = int(which[-1])
        self._explain = {
            "rule": self.name,
            "member": MEMBERS[last] if last >= 0 else None,
            "score": float(out[-1]),
            "median": float(med[-1]),
            "sigma": float(sig[-1]) if np.isfinite(sig[-1]) else None,
            "mad_to_sigma": MAD_TO_SIGMA,
        }
        return out

    def _quiet(self, s: FloatArray) -> FloatArray:
        """Damp scores for `quiet` points after a point above `alarm_level`."""
        level = float(self.params["alarm_level"])
        quiet = int(self.params["quiet"])
        since = int(self.extra["since_alarm"])
        peak = float(self.extra.get("alarm_score", 0.0))
        margin = float(self.params["quiet_margin"])
        min_gap = int(self.params["quiet_min_gap"])
        out = s.copy()
        hi = np.flatnonzero(s >= level)
        pos = -since  # block-relative index of the last alarm
        for i in hi.tolist():
            if i - pos <= quiet and (s[i] <= peak + margin or i - pos <= min_gap):
                out[i] = s[i] * level * 0.99
            else:
                pos, peak = i, float(s[i])
        self.extra["since_alarm"] = int(s.size - pos)
        self.extra["alarm_score"] = peak
        return out
