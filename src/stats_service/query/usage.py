"""Per-day usage of a tenant: the stored rows plus the counters not yet flushed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

import duckdb

from ..errors import BadParameter
from ..storage.anomaly_scores import windows_scored

COUNTERS = ("points", "bytes", "requests", "rejected")
MAX_DAYS = 3660


def usage_days(
    cur: duckdb.DuckDBPyConnection,
    tenant_id: int,
    start: date,
    end: date,
    pending: Mapping[tuple[int, date], Sequence[int]],
) -> dict[str, Any]:
    """Rows for the days start..end (inclusive) that have any usage, oldest first."""
    if start > end:
        raise BadParameter("from", "must not be after `to` (both days are included)")
    if (end - start).days >= MAX_DAYS:
        raise BadParameter("from", f"at most {MAX_DAYS} days per request")
    rows = cur.execute(
        "SELECT day, points, bytes, requests, rejected FROM usage "
        "WHERE tenant_id = ? AND day BETWEEN ? AND ? ORDER BY day",
        [tenant_id, start, end],
    ).fetchall()
    days: dict[date, list[int]] = {row[0]: [int(v) for v in row[1:]] for row in rows}
    scored = windows_scored(cur, tenant_id, start, end)  # anomaly scoring's own table
    for day in scored:
        days.setdefault(day, [0, 0, 0, 0])
    for (tenant, day), counts in pending.items():
        if tenant == tenant_id and start <= day <= end:
            total = days.setdefault(day, [0, 0, 0, 0])
            for i, count in enumerate(counts[: len(COUNTERS)]):
                total[i] += int(count)
    return {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "days": [
            {
                "day": day.isoformat(),
                **dict(zip(COUNTERS, days[day], strict=True)),
                "windows_scored": scored.get(day, 0),
            }
            for day in sorted(days)
        ],
    }
