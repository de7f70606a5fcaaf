"""The default detector (placeholder while being tuned): the robust z-score."""

from __future__ import annotations

from typing import ClassVar

from .robust_z import RobustZ


class Ensemble(RobustZ):
    name: ClassVar[str] = "ensemble"
