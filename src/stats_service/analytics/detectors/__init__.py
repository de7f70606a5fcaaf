"""The detector catalogue: name → detector (docs/analytics.md). See base.py for the
interface every detector implements.

    from stats_service.analytics.detectors import make, CATALOGUE, DEFAULT
    d = make("robust_z", window=288)
    scores = d.score(times_us, values)
    d2 = make("robust_z", state=d.state())   # goes on where d stopped
"""

from __future__ import annotations

from typing import Any

from .base import Detector
from .ensemble import Ensemble
from .iforest import IForest
from .iqr import IQRFences
from .level_shift import LevelShift
from .online import OnlineHST
from .robust_z import RobustZ
from .stl import STLResidual

CATALOGUE: dict[str, type[Any]] = {
    cls.name: cls
    for cls in (RobustZ, IQRFences, STLResidual, IForest, OnlineHST, LevelShift, Ensemble)
}

DEFAULT = "ensemble"


def make(name: str, state: dict[str, Any] | None = None, **params: Any) -> Detector:
    """A detector of the catalogue by name, optionally restored from `state()`.
    Unknown name → ValueError listing the names; unknown parameter → ValueError."""
    cls = CATALOGUE.get(name)
    if cls is None:
        raise ValueError(f"unknown detector {name!r}; known: {', '.join(sorted(CATALOGUE))}")
    if state is not None and state.get("name", name) != name:
        raise ValueError(f"state is of detector {state.get('name')!r}, not {name!r}")
    det: Detector = cls(state=state, **params)
    return det


__all__ = ["CATALOGUE", "DEFAULT", "Detector", "make"]
