"""Simulation runs: one row per run in `runs` (schema migration 5).

The steps of a run are not here: they are points of the series tagged `run=<id>`
(metric = compartment), written by the ingest pipeline like any other points. This row
holds what is not a point: the kind, model, parameters, status, start and finish, and
two summaries of the steps (`steps`, `last_t`) kept up to date after each committed
batch (`note_steps`), which the list endpoint shows without scanning points.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

from ..errors import Conflict, NotFound
from ..ingest.timestamps import us_to_datetime
from .embedded import EmbeddedStore, utcnow

COLUMNS = (
    "id, kind, model, name, device, params, start_hash, status, message, "
    "epoch_us(started_at), epoch_us(finished_at), origin_us, tick_us, steps, last_t"
)
RUNNING = "running"


@dataclass(frozen=True, slots=True)
class RunRecord:
    tenant_id: int
    id: str
    kind: str
    model: str | None
    name: str | None
    device: str | None
    params: dict[str, Any]
    start_hash: str
    status: str
    message: str | None
    started_us: int
    finished_us: int | None
    origin_us: int
    tick_us: int
    steps: int
    last_t: float | None

    @classmethod
    def from_row(cls, tenant_id: int, row: tuple[Any, ...]) -> RunRecord:
        return cls(
            tenant_id,
            str(row[0]),
            str(row[1]),
            row[2],
            row[3],
            row[4],
            json.loads(row[5]),
            str(row[6]),
            str(row[7]),
            row[8],
            int(row[9]),
            None if row[10] is None else int(row[10]),
            int(row[11]),
            int(row[12]),
            int(row[13]),
            None if row[14] is None else float(row[14]),
        )

    @property
    def finished(self) -> bool:
        return self.status != RUNNING

    @property
    def tick_seconds(self) -> float:
        return self.tick_us / 1_000_000


def _naive(us: int) -> datetime:
    return us_to_datetime(us).replace(tzinfo=None)


def create(store: EmbeddedStore, record: RunRecord) -> tuple[RunRecord, bool]:
    """Insert a run; (the run, True) when new, (the stored run, False) for a retry of the
    same start. Conflict when the id is taken by a different start."""
    with store.transaction() as con:
        found = _get(con, record.tenant_id, record.id)
        if found is not None:
            if found.start_hash != record.start_hash:
                raise Conflict(
                    f"run {record.id!r} already exists with other parameters; "
                    "start a new run with another id"
                )
            return found, False
        con.execute(
            "INSERT INTO runs (tenant_id, id, kind, model, name, device, params, start_hash, "
            "status, message, started_at, finished_at, origin_us, tick_us, steps, last_t, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, NULL, ?, ?, 0, NULL, ?)",
            [
                record.tenant_id,
                record.id,
                record.kind,
                record.model,
                record.name,
                record.device,
                json.dumps(record.params, sort_keys=True),
                record.start_hash,
                RUNNING,
                _naive(record.started_us),
                record.origin_us,
                record.tick_us,
                utcnow(),
            ],
        )
        created = _get(con, record.tenant_id, record.id)
    assert created is not None
    return created, True


def _get(con: duckdb.DuckDBPyConnection, tenant_id: int, run_id: str) -> RunRecord | None:
    row = con.execute(
        f"SELECT {COLUMNS} FROM runs WHERE tenant_id = ? AND id = ?", [tenant_id, run_id]
    ).fetchone()
    return RunRecord.from_row(tenant_id, row) if row else None


def get(cur: duckdb.DuckDBPyConnection, tenant_id: int, run_id: str) -> RunRecord:
    found = _get(cur, tenant_id, run_id)
    if found is None:
        raise NotFound(f"run {run_id!r} does not exist")
    return found


def get_many(cur: duckdb.DuckDBPyConnection, tenant_id: int, ids: list[str]) -> list[RunRecord]:
    """The runs of `ids` in that order; NotFound lists every id that is missing."""
    rows = cur.execute(
        f"SELECT {COLUMNS} FROM runs WHERE tenant_id = ? AND id IN (SELECT unnest(?::VARCHAR[]))",
        [tenant_id, ids],
    ).fetchall()
    found = {r.id: r for r in (RunRecord.from_row(tenant_id, row) for row in rows)}
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFound(f"no such run{'s' if len(missing) > 1 else ''}: {', '.join(missing)}")
    return [found[i] for i in ids]


def finish(
    store: EmbeddedStore,
    tenant_id: int,
    run_id: str,
    status: str,
    message: str | None,
    finished_us: int,
) -> tuple[RunRecord, bool]:
    """Mark a run finished (failed, cancelled); (run, True) when this call did, (run,
    False) for a retry with the same status and message. Conflict otherwise."""
    with store.transaction() as con:
        found = _get(con, tenant_id, run_id)
        if found is None:
            raise NotFound(f"run {run_id!r} does not exist")
        if found.finished:
            if (found.status, found.message) == (status, message):
                return found, False
            raise Conflict(f"run {run_id!r} already ended as {found.status!r}")
        con.execute(
            "UPDATE runs SET status = ?, message = ?, finished_at = ? "
            "WHERE tenant_id = ? AND id = ?",
            [status, message, _naive(finished_us), tenant_id, run_id],
        )
        done = _get(con, tenant_id, run_id)
    assert done is not None
    return done, True


def note_steps(
    store: EmbeddedStore, tenant_id: int, run_id: str, steps: int, last_t: float
) -> None:
    """After a committed batch: the stored steps and the largest t (never lowered)."""
    with store.transaction() as con:
        con.execute(
            "UPDATE runs SET steps = ?, last_t = greatest(coalesce(last_t, ?), ?) "
            "WHERE tenant_id = ? AND id = ?",
            [steps, last_t, last_t, tenant_id, run_id],
        )


@dataclass(frozen=True, slots=True)
class RunFilter:
    kind: str | None = None
    device: str | None = None
    status: str | None = None
    model: str | None = None
    from_us: int | None = None  # started at or after
    to_us: int | None = None  # started before


def list_runs(
    cur: duckdb.DuckDBPyConnection, tenant_id: int, where: RunFilter, limit: int, offset: int
) -> tuple[list[RunRecord], bool]:
    """One page, newest start first; and whether there is more."""
    clauses: list[str] = ["tenant_id = ?"]
    params: list[Any] = [tenant_id]
    for column in ("kind", "device", "status", "model"):
        value = getattr(where, column)
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    if where.from_us is not None:
        clauses.append("started_at >= ?")
        params.append(_naive(where.from_us))
    if where.to_us is not None:
        clauses.append("started_at < ?")
        params.append(_naive(where.to_us))
    rows = cur.execute(
        f"SELECT {COLUMNS} FROM runs WHERE {' AND '.join(clauses)} "
        "ORDER BY started_at DESC, id LIMIT ? OFFSET ?",
        [*params, limit + 1, offset],
    ).fetchall()
    return [RunRecord.from_row(tenant_id, r) for r in rows[:limit]], len(rows) > limit
