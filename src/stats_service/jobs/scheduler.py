"""In-process periodic jobs (the embedded backend of the jobs seam)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import anyio
import structlog

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Job:
    name: str
    interval_s: float
    run: Callable[[], object]  # blocking; runs in a worker thread


class Scheduler:
    def __init__(self, jobs: list[Job]) -> None:
        self._jobs = jobs
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._loop(job), name=job.name) for job in self._jobs]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _loop(self, job: Job) -> None:
        while True:
            await asyncio.sleep(job.interval_s)
            try:
                await anyio.to_thread.run_sync(job.run)
            except Exception as exc:  # a failing job logs and tries again next time
                log.error("job_failed", job=job.name, error=str(exc))
