"""Change points: a planted level shift is found within a few buckets."""

from __future__ import annotations

import numpy as np
import pytest
from patterns_support import grid

from stats_service.analytics.patterns import changepoints


def planted(n: int = 300, at: int = 180, shift: float = 3.0, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = 20.0 + rng.normal(0.0, 0.5, n)
    values[at:] += shift
    return values


@pytest.mark.parametrize("model", ["l2", "rbf"])
def test_planted_shift_found_by_the_noise_penalty(model: str) -> None:
    answer = changepoints.analyse(grid(planted()), model=model)
    found = [c["index"] for c in answer["change_points"]]
    assert len(found) == 1, found
    assert abs(found[0] - 180) <= 3
    change = answer["change_points"][0]
    assert change["shift"] == pytest.approx(3.0, abs=0.3)
    assert [s["buckets"] for s in answer["segments"]] == [found[0], 300 - found[0]]
    assert answer["change_points"][0]["time"] == grid(planted()).time(found[0])


def test_noise_alone_has_no_change_point() -> None:
    rng = np.random.default_rng(7)
    answer = changepoints.analyse(grid(5.0 + rng.normal(0.0, 1.0, 400)))
    assert answer["change_points"] == []
    assert answer["noise_sigma"] == pytest.approx(1.0, rel=0.2)


def test_given_number_of_changes() -> None:
    values = planted()
    values[60:] -= 4.0  # a second change, at 60
    answer = changepoints.analyse(grid(values), n_bkps=2)
    found = [c["index"] for c in answer["change_points"]]
    assert len(found) == 2
    assert abs(found[0] - 60) <= 3 and abs(found[1] - 180) <= 3
    assert answer["penalty"] is None
