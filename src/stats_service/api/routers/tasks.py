"""GET /tasks/{task_id}: state, progress and result of an asynchronous task (jobs/tasks.py).

Analytics of the stats API start tasks (`GET /devices/{id}/analytics/`); other long
jobs may too. A task of another tenant is not found, like one that never existed.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from ...errors import NotFound
from ...services import Services
from ...storage.tasks import TaskState
from ..deps import ServicesDep
from ..stats_api_support import STATS_PROBLEMS, StatsReader, add_route, new_router

router = new_router("tasks")


class TaskStatus(BaseModel):
    task_id: uuid.UUID
    kind: str = Field(examples=["device_analytics"])
    state: TaskState = Field(description="PENDING, STARTED, SUCCESS or FAILURE.")
    progress: float = Field(ge=0, le=1, description="0 to 1; 1 once it succeeded.")
    result: dict[str, Any] | None = Field(
        None,
        description="The task's result once it succeeded (analytics: per field min, "
        "max, sum, median, count, mean, stddev under `fields`).",
    )
    error: str | None = Field(None, description="Why it failed (state FAILURE).")
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None


def _utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.replace(tzinfo=UTC)


def task_status(services: Services, tenant_id: int, task_id: str) -> TaskStatus:
    task = services.tasks.status(tenant_id, task_id)
    if task is None:
        raise NotFound(f"task {task_id} does not exist")
    return TaskStatus(
        task_id=uuid.UUID(task.id),
        kind=task.kind,
        state=task.state,
        progress=task.progress,
        result=task.result,
        error=task.error,
        created_at=task.created_at.replace(tzinfo=UTC),
        started_at=_utc(task.started_at),
        finished_at=_utc(task.finished_at),
    )


@add_route(router, "/tasks/{task_id}", "GET", response_model=TaskStatus, responses=STATS_PROBLEMS)
def get_task(task_id: uuid.UUID, principal: StatsReader, services: ServicesDep) -> TaskStatus:
    """A task's state (PENDING, STARTED, SUCCESS, FAILURE), progress, result or error."""
    return task_status(services, principal.tenant_id, str(task_id))
