"""Trained detector models: one row per (tenant, series, detector) in `models`
(schema migration 8). The artefact itself (the detector's state as JSON) is a file
under `settings.model_path`; this row says where, what it was trained on and how.

Training again upserts the same row: its id and `created_at` stay, everything else
(parameters, range, path, metrics, `updated_at`) is replaced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb
import orjson

from ..ingest.timestamps import format_us, us_to_datetime
from .embedded import EmbeddedStore, utcnow

_COLUMNS = (
    "tenant_id, id, series_id, detector, params, epoch_us(train_from), epoch_us(train_to), "
    "path, metrics, epoch_us(created_at), epoch_us(updated_at)"
)


@dataclass(frozen=True, slots=True)
class ModelRecord:
    tenant_id: int
    id: int
    series_id: int
    detector: str
    params: dict[str, Any]
    train_from_us: int
    train_to_us: int
    path: str
    metrics: dict[str, Any]
    created_us: int
    updated_us: int

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> ModelRecord:
        return cls(
            tenant_id=int(row[0]),
            id=int(row[1]),
            series_id=int(row[2]),
            detector=str(row[3]),
            params=orjson.loads(row[4]),
            train_from_us=int(row[5]),
            train_to_us=int(row[6]),
            path=str(row[7]),
            metrics=orjson.loads(row[8]),
            created_us=int(row[9]),
            updated_us=int(row[10]),
        )

    @property
    def window_us(self) -> int:
        return int(self.params.get("window_us", 300_000_000))

    @property
    def detector_params(self) -> dict[str, Any]:
        found = self.params.get("detector", {})
        return dict(found) if isinstance(found, dict) else {}

    def as_dict(self) -> dict[str, Any]:
        """The API's JSON form (RFC 3339 times, the series id as a decimal string)."""
        return {
            "id": self.id,
            "series_id": str(self.series_id),
            "detector": self.detector,
            "params": self.params,
            "train_from": format_us(self.train_from_us),
            "train_to": format_us(self.train_to_us),
            "path": self.path,
            "metrics": self.metrics,
            "created_at": format_us(self.created_us),
            "updated_at": format_us(self.updated_us),
        }


def _naive(us: int) -> Any:
    return us_to_datetime(us).replace(tzinfo=None)


def upsert_model(
    store: EmbeddedStore,
    tenant_id: int,
    *,
    series_id: int,
    detector: str,
    params: dict[str, Any],
    train_from_us: int,
    train_to_us: int,
    path: str,
    metrics: dict[str, Any],
) -> ModelRecord:
    """Insert the model of (tenant, series, detector), or update the one there is."""
    now = utcnow()
    with store.transaction() as con:
        row = con.execute(
            "INSERT INTO models (tenant_id, id, series_id, detector, params, train_from, "
            "train_to, path, metrics, created_at, updated_at) "
            "VALUES (?, nextval('model_ids'), ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (tenant_id, series_id, detector) DO UPDATE SET "
            "params = excluded.params, train_from = excluded.train_from, "
            "train_to = excluded.train_to, path = excluded.path, metrics = excluded.metrics, "
            f"updated_at = excluded.updated_at RETURNING {_COLUMNS}",
            [
                tenant_id,
                series_id,
                detector,
                orjson.dumps(params).decode(),
                _naive(train_from_us),
                _naive(train_to_us),
                path,
                orjson.dumps(metrics).decode(),
                now,
                now,
            ],
        ).fetchone()
    assert row is not None
    return ModelRecord.from_row(row)


def get_model(
    cur: duckdb.DuckDBPyConnection, tenant_id: int, series_id: int, detector: str
) -> ModelRecord | None:
    row = cur.execute(
        f"SELECT {_COLUMNS} FROM models WHERE tenant_id = ? AND series_id = ? AND detector = ?",
        [tenant_id, series_id, detector],
    ).fetchone()
    return None if row is None else ModelRecord.from_row(row)


def list_models(
    cur: duckdb.DuckDBPyConnection,
    tenant_id: int | None = None,
    series_ids: list[int] | None = None,
) -> list[ModelRecord]:
    """Models of one tenant (or of every tenant), optionally of some series; the most
    recently trained first for each series."""
    clauses: list[str] = []
    params: list[Any] = []
    if tenant_id is not None:
        clauses.append("tenant_id = ?")
        params.append(tenant_id)
    if series_ids is not None:
        clauses.append("series_id IN (SELECT unnest(?::BIGINT[]))")
        params.append(series_ids)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = cur.execute(
        f"SELECT {_COLUMNS} FROM models {where} ORDER BY tenant_id, series_id, updated_at DESC, id",
        params,
    ).fetchall()
    return [ModelRecord.from_row(r) for r in rows]


def latest_per_series(models: list[ModelRecord]) -> dict[tuple[int, int], ModelRecord]:
    """(tenant, series) -> its most recently trained model (`list_models` order)."""
    out: dict[tuple[int, int], ModelRecord] = {}
    for model in models:
        out.setdefault((model.tenant_id, model.series_id), model)
    return out


def tenant_interval(cur: duckdb.DuckDBPyConnection, tenant_id: int) -> float | None:
    """The tenant's own scoring interval in seconds (None: the setting applies)."""
    row = cur.execute(
        "SELECT scoring_interval_s FROM tenant_scoring WHERE tenant_id = ?", [tenant_id]
    ).fetchone()
    return None if row is None or row[0] is None else float(row[0])


def set_tenant_interval(store: EmbeddedStore, tenant_id: int, seconds: float | None) -> None:
    """Set (or with None, clear) the tenant's own scoring interval."""
    with store.transaction() as con:
        con.execute(
            "INSERT INTO tenant_scoring VALUES (?, ?) ON CONFLICT (tenant_id) DO UPDATE "
            "SET scoring_interval_s = excluded.scoring_interval_s",
            [tenant_id, seconds],
        )
