"""ThingsBoard device telemetry: golden cases under testcases/thingsboard/<case>/."""

from __future__ import annotations

from pathlib import Path

import pytest

from golden import cases, run_case

FORMAT = "thingsboard"


@pytest.mark.parametrize("case", cases(FORMAT), ids=lambda p: p.name)
def test_golden(case: Path) -> None:
    run_case(FORMAT, case)
