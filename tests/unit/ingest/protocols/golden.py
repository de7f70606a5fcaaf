"""Golden test cases shared by every wire format: testcases/<format>/<case>/.

A case directory holds `input.*` (the bytes as sent: input.txt, input.json, input.bin ...),
an optional `params.json` (query parameters / transport facts, e.g. {"precision": "s"}
or {"topic": "tele/plug/SENSOR"}) and `expected.json`, which is either

    {"points": [...], "states": [...], "dropped": [{"loc", "msg"}, ...]}

(points and states sorted; `dropped` is what a lenient format skipped) or
{"error": [{"loc", "msg"}, ...]} when the whole body is refused.
Regenerate after a deliberate change with `STATS_UPDATE_GOLDEN=1 pytest <test file>`,
then review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from stats_service.errors import FieldError, ServiceError
from stats_service.ingest.protocols import PARSERS, ParseContext
from stats_service.model import Batch

TESTCASES = Path(__file__).parent / "testcases"
NOW_US = 1_714_564_800_000_000  # 2024-05-01T12:00:00Z
SKEW_US = 600 * 1_000_000
UPDATE = os.environ.get("STATS_UPDATE_GOLDEN") == "1"


def cases(fmt: str) -> list[Path]:
    root = TESTCASES / fmt
    return sorted(p for p in root.iterdir() if p.is_dir())


def context(params: dict[str, str] | None = None) -> ParseContext:
    params = params or {}
    return ParseContext(
        tenant_id=1,
        now_us=NOW_US,
        max_future_us=NOW_US + SKEW_US,
        precision=params.get("precision"),
        params=params,
        device=params.get("device"),
    )


def _sorted(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda p: json.dumps(p, sort_keys=True, ensure_ascii=False))


def describe(batch: Batch) -> dict[str, Any]:
    """A batch as plain, comparable JSON."""

    def series(sid: int) -> dict[str, Any]:
        meta = batch.series[int(sid)]
        return {"metric": meta.key.metric, "tags": meta.key.tags_dict(), "unit": meta.unit}

    points = [
        {**series(sid), "ts_us": int(ts), "value": float(value)}
        for sid, ts, value in zip(batch.series_id, batch.ts, batch.value, strict=True)
    ]
    states = []
    if batch.states is not None:
        states = [
            {**series(sid), "ts_us": int(ts), "text": text}
            for sid, ts, text in zip(
                batch.states.series_id, batch.states.ts, batch.states.text, strict=True
            )
        ]
    return {
        "points": _sorted(points),
        "states": _sorted(states),
        "dropped": [e.as_dict() for e in batch.dropped],
    }


def errors_of(exc: ServiceError) -> list[dict[str, str]]:
    errors = exc.errors or [FieldError("body", exc.detail)]
    return [e.as_dict() for e in errors]


def run_case(fmt: str, case: Path) -> None:
    """Parse the case's input with the format's parser and compare with expected.json."""
    inputs = sorted(case.glob("input.*"))
    assert len(inputs) == 1, f"{case} needs exactly one input.* file"
    params_file = case / "params.json"
    params = json.loads(params_file.read_text()) if params_file.exists() else {}
    try:
        got: dict[str, Any] = describe(PARSERS[fmt](inputs[0].read_bytes(), context(params)))
    except ServiceError as exc:
        got = {"error": errors_of(exc)}
    expected_file = case / "expected.json"
    if UPDATE or not expected_file.exists():
        expected_file.write_text(json.dumps(got, indent=2, ensure_ascii=False) + "\n")
        if not UPDATE:
            pytest.fail(f"{expected_file} was missing; written, review it")
    assert got == json.loads(expected_file.read_text())
