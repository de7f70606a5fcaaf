"""The runs router's gate: a finish waits for step batches in flight and holds new ones."""

from __future__ import annotations

import asyncio

from stats_service.api.routers.runs import RunGate


def test_finish_waits_for_batches_and_holds_new_ones() -> None:
    async def scenario() -> list[str]:
        gate, key, order = RunGate(), (1, "r"), []
        release = asyncio.Event()

        async def batch(name: str, wait: asyncio.Event | None = None) -> None:
            async with gate.step(key):
                order.append(f"{name} in")
                if wait is not None:
                    await wait.wait()
                order.append(f"{name} out")

        async def finish() -> None:
            async with gate.finish(key):
                order.append("finish")

        first = asyncio.create_task(batch("a", release))
        while order != ["a in"]:
            await asyncio.sleep(0)
        ending = asyncio.create_task(finish())
        for _ in range(20):
            await asyncio.sleep(0)
        late = asyncio.create_task(batch("b"))
        other = asyncio.create_task(_other_run(gate, order))
        for _ in range(20):
            await asyncio.sleep(0)
        assert "finish" not in order and "b in" not in order  # both wait for batch a
        assert "other run" in order  # another run is not held
        release.set()
        await asyncio.gather(first, ending, late, other)
        return order

    order = asyncio.run(scenario())
    assert [o for o in order if o != "other run"] == ["a in", "a out", "finish", "b in", "b out"]


async def _other_run(gate: RunGate, order: list[str]) -> None:
    async with gate.step((1, "another")):
        order.append("other run")
