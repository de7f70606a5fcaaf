"""Task kind `device_analytics`: statistics of a stats API device's fields over a period.

Params: {"device_id": <uuid>, "from_us": int, "to_us": int} (a half-open range of UTC
microseconds). Result: {"device_id", "start", "end", "fields": {name: {min, max, sum,
median, count, mean, stddev}}}, one entry per field the device has sent (count 0 and
nulls when it sent nothing in the period). Read-only, so safe to run again after an
interruption.
"""

from __future__ import annotations

from typing import Any

from ..query.columns import time_or_none
from ..query.params import TimeRange
from ..query.series import SERIES_COLUMNS, SeriesFilter, SeriesInfo
from ..query.stats import statistics
from .tasks import TaskContext, TaskFailed, TaskKind, register_kind

KIND = "device_analytics"
FIELDS = ("min", "max", "sum", "median", "count", "mean", "stddev")


def run(ctx: TaskContext, params: dict[str, Any]) -> dict[str, Any]:
    device = str(params["device_id"])
    span = TimeRange(int(params["from_us"]), int(params["to_us"]))
    with ctx.store.reader() as cur:
        known = cur.execute(
            "SELECT 1 FROM stats_devices WHERE tenant_id = ? AND id = ?", [ctx.tenant_id, device]
        ).fetchone()
        if known is None:
            raise TaskFailed(f"device {device} does not exist")
        clause, args = SeriesFilter(device=device).where(ctx.tenant_id)
        rows = cur.execute(
            f"SELECT {SERIES_COLUMNS} FROM series s WHERE {clause} ORDER BY s.metric, s.id",
            args,
        ).fetchall()
    selection = [SeriesInfo.from_row(r) for r in rows]
    fields: dict[str, dict[str, Any]] = {}
    ctx.progress(0.0)
    for done, info in enumerate(selection, start=1):
        with ctx.store.reader() as cur:
            found = statistics(cur, ctx.tenant_id, [info], span)["series"][0]
        fields[info.metric] = {name: found[name] for name in FIELDS}
        ctx.progress(done / len(selection))
    return {
        "device_id": device,
        "start": time_or_none(span.from_us),
        "end": time_or_none(span.to_us - 1),
        "fields": fields,
    }


DEVICE_ANALYTICS = register_kind(TaskKind(KIND, run, rerun_safe=True))
