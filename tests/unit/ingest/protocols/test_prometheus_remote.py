"""Prometheus remote write 1.0: golden cases under testcases/prometheus/<case>/.

The cases are built by make_prometheus_cases.py (run it, then STATS_UPDATE_GOLDEN=1 on
this file, and review the diff).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from golden import cases, run_case

FORMAT = "prometheus"


@pytest.mark.parametrize("case", cases(FORMAT), ids=lambda p: p.name)
def test_golden(case: Path) -> None:
    run_case(FORMAT, case)
