"""The in-process task runner on a real DuckDB file: states, failures, the bound on
queued tasks, and what a restart does with tasks left PENDING or STARTED."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stats_service.errors import Overloaded
from stats_service.jobs.tasks import (
    KINDS,
    InProcessTaskRunner,
    TaskContext,
    TaskFailed,
    TaskInterrupted,
    TaskKind,
    register_kind,
)
from stats_service.storage.embedded import EmbeddedStore
from stats_service.storage.tasks import TaskRecord, TaskState, TaskTable

GATE = threading.Event()
RAN: list[str] = []


def _square(ctx: TaskContext, params: dict[str, Any]) -> dict[str, Any]:
    ctx.progress(0.5)
    RAN.append(ctx.task_id)
    return {"square": params["n"] ** 2}


def _gated(ctx: TaskContext, params: dict[str, Any]) -> dict[str, Any]:
    while not GATE.wait(0.01):
        if ctx.stopping:
            raise TaskInterrupted
    return {"ok": True}


def _fails(ctx: TaskContext, params: dict[str, Any]) -> dict[str, Any]:
    raise TaskFailed("the input is not good enough")


def _crashes(ctx: TaskContext, params: dict[str, Any]) -> dict[str, Any]:
    raise ZeroDivisionError("1/0")


@pytest.fixture(autouse=True)
def kinds() -> Iterator[None]:
    added = [
        register_kind(TaskKind("test_square", _square, rerun_safe=True)),
        register_kind(TaskKind("test_gated", _gated, rerun_safe=True)),
        register_kind(TaskKind("test_once", _gated, rerun_safe=False)),
        register_kind(TaskKind("test_fails", _fails)),
        register_kind(TaskKind("test_crashes", _crashes)),
    ]
    GATE.clear()
    RAN.clear()
    yield
    GATE.set()
    for kind in added:
        KINDS.pop(kind.name, None)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EmbeddedStore]:
    store = EmbeddedStore(tmp_path / "stats.duckdb")
    yield store
    if not store.closed:
        store.close()


def wait(runner: InProcessTaskRunner, task_id: str, *states: TaskState) -> TaskRecord:
    while True:
        task = runner.status(1, task_id)
        assert task is not None
        if task.state in states:
            return task
        time.sleep(0.005)


def test_a_task_runs_to_success_with_its_result(store: EmbeddedStore) -> None:
    runner = InProcessTaskRunner(store, workers=2, max_pending=10)
    runner.start()
    task_id = runner.submit(1, "test_square", {"n": 7})
    done = wait(runner, task_id, TaskState.SUCCESS)
    assert done.result == {"square": 49} and done.progress == 1 and done.error is None
    assert done.kind == "test_square" and done.params == {"n": 7} and done.attempts == 1
    assert done.started_at is not None and done.finished_at is not None
    assert runner.status(2, task_id) is None  # another tenant's task is not found
    runner.stop()


def test_failures_carry_a_message(store: EmbeddedStore) -> None:
    runner = InProcessTaskRunner(store, workers=1, max_pending=10)
    runner.start()
    failed = wait(runner, runner.submit(1, "test_fails", {}), TaskState.FAILURE)
    assert failed.error == "the input is not good enough" and failed.result is None
    crashed = wait(runner, runner.submit(1, "test_crashes", {}), TaskState.FAILURE)
    assert crashed.error == "internal error (ZeroDivisionError); see the log"
    runner.stop()


def test_the_queue_is_bounded(store: EmbeddedStore) -> None:
    runner = InProcessTaskRunner(store, workers=1, max_pending=2)
    runner.start()
    first = runner.submit(1, "test_gated", {})
    second = runner.submit(1, "test_gated", {})
    with pytest.raises(Overloaded):
        runner.submit(1, "test_gated", {})
    GATE.set()
    wait(runner, first, TaskState.SUCCESS)
    wait(runner, second, TaskState.SUCCESS)
    while True:  # the pool's thread gives its slot back right after the commit
        try:
            wait(runner, runner.submit(1, "test_square", {"n": 2}), TaskState.SUCCESS)
            break
        except Overloaded:
            time.sleep(0.005)
    runner.stop()


def test_a_stop_leaves_queued_tasks_pending_and_a_start_runs_them(
    store: EmbeddedStore,
) -> None:
    runner = InProcessTaskRunner(store, workers=1, max_pending=10)
    runner.start()
    running = runner.submit(1, "test_gated", {})
    wait(runner, running, TaskState.STARTED)
    queued = runner.submit(1, "test_square", {"n": 3})
    runner.stop()  # the running one sees `stopping` and goes back to PENDING
    assert runner.status(1, running).state is TaskState.PENDING  # type: ignore[union-attr]
    assert runner.status(1, queued).state is TaskState.PENDING  # type: ignore[union-attr]
    assert RAN == []

    GATE.set()
    runner.start()
    assert wait(runner, queued, TaskState.SUCCESS).result == {"square": 9}
    assert wait(runner, running, TaskState.SUCCESS).attempts == 2
    runner.stop()


def test_tasks_left_started_by_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "stats.duckdb"
    store = EmbeddedStore(path)
    table = TaskTable(store)
    safe = table.create(1, "test_square", {"n": 4})
    once = table.create(1, "test_once", {})
    gone = table.create(1, "no_such_kind", {})
    pending = table.create(1, "test_square", {"n": 5})
    for task in (safe, once, gone):
        table.started(task.id)  # as if the process died while they ran
    store.close()

    store = EmbeddedStore(path)
    runner = InProcessTaskRunner(store, workers=2, max_pending=10)
    runner.start()
    try:
        assert wait(runner, safe.id, TaskState.SUCCESS).result == {"square": 16}
        assert wait(runner, pending.id, TaskState.SUCCESS).result == {"square": 25}
        refused = wait(runner, once.id, TaskState.FAILURE)
        assert refused.error is not None and "submit it again" in refused.error
        unknown = wait(runner, gone.id, TaskState.FAILURE)
        assert unknown.error == "unknown task kind 'no_such_kind' (not in this version)"
    finally:
        runner.stop()
        store.close()
