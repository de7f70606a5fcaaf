"""Seed a real store directly (series, devices and points rows), without the ingest path."""

from __future__ import annotations

import json
from datetime import datetime

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from stats_service.model import SeriesKey
from stats_service.storage.embedded import EmbeddedStore

S = 1_000_000


def us(text: str) -> int:
    """UTC microseconds of an ISO time with offset."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(moment.timestamp()) * S + moment.microsecond


def add_series(
    store: EmbeddedStore,
    tenant_id: int,
    metric: str,
    tags: dict[str, str],
    unit: str | None = None,
) -> int:
    key = SeriesKey.of(tenant_id, metric, tags)
    device = tags.get("device")
    with store.transaction() as con:
        con.execute(
            "INSERT INTO series (id, tenant_id, metric, device, tags, canonical, unit, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, make_timestamp(?::BIGINT))",
            [
                key.series_id,
                tenant_id,
                metric,
                device,
                json.dumps(tags, sort_keys=True, separators=(",", ":")),
                key.canonical().decode(),
                unit,
                us("2024-01-01T00:00:00Z"),
            ],
        )
        if device is not None:
            con.execute(
                "INSERT INTO devices VALUES (?, ?, make_timestamp(?::BIGINT), "
                "make_timestamp(?::BIGINT)) ON CONFLICT DO NOTHING",
                [tenant_id, device, us("2024-01-01T00:00:00Z"), us("2024-01-01T00:00:00Z")],
            )
    return key.series_id


def add_points(
    store: EmbeddedStore,
    series_id: int,
    ts: npt.NDArray[np.int64],
    values: npt.NDArray[np.float64],
) -> None:
    """Insert points and keep the series' latest point, as the writer does."""
    table = pa.table(
        {
            "series_id": pa.array(np.full(len(ts), series_id, dtype=np.int64)),
            "ts": pa.array(ts, pa.timestamp("us")),
            "value": pa.array(values, pa.float64()),
        }
    )
    last = int(np.argmax(ts))
    with store.transaction() as con:
        con.register("new_points", table)
        try:
            con.execute("INSERT INTO points SELECT * FROM new_points")
        finally:
            con.unregister("new_points")
        con.execute(
            "UPDATE series SET last_ts = make_timestamp(?::BIGINT), last_value = ? "
            "WHERE id = ? AND (last_ts IS NULL OR last_ts < make_timestamp(?::BIGINT))",
            [int(ts[last]), float(values[last]), series_id, int(ts[last])],
        )
        con.execute(
            "UPDATE devices SET last_seen = greatest(last_seen, make_timestamp(?::BIGINT)) "
            "WHERE (tenant_id, name) IN (SELECT tenant_id, device FROM series WHERE id = ?)",
            [int(ts[last]), series_id],
        )


def every(start: int, step_s: float, count: int) -> npt.NDArray[np.int64]:
    return start + (np.arange(count, dtype=np.int64) * int(step_s * S))
