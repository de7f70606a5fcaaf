"""Every detector of the catalogue is a stream: the scores of a prefix equal the same
rows of the full series, a state() round trip goes on identically, scores are in
[0, 1], and a planted spike and level shift score high."""

from __future__ import annotations

import json

import numpy as np
import pytest

from stats_service.analytics.detectors import CATALOGUE, DEFAULT, make

N = 1700
SPIKE = 1100
SHIFT = 1450  # after the ensemble's quiet period that follows the spike
STEP_US = 300_000_000  # 5 minutes


def _series(seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    i = np.arange(N)
    t = 1_700_000_000_000_000 + i.astype(np.int64) * STEP_US
    v = 20 + 1.0 * np.sin(2 * np.pi * i / 288) + rng.normal(0, 0.5, N)
    v[SPIKE] += 10  # 20 sigma
    v[SHIFT:] += 15  # 30 sigma, larger than the spike: it beats the spike's record
    return t, v


@pytest.fixture(scope="module")
def full_scores() -> dict[str, np.ndarray]:
    t, v = _series()
    return {name: make(name).score(t, v) for name in CATALOGUE}


def test_catalogue_names_default_and_unknown_name() -> None:
    assert DEFAULT == "ensemble"
    assert {"robust_z", "iqr", "stl", "iforest", "online", "level_shift", "ensemble"} <= set(
        CATALOGUE
    )
    with pytest.raises(ValueError, match="robust_z"):
        make("no_such_detector")
    with pytest.raises(ValueError, match="unknown parameter"):
        make("robust_z", no_such_param=1)


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_scores_in_unit_interval_one_per_point(name: str, full_scores: dict) -> None:
    s = full_scores[name]
    assert s.shape == (N,) and s.dtype == np.float64
    assert np.isfinite(s).all()
    assert s.min() >= 0.0 and s.max() <= 1.0


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_prefix_scores_equal_rows_of_full_series(name: str, full_scores: dict) -> None:
    t, v = _series()
    for k in (1, 37, 700, SPIKE + 1):
        np.testing.assert_array_equal(make(name).score(t[:k], v[:k]), full_scores[name][:k])


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_state_round_trip_and_chunks_continue_identically(name: str, full_scores: dict) -> None:
    t, v = _series()
    d = make(name)
    parts = [d.score(t[:613], v[:613])]
    state = json.loads(json.dumps(d.state()))  # JSON-able
    d2 = make(name, state=state)
    parts.append(d2.score(t[613:1000], v[613:1000]))
    parts.append(d2.score(t[1000:1290], v[1000:1290]))
    d3 = make(name, state=json.loads(json.dumps(d2.state())))
    parts.append(
        np.array(
            [d3.update(int(a), float(b)) for a, b in zip(t[1290:1296], v[1290:1296], strict=True)]
        )
    )
    parts.append(d3.score(t[1296:], v[1296:]))
    np.testing.assert_array_equal(np.concatenate(parts), full_scores[name])
    assert isinstance(d3.explain(), dict) and d3.explain().get("rule") == name


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_planted_spike_and_level_shift_score_high(name: str, full_scores: dict) -> None:
    s = full_scores[name]
    quiet = s[700:SPIKE]
    spike = s[SPIKE : SPIKE + 3].max()
    shift = s[SHIFT : SHIFT + 30].max()
    assert shift >= 0.5, (shift, quiet.max())
    assert shift > np.quantile(quiet, 0.99)
    if name != "level_shift":  # a one-point spike is no level shift
        assert spike >= 0.5, (spike, quiet.max())
        assert spike > np.quantile(quiet, 0.99)


def test_empty_and_non_finite_input() -> None:
    for name in CATALOGUE:
        d = make(name)
        assert d.score(np.array([], dtype=np.int64), np.array([])).size == 0
        s = d.score(np.arange(5, dtype=np.int64), np.array([1.0, np.nan, 2.0, np.inf, 3.0]))
        assert s.shape == (5,) and np.isfinite(s).all()
