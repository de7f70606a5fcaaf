"""In-process periodic jobs (the embedded backend of the jobs seam)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

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
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(job.interval_s)
            running = loop.run_in_executor(None, job.run)
            try:
                await asyncio.shield(running)
            except asyncio.CancelledError:
                # stopping: a running job holds the store, so it ends before the store closes
                with contextlib.suppress(Exception):
                    await running
                raise
            except Exception as exc:  # a failing job logs and tries again next time
                log.error("job_failed", job=job.name, error=str(exc))
