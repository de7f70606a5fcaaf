"""One pattern analysis from a JSON-able spec: what the API answers directly and what
the `pattern_analysis` task (jobs/pattern_analysis.py) runs, so both give the same body.

    spec = {"analysis": "spectrum", "ids": [<series id>, ...], "from_us": int,
            "to_us": int, "bucket_us": int, "max_points": int, "options": {...}}
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...query.buckets import Buckets
from ...query.params import TimeRange
from ...storage.embedded import EmbeddedStore
from ...storage.marks_cache import cold_catalog, marks_cache
from . import changepoints, correlation, decompose, granger, motifs, spectrum
from .data import Grid, load

Analysis = Callable[..., dict[str, Any]]

# name -> (function, fewest buckets with data it needs)
ANALYSES: dict[str, tuple[Analysis, int]] = {
    "changepoints": (changepoints.analyse, 8),
    "decompose": (decompose.analyse, 8),
    "spectrum": (spectrum.analyse, 8),
    "motifs": (motifs.analyse, 16),
    "correlation": (correlation.analyse, 8),
    "granger": (granger.analyse, 16),
}


def spec(
    analysis: str,
    ids: list[int],
    span: TimeRange,
    buckets: Buckets,
    max_points: int,
    options: dict[str, Any],
) -> dict[str, Any]:
    return {
        "analysis": analysis,
        "ids": [str(i) for i in ids],
        "from_us": span.from_us,
        "to_us": span.to_us,
        "bucket_us": buckets.width_us,
        "max_points": max_points,
        "options": options,
    }


def read(store: EmbeddedStore, tenant_id: int, given: dict[str, Any]) -> Grid:
    _, fewest = ANALYSES[given["analysis"]]
    with store.reader() as cur:
        return load(
            cur,
            tenant_id,
            [int(i) for i in given["ids"]],
            TimeRange(int(given["from_us"]), int(given["to_us"])),
            Buckets(int(given["bucket_us"])),
            max_points=int(given["max_points"]),
            min_buckets=fewest,
            marks=marks_cache(store),
            cold=cold_catalog(store),
        )


def execute(store: EmbeddedStore, tenant_id: int, given: dict[str, Any]) -> dict[str, Any]:
    """Read the series and run the analysis of `given` (a spec, see the module's doc)."""
    return analyse(read(store, tenant_id, given), given)


def analyse(grid: Grid, given: dict[str, Any]) -> dict[str, Any]:
    """Run the analysis of `given` on series already read."""
    function, _ = ANALYSES[given["analysis"]]
    return {"analysis": given["analysis"], **function(grid, **given["options"])}
