"""Task kind `pattern_analysis`: one pattern analysis (docs/patterns.md) run in the
background, for input too large to answer within a request or when asked (`async=true`).

Params: the spec of analytics/patterns/runner.py. Result: the same body the endpoint
answers directly. Read-only, so safe to run again after an interruption.
"""

from __future__ import annotations

from typing import Any

from ..analytics.patterns.runner import execute
from .tasks import TaskContext, TaskKind, register_kind

KIND = "pattern_analysis"


def run(ctx: TaskContext, params: dict[str, Any]) -> dict[str, Any]:
    ctx.progress(0.0)
    result = execute(ctx.store, ctx.tenant_id, params)
    ctx.progress(1.0)
    return result


PATTERN_ANALYSIS = register_kind(TaskKind(KIND, run, rerun_safe=True))
