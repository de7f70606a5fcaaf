"""Asynchronous tasks: the task runner seam (ARCHITECTURE.md, Jobs).

`TaskRunner` is the interface the API uses: `submit(tenant, kind, params)` returns a task
id at once, `status(tenant, id)` tells its state (PENDING, STARTED, SUCCESS, FAILURE),
progress (0..1), result or error. The embedded implementation, `InProcessTaskRunner`,
runs tasks on a bounded thread pool of this process; a Celery implementation can take
the same interface later (the tasks table stays the place where state and results live,
so `GET /tasks/{id}` reads them the same way).

Task kinds are pluggable: a `TaskKind` names a function `run(ctx, params) -> result` and
registers itself with `register_kind`. The function reports progress through
`ctx.progress(fraction)` and may check `ctx.stopping` in long loops (raising
`TaskInterrupted` puts the task back to PENDING). It raises `TaskFailed` (or any
`ServiceError`) with a message for the caller; other exceptions are logged and reported
as an internal error.

State survives a restart: every transition is committed to the tasks table. At start,
tasks found PENDING are queued again; tasks found STARTED (the process stopped or died
while they ran) are queued again when their kind says it is safe to run twice
(`rerun_safe`, e.g. a read-only analysis), and marked FAILURE with a message saying so
otherwise. A stop lets running tasks finish (or interrupt themselves) and leaves queued
ones PENDING for the next start.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from ..errors import BadRequest, Overloaded, ServiceError
from ..storage.embedded import EmbeddedStore
from ..storage.tasks import TaskRecord, TaskState, TaskTable

log = structlog.get_logger(__name__)
PROGRESS_EVERY_S = 0.2  # progress is committed at most this often per task


class TaskFailed(Exception):
    """A task that cannot complete; its message becomes the task's error."""


class TaskInterrupted(Exception):
    """Raised by a task that saw `ctx.stopping`: it goes back to PENDING."""


@dataclass
class TaskContext:
    store: EmbeddedStore
    tenant_id: int
    task_id: str
    _table: TaskTable
    _stop: threading.Event
    _last_progress: float = 0.0

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def progress(self, fraction: float) -> None:
        now = time.monotonic()
        if now - self._last_progress >= PROGRESS_EVERY_S or fraction >= 1.0:
            self._last_progress = now
            self._table.progress(self.task_id, fraction)


@dataclass(frozen=True, slots=True)
class TaskKind:
    name: str
    run: Callable[[TaskContext, dict[str, Any]], dict[str, Any]]
    rerun_safe: bool = False  # may run again after an interruption (idempotent)


KINDS: dict[str, TaskKind] = {}


def register_kind(kind: TaskKind) -> TaskKind:
    KINDS[kind.name] = kind
    return kind


class TaskRunner(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...

    def submit(self, tenant_id: int, kind: str, params: dict[str, Any]) -> str: ...

    def status(self, tenant_id: int, task_id: str) -> TaskRecord | None: ...


class InProcessTaskRunner:
    """Tasks on a thread pool of `workers` threads; at most `max_pending` queued or
    running at once (429 beyond)."""

    def __init__(self, store: EmbeddedStore, *, workers: int, max_pending: int) -> None:
        self._store = store
        self._table = TaskTable(store)
        self._workers = workers
        self._max_pending = max_pending
        self._pool: ThreadPoolExecutor | None = None
        self._pending = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="task")
        for task in self._table.unfinished():
            self._recover(task)

    def _recover(self, task: TaskRecord) -> None:
        kind = KINDS.get(task.kind)
        if kind is None:
            self._table.failed(task.id, f"unknown task kind {task.kind!r} (not in this version)")
            return
        if task.state is TaskState.STARTED and not kind.rerun_safe:
            self._table.failed(
                task.id,
                "interrupted: the service stopped while this task ran, and a "
                f"{task.kind!r} task is not run twice; submit it again",
            )
            return
        if task.state is TaskState.STARTED:
            self._table.requeued(task.id)
        log.info("task_requeued", task_id=task.id, kind=task.kind, was=task.state.value)
        self._enqueue(task.id, task.tenant_id, kind, task.params, force=True)

    def stop(self) -> None:
        """Running tasks finish (or interrupt themselves); queued ones stay PENDING."""
        self._stop.set()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    # -- the interface -----------------------------------------------------------------

    def submit(self, tenant_id: int, kind: str, params: dict[str, Any]) -> str:
        found = KINDS.get(kind)
        if found is None:
            raise BadRequest(f"unknown task kind {kind!r}; known: {', '.join(sorted(KINDS))}")
        with self._lock:
            if self._pending >= self._max_pending:
                raise Overloaded(
                    f"{self._pending} tasks are queued or running (at most {self._max_pending}); "
                    "retry later",
                    retry_after=5.0,
                )
            self._pending += 1
        try:
            task = self._table.create(tenant_id, kind, params)
        except BaseException:
            with self._lock:
                self._pending -= 1
            raise
        self._enqueue(task.id, tenant_id, found, params, force=False, counted=True)
        return task.id

    def status(self, tenant_id: int, task_id: str) -> TaskRecord | None:
        return self._table.get(tenant_id, task_id)

    # -- running -----------------------------------------------------------------------

    def _enqueue(
        self,
        task_id: str,
        tenant_id: int,
        kind: TaskKind,
        params: dict[str, Any],
        *,
        force: bool,
        counted: bool = False,
    ) -> None:
        if not counted:
            with self._lock:
                self._pending += 1
        pool = self._pool
        if pool is None:
            with self._lock:
                self._pending -= 1
            if not force:
                raise Overloaded("the task runner is not running; retry later", retry_after=5.0)
            return
        pool.submit(self._run, task_id, tenant_id, kind, params)

    def _run(self, task_id: str, tenant_id: int, kind: TaskKind, params: dict[str, Any]) -> None:
        try:
            if self._stop.is_set():
                return  # stays PENDING for the next start
            self._execute(task_id, tenant_id, kind, params)
        finally:
            with self._lock:
                self._pending -= 1

    def _execute(
        self, task_id: str, tenant_id: int, kind: TaskKind, params: dict[str, Any]
    ) -> None:
        self._table.started(task_id)
        ctx = TaskContext(self._store, tenant_id, task_id, self._table, self._stop)
        started = time.monotonic()
        try:
            result = kind.run(ctx, params)
        except TaskInterrupted:
            self._table.requeued(task_id)
            log.info("task_interrupted", task_id=task_id, kind=kind.name)
            return
        except (TaskFailed, ServiceError) as exc:
            message = exc.detail if isinstance(exc, ServiceError) else str(exc)
            self._table.failed(task_id, message or type(exc).__name__)
            log.info("task_failed", task_id=task_id, kind=kind.name, error=message)
            return
        except Exception as exc:
            log.exception("task_crashed", task_id=task_id, kind=kind.name)
            self._table.failed(task_id, f"internal error ({type(exc).__name__}); see the log")
            return
        self._table.succeeded(task_id, result)
        took = round(time.monotonic() - started, 3)
        log.info("task_done", task_id=task_id, kind=kind.name, seconds=took)
