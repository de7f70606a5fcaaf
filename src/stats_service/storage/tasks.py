"""The tasks table: state, progress, result and error of asynchronous tasks (jobs/tasks.py).

Every change is its own short transaction, so a task's state survives a restart. Reads
are scoped to the tenant: another tenant's task is not found, like one that never was.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import orjson

from .embedded import EmbeddedStore, utcnow

_COLUMNS = (
    "id, tenant_id, kind, params, state, progress, result, error, created_at, started_at, "
    "finished_at, attempts"
)


class TaskState(StrEnum):
    PENDING = "PENDING"
    STARTED = "STARTED"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"


@dataclass(frozen=True, slots=True)
class TaskRecord:
    id: str
    tenant_id: int
    kind: str
    params: dict[str, Any]
    state: TaskState
    progress: float
    result: dict[str, Any] | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> TaskRecord:
        return cls(
            id=str(row[0]),
            tenant_id=int(row[1]),
            kind=str(row[2]),
            params=orjson.loads(row[3]),
            state=TaskState(row[4]),
            progress=float(row[5]),
            result=orjson.loads(row[6]) if row[6] is not None else None,
            error=row[7],
            created_at=row[8],
            started_at=row[9],
            finished_at=row[10],
            attempts=int(row[11]),
        )


class TaskTable:
    def __init__(self, store: EmbeddedStore) -> None:
        self._store = store

    def create(self, tenant_id: int, kind: str, params: dict[str, Any]) -> TaskRecord:
        task_id = str(uuid.uuid4())
        with self._store.transaction() as con:
            row = con.execute(
                "INSERT INTO tasks (id, tenant_id, kind, params, state, progress, created_at) "
                f"VALUES (?, ?, ?, ?, ?, 0, ?) RETURNING {_COLUMNS}",
                [task_id, tenant_id, kind, orjson.dumps(params).decode(), "PENDING", utcnow()],
            ).fetchone()
        assert row is not None
        return TaskRecord.from_row(row)

    def get(self, tenant_id: int, task_id: str) -> TaskRecord | None:
        with self._store.reader() as cur:
            row = cur.execute(
                f"SELECT {_COLUMNS} FROM tasks WHERE tenant_id = ? AND id = ?",
                [tenant_id, task_id],
            ).fetchone()
        return TaskRecord.from_row(row) if row else None

    def unfinished(self) -> list[TaskRecord]:
        """Every task left PENDING or STARTED (by a stop or a crash), oldest first."""
        with self._store.reader() as cur:
            rows = cur.execute(
                f"SELECT {_COLUMNS} FROM tasks WHERE state IN ('PENDING', 'STARTED') "
                "ORDER BY created_at, id"
            ).fetchall()
        return [TaskRecord.from_row(r) for r in rows]

    def started(self, task_id: str) -> None:
        with self._store.transaction() as con:
            con.execute(
                "UPDATE tasks SET state = 'STARTED', started_at = ?, progress = 0, "
                "attempts = attempts + 1 WHERE id = ?",
                [utcnow(), task_id],
            )

    def progress(self, task_id: str, fraction: float) -> None:
        with self._store.transaction() as con:
            con.execute(
                "UPDATE tasks SET progress = ? WHERE id = ? AND state = 'STARTED'",
                [min(1.0, max(0.0, fraction)), task_id],
            )

    def succeeded(self, task_id: str, result: dict[str, Any]) -> None:
        with self._store.transaction() as con:
            con.execute(
                "UPDATE tasks SET state = 'SUCCESS', progress = 1, result = ?, error = NULL, "
                "finished_at = ? WHERE id = ?",
                [orjson.dumps(result).decode(), utcnow(), task_id],
            )

    def failed(self, task_id: str, error: str) -> None:
        with self._store.transaction() as con:
            con.execute(
                "UPDATE tasks SET state = 'FAILURE', error = ?, finished_at = ? WHERE id = ?",
                [error, utcnow(), task_id],
            )

    def requeued(self, task_id: str) -> None:
        """Back to PENDING: interrupted by a stop, to run again at the next start."""
        with self._store.transaction() as con:
            con.execute(
                "UPDATE tasks SET state = 'PENDING', progress = 0, started_at = NULL WHERE id = ?",
                [task_id],
            )
