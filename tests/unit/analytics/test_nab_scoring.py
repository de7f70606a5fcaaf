"""NAB scoring on hand-made cases, and the one-sweep optimiser against brute force."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from stats_service.analytics import nab

STD = nab.PROFILES["standard"]
LOW_FP = nab.PROFILES["reward_low_FP_rate"]
LOW_FN = nab.PROFILES["reward_low_FN_rate"]
NAB_DIR = Path(__file__).resolve().parents[3] / "benchmarks" / "nab_dev"  # in the repository


def test_probation_is_15_percent_at_most_750_rows() -> None:
    assert nab.probation_rows(1000) == 150
    assert nab.probation_rows(4032) == 604
    assert nab.probation_rows(22695) == 750


def test_sigmoid_values() -> None:
    assert float(nab.sigmoid(0.0)) == pytest.approx(0.0)
    assert float(nab.sigmoid(-1.0)) == pytest.approx(2 / (1 + math.exp(-5)) - 1)
    assert float(nab.sigmoid(3.5)) == pytest.approx(-1.0, abs=1e-6)


def test_alarm_at_window_start_earns_a_tp_and_late_alarm_earns_less() -> None:
    scores = np.zeros(1000)
    scores[500] = 1.0
    raw, hit, fp = nab.score_file(scores, [(500, 549)], 0.5, STD)
    assert raw == pytest.approx(1.0) and hit == 1 and fp == 0
    scores = np.zeros(1000)
    scores[549] = 1.0  # last row of the window: y = -1/50, almost nothing
    raw, _, _ = nab.score_file(scores, [(500, 549)], 0.5, STD)
    assert 0 < raw < 0.1
    # only the earliest alarm of a window counts
    scores[520] = 1.0
    raw2, hit2, fp2 = nab.score_file(scores, [(500, 549)], 0.5, STD)
    assert raw2 == pytest.approx(float(nab.tp_value(520, 500, 549, STD))) and hit2 == 1
    assert fp2 == 0


def test_false_positive_costs() -> None:
    scores = np.zeros(1000)
    scores[300] = 1.0  # before the first window: full cost
    raw, hit, fp = nab.score_file(scores, [(500, 549)], 0.5, STD)
    assert raw == pytest.approx(-0.11 - 1.0) and hit == 0 and fp == 1
    raw, _, _ = nab.score_file(scores, [(500, 549)], 0.5, LOW_FP)
    assert raw == pytest.approx(-0.22 - 1.0)
    raw, _, _ = nab.score_file(scores, [(500, 549)], 0.5, LOW_FN)
    assert raw == pytest.approx(-0.11 - 2.0)
    # just after a window costs little, far after it costs the full A_FP
    scores = np.zeros(1000)
    scores[500] = 1.0
    scores[551] = 1.0
    raw, _, fp = nab.score_file(scores, [(500, 549)], 0.5, STD)
    y = (551 - 549) / 49
    assert raw == pytest.approx(1.0 + 0.11 * float(nab.sigmoid(y))) and fp == 1
    scores[551] = 0.0
    scores[900] = 1.0
    raw, _, _ = nab.score_file(scores, [(500, 549)], 0.5, STD)
    assert raw == pytest.approx(1.0 - 0.11, abs=1e-4)


def test_alarms_in_probation_are_ignored() -> None:
    scores = np.zeros(1000)
    scores[10] = 1.0
    assert nab.score_file(scores, [(500, 549)], 0.5, STD) == (-1.0, 0, 0)


def test_null_detector_scores_0_and_perfect_100() -> None:
    windows = [(300, 349), (700, 749)]
    null = nab.optimise([("a", np.zeros(1000), windows), ("b", np.zeros(800), [])], STD)
    assert null.score == pytest.approx(0.0) and math.isinf(null.threshold)
    perfect = np.zeros(1000)
    perfect[[300, 700]] = 1.0
    for p in nab.PROFILES.values():
        r = nab.optimise([("a", perfect, windows), ("b", np.zeros(800), [])], p)
        assert r.score == pytest.approx(100.0)
        assert r.windows_hit == 2 and r.fp_rows == 0


def test_flooding_goes_below_zero() -> None:
    windows = [(300, 349)]
    r = nab.score_file(np.ones(1000), windows, 0.5, STD)
    assert r[0] < -1.0


def test_one_sweep_optimiser_equals_brute_force() -> None:
    rng = np.random.default_rng(3)
    files = []
    for k in range(4):
        n = int(rng.integers(600, 1500))
        s = np.round(rng.random(n) ** 3, 3)
        w = [(int(n * 0.4), int(n * 0.4) + 40), (int(n * 0.8), int(n * 0.8) + 30)][: k % 3]
        for a, _ in w:
            s[a + int(rng.integers(0, 20))] = 0.9 + rng.random() * 0.1
        files.append((f"f{k}", s, w))
    for p in nab.PROFILES.values():
        best = nab.optimise(files, p)
        cands = np.unique(np.concatenate([f[1] for f in files]))
        brute = max(
            [sum(nab.score_file(s, w, t, p)[0] for _, s, w in files) for t in cands]
            + [sum(-p.a_fn * len(w) for _, _, w in files)]
        )
        assert best.raw == pytest.approx(brute)


def test_load_reads_the_24_dev_files_with_row_windows() -> None:
    files = nab.load(NAB_DIR)
    assert len(files) == 24
    assert sum(len(f.windows) for f in files) == 39
    for f in files:
        assert f.times_us.size == f.values.size
        for s, e in f.windows:
            assert 0 <= s <= e < f.values.size
