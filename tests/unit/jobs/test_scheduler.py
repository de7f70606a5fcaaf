"""The job runner: periodic, failure-tolerant, and a running job ends before stop returns."""

from __future__ import annotations

import asyncio
import threading
import time

from stats_service.jobs.scheduler import Job, Scheduler


def test_stop_waits_for_a_running_job() -> None:
    started, finished = threading.Event(), threading.Event()

    def slow() -> None:
        started.set()
        time.sleep(0.3)
        finished.set()

    async def main() -> None:
        scheduler = Scheduler([Job("slow", 0.01, slow)])
        scheduler.start()
        while not started.is_set():
            await asyncio.sleep(0.005)
        await scheduler.stop()
        assert finished.is_set()  # the store may be closed now: nothing still uses it

    asyncio.run(main())


def test_a_failing_job_runs_again() -> None:
    calls: list[float] = []

    def failing() -> None:
        calls.append(time.monotonic())
        raise RuntimeError("boom")

    async def main() -> None:
        scheduler = Scheduler([Job("failing", 0.01, failing)])
        scheduler.start()
        deadline = time.monotonic() + 5
        while len(calls) < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await scheduler.stop()

    asyncio.run(main())
    assert len(calls) >= 3
