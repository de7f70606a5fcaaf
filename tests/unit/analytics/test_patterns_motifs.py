"""Motifs and discords: a planted repeated pattern and a planted oddity are found.

The first matrix profile in a process compiles stumpy's numba code (cached on disk
afterwards, see motifs.enable_jit_cache); inputs are kept small."""

from __future__ import annotations

import numpy as np
import pytest
from patterns_support import grid

from stats_service.analytics.patterns import motifs
from stats_service.errors import BadParameter

# whichever test first asks for motifs in a process pays stumpy's compile (numba): up to
# a minute on a fresh machine
pytestmark = pytest.mark.timeout(300)


def planted(seed: int = 6) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = rng.normal(0, 1.0, 400)
    shape = 4.0 * np.sin(np.linspace(0, 3 * np.pi, 20)) * np.linspace(1, 0.3, 20)
    values[50:70] = shape + rng.normal(0, 0.05, 20)  # the motif, twice
    values[260:280] = shape + rng.normal(0, 0.05, 20)
    return values


def test_planted_motif_and_discord() -> None:
    values = planted()
    smooth = np.sin(np.arange(400) * 2 * np.pi / 20)  # a regular signal...
    smooth[200:220] = np.linspace(-1, 1, 20) ** 2 * 3  # ...with one odd stretch
    answer = motifs.analyse(grid(values), window=20)
    best = answer["motifs"][0]
    assert abs(best["a"]["index"] - 50) <= 2 and abs(best["b"]["index"] - 260) <= 2
    assert answer["window"] == {
        "buckets": 20, "seconds": 1200, "duration": "20m", "derived": False,
    }  # fmt: skip
    odd = motifs.analyse(grid(smooth), window=20)
    assert abs(odd["discords"][0]["index"] - 200) <= 20
    assert len(odd["discords"]) == 3
    spots = [d["index"] for d in odd["discords"]]
    assert all(abs(a - b) >= 20 for a in spots for b in spots if a != b)


def test_window_is_derived_from_the_period_and_checked() -> None:
    smooth = np.sin(np.arange(400) * 2 * np.pi / 25)
    assert motifs.derive_window(smooth) == 25
    with pytest.raises(BadParameter) as refused:
        motifs.analyse(grid(smooth), window=200)
    assert refused.value.param == "window"
