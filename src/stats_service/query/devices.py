"""The devices of a tenant, their series counts, metrics and latest readings.

Latest readings come from `series.last_ts` / `series.last_value`, kept by the writer:
no scan of the points table.
"""

from __future__ import annotations

import json
from typing import Any

import duckdb

from ..errors import NotFound
from .columns import number, series_id, time_or_none
from .params import encode_cursor

_DEVICE_SQL = """
SELECT d.name, epoch_us(d.first_seen), epoch_us(d.last_seen),
       count(s.id), coalesce(list(DISTINCT s.metric ORDER BY s.metric)
                             FILTER (WHERE s.metric IS NOT NULL), [])
FROM devices d
LEFT JOIN series s ON s.tenant_id = d.tenant_id AND s.device = d.name
WHERE d.tenant_id = ? {extra}
GROUP BY d.name, d.first_seen, d.last_seen
ORDER BY d.name
"""


def _device(row: tuple[Any, ...]) -> dict[str, Any]:
    return {
        "name": row[0],
        "first_seen": time_or_none(row[1]),
        "last_seen": time_or_none(row[2]),
        "series": int(row[3]),
        "metrics": list(row[4]),
    }


def list_devices(
    cur: duckdb.DuckDBPyConnection, tenant_id: int, limit: int, offset: int
) -> dict[str, Any]:
    """One page of devices ordered by name; `next_cursor` or None."""
    rows = cur.execute(
        _DEVICE_SQL.format(extra="") + " LIMIT ? OFFSET ?", [tenant_id, limit + 1, offset]
    ).fetchall()
    more = len(rows) > limit
    return {
        "items": [_device(r) for r in rows[:limit]],
        "next_cursor": encode_cursor(offset + limit) if more else None,
    }


def get_device(cur: duckdb.DuckDBPyConnection, tenant_id: int, name: str) -> dict[str, Any]:
    rows = cur.execute(_DEVICE_SQL.format(extra="AND d.name = ?"), [tenant_id, name]).fetchall()
    if not rows:
        raise NotFound(f"device {name!r} does not exist")
    return _device(rows[0])


def device_metrics(
    cur: duckdb.DuckDBPyConnection, tenant_id: int, name: str
) -> list[dict[str, Any]]:
    """Every series of the device with its latest value and time."""
    get_device(cur, tenant_id, name)
    rows = cur.execute(
        "SELECT id, metric, tags, unit, epoch_us(last_ts), last_value FROM series "
        "WHERE tenant_id = ? AND device = ? ORDER BY metric, tags, id",
        [tenant_id, name],
    ).fetchall()
    return [
        {
            "series_id": series_id(r[0]),
            "metric": r[1],
            "tags": json.loads(r[2]),
            "unit": r[3],
            "last_ts": time_or_none(r[4]),
            "last_value": number(r[5]),
        }
        for r in rows
    ]
