"""LiveHub: fan-out of committed batches to subscribers, on a real event loop.

`committed()` is called from another thread, as the writer does; the subscribers'
frames are read back on the loop and decoded."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from stats_service.errors import BadParameter
from stats_service.live.hub import MAX_POINTS_PER_MESSAGE, LiveHub, Subscriber
from stats_service.live.selection import Selection, parse_request
from stats_service.model import Batch, SeriesKey, SeriesMeta, States

T0 = 1_796_000_000_000_000  # µs, 2026-11-30T...


def key(tenant: int, metric: str, device: str, **tags: str) -> SeriesKey:
    return SeriesKey.of(tenant, metric, {"device": device, **tags})


def batch(
    tenant: int, points: list[tuple[SeriesKey, int, float]], unit: str | None = None
) -> Batch:
    """A batch of (series key, µs, value) points, in the given order."""
    series = {k.series_id: SeriesMeta(k, unit) for k, _, _ in points}
    return Batch(
        tenant,
        np.array([k.series_id for k, _, _ in points], dtype=np.int64),
        np.array([t for _, t, _ in points], dtype=np.int64),
        np.array([v for _, _, v in points], dtype=np.float64),
        series,
    )


def selection(tenant: int, query: str = "") -> Selection:
    items = [tuple(p.split("=", 1)) for p in query.split("&") if p]
    return parse_request(items).selection(tenant)  # type: ignore[arg-type]


def from_thread(fn: Callable[[], None]) -> None:
    thread = threading.Thread(target=fn)
    thread.start()
    thread.join()


async def frames(subscriber: Subscriber, count: int) -> list[dict[str, Any]]:
    """The next `count` frames queued for `subscriber`, and then no more (waits 10 s at
    most for each, and 0.1 s for one too many)."""
    out = []
    while len(out) < count:
        frame = await subscriber.next(10.0)
        assert frame is not None, f"{len(out)} frames came, {count} expected"
        subscriber.sent(frame)
        out.append(json.loads(frame))
    assert await subscriber.next(0.1) is None, "more frames than expected"
    return out


def run(coro: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(coro())  # type: ignore[arg-type]


def test_nobody_subscribed_costs_nothing() -> None:
    hub = LiveHub(CollectorRegistry())
    assert not hub.active and hub.tenants == frozenset()
    # no loop bound yet: committed() returns without touching anything
    hub.committed([batch(1, [(key(1, "t", "d"), T0, 1.0)])], {})


def test_points_grouped_per_series_with_metadata() -> None:
    async def main() -> None:
        hub = LiveHub(CollectorRegistry())
        sub = hub.subscribe(selection(1))
        assert hub.active and hub.tenants == {1}
        temp, hum = key(1, "temperature", "esp1", room="k"), key(1, "humidity", "esp1")
        b = batch(1, [(temp, T0, 21.5), (hum, T0, 40.0), (temp, T0 + 1_000_000, float("nan"))])
        known = {hum.series_id: (hum, "%")}  # a unit the batch did not carry, as stored
        from_thread(lambda: hub.committed([b], known))
        got = {f["metric"]: f for f in await frames(sub, 2)}
        assert set(got) == {"temperature", "humidity"}
        t = got["temperature"]
        assert t["type"] == "points"
        assert t["series"] == str(temp.series_id)
        assert t["device"] == "esp1"
        assert t["tags"] == {"device": "esp1", "room": "k"}
        assert t["unit"] is None
        assert t["t"] == ["2026-11-30T00:53:20.000000Z", "2026-11-30T00:53:21.000000Z"]
        assert t["v"] == [21.5, None]  # NaN is null in JSON
        assert got["humidity"]["unit"] == "%"
        assert got["humidity"]["v"] == [40.0]
        hub.unsubscribe(sub)
        assert not hub.active

    run(main)


def test_states_are_sent_as_text() -> None:
    async def main() -> None:
        hub = LiveHub(CollectorRegistry())
        sub = hub.subscribe(selection(1, "metric=mode"))
        mode = key(1, "mode", "hvac")
        b = batch(1, [])
        b.series = {mode.series_id: SeriesMeta(mode)}
        b.states = States(
            np.array([mode.series_id, mode.series_id], dtype=np.int64),
            np.array([T0 + 5, T0], dtype=np.int64),
            ["heat", "off"],
        )
        from_thread(lambda: hub.committed([b], {}))
        (frame,) = await frames(sub, 1)
        assert frame["type"] == "states"
        assert frame["text"] == ["off", "heat"]  # in time order
        assert frame["t"] == ["2026-11-30T00:53:20.000000Z", "2026-11-30T00:53:20.000005Z"]

    run(main)


def test_a_subscriber_never_sees_another_tenant() -> None:
    async def main() -> None:
        hub = LiveHub(CollectorRegistry())
        a, b = hub.subscribe(selection(1)), hub.subscribe(selection(2))
        from_thread(lambda: hub.committed([batch(1, [(key(1, "secret", "a-dev"), T0, 1.0)])], {}))
        from_thread(lambda: hub.committed([batch(2, [(key(2, "open", "b-dev"), T0, 2.0)])], {}))
        assert [f["metric"] for f in await frames(a, 1)] == ["secret"]
        assert [f["metric"] for f in await frames(b, 1)] == ["open"]
        # even a series whose key names another tenant inside a batch is never matched
        assert not b.selection.matches(key(1, "x", "d").series_id, key(1, "x", "d"))

    run(main)


def test_batches_of_tenants_without_subscribers_are_not_handed_on() -> None:
    async def main() -> None:
        hub = LiveHub(CollectorRegistry())
        hub.subscribe(selection(1))
        loop = asyncio.get_running_loop()
        handed: list[object] = []
        original = loop.call_soon_threadsafe

        def spy(callback: Any, *args: Any) -> Any:
            handed.append(args)
            return original(callback, *args)

        loop.call_soon_threadsafe = spy  # type: ignore[method-assign]
        try:
            from_thread(lambda: hub.committed([batch(7, [(key(7, "m", "d"), T0, 1.0)])], {}))
            assert handed == []
            from_thread(lambda: hub.committed([batch(1, [(key(1, "m", "d"), T0, 1.0)])], {}))
            assert len(handed) == 1
        finally:
            del loop.call_soon_threadsafe

    run(main)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("device=esp1", {"temperature", "humidity"}),
        ("device=esp1,pico", {"temperature", "humidity", "voltage"}),
        ("device=esp*", {"temperature", "humidity", "pressure"}),
        ("metric=temperature", {"temperature"}),
        ("metric=temp*,volt?ge", {"temperature", "voltage"}),
        ("metric=humidity&device=esp2", set()),
        ("run=r1", {"pressure"}),
        ("run=r1,r2", {"pressure", "voltage"}),
        ("tag.room=k", {"temperature"}),
        ("run=r9", set()),
    ],
)
def test_selection_filters(query: str, expected: set[str]) -> None:
    async def main() -> None:
        hub = LiveHub(CollectorRegistry())
        sub = hub.subscribe(selection(1, query))
        points = [
            (key(1, "temperature", "esp1", room="k"), T0, 1.0),
            (key(1, "humidity", "esp1"), T0, 2.0),
            (key(1, "pressure", "esp2", run="r1"), T0, 3.0),
            (key(1, "voltage", "pico", run="r2"), T0, 4.0),
        ]
        from_thread(lambda: hub.committed([batch(1, points)], {}))
        assert {f["metric"] for f in await frames(sub, len(expected))} == expected

    run(main)


def test_selection_by_series_id() -> None:
    async def main() -> None:
        hub = LiveHub(CollectorRegistry())
        wanted, other = key(1, "a", "d"), key(1, "b", "d")
        sub = hub.subscribe(selection(1, f"series={wanted.series_id}"))
        from_thread(lambda: hub.committed([batch(1, [(wanted, T0, 1.0), (other, T0, 2.0)])], {}))
        assert [f["series"] for f in await frames(sub, 1)] == [str(wanted.series_id)]

    run(main)


def test_long_runs_are_split_into_messages() -> None:
    async def main() -> None:
        hub = LiveHub(CollectorRegistry())
        sub = hub.subscribe(selection(1))
        k = key(1, "m", "d")
        n = MAX_POINTS_PER_MESSAGE * 2 + 5
        from_thread(
            lambda: hub.committed([batch(1, [(k, T0 + i, float(i)) for i in range(n)])], {})
        )
        got = await frames(sub, 3)
        assert [len(f["v"]) for f in got] == [MAX_POINTS_PER_MESSAGE, MAX_POINTS_PER_MESSAGE, 5]
        assert [v for f in got for v in f["v"]] == [float(i) for i in range(n)]

    run(main)


def test_unsorted_batches_are_sent_in_time_order() -> None:
    async def main() -> None:
        hub = LiveHub(CollectorRegistry())
        sub = hub.subscribe(selection(1))
        k = key(1, "m", "d")
        from_thread(
            lambda: hub.committed(
                [batch(1, [(k, T0 + 2, 2.0), (k, T0, 0.0), (k, T0 + 1, 1.0)])], {}
            )
        )
        (frame,) = await frames(sub, 1)
        assert frame["v"] == [0.0, 1.0, 2.0]

    run(main)


def test_a_slow_subscriber_is_dropped_and_the_others_keep_receiving() -> None:
    async def main() -> None:
        registry = CollectorRegistry()
        hub = LiveHub(registry, queue_bytes=64 * 1024)
        slow, fast = hub.subscribe(selection(1)), hub.subscribe(selection(1))
        k = key(1, "m", "d")
        received = 0
        for i in range(20):  # each commit ~8 KB of JSON; the slow one never reads
            points = [(k, T0 + i * 1000 + j, float(j)) for j in range(200)]
            from_thread(lambda p=points: hub.committed([batch(1, p)], {}))  # type: ignore[misc]
            received += len(await frames(fast, 1))
        assert received == 20
        assert slow.dropped.is_set() and not fast.dropped.is_set()
        assert slow.queued_bytes == 0  # its messages were let go
        assert await slow.next(0.01) is None
        assert (
            registry.get_sample_value("stats_live_dropped_subscribers_total", {"reason": "slow"})
            == 1.0
        )
        hub.unsubscribe(slow)
        assert hub.count == 1

    run(main)


def test_one_large_commit_fits_an_empty_queue() -> None:
    async def main() -> None:
        hub = LiveHub(CollectorRegistry(), queue_bytes=64 * 1024)
        sub = hub.subscribe(selection(1))
        k = key(1, "m", "d")
        points = [(k, T0 + j, float(j)) for j in range(5000)]  # ~200 KB of JSON
        from_thread(lambda: hub.committed([batch(1, points)], {}))
        got = await frames(sub, 5)
        assert sum(len(f["v"]) for f in got) == 5000
        assert not sub.dropped.is_set()

    run(main)


def test_subscriber_limit() -> None:
    async def main() -> None:
        hub = LiveHub(CollectorRegistry(), max_subscribers=2)
        hub.subscribe(selection(1))
        hub.subscribe(selection(2))
        from stats_service.live.hub import TooManySubscribers

        with pytest.raises(TooManySubscribers):
            hub.subscribe(selection(1))

    run(main)


def test_committed_after_the_loop_closed_is_harmless() -> None:
    hub = LiveHub(CollectorRegistry())

    async def main() -> None:
        hub.subscribe(selection(1))

    run(main)  # the loop is closed now, the subscriber still registered
    hub.committed([batch(1, [(key(1, "m", "d"), T0, 1.0)])], {})


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("devices=a", "devices"),
        ("device=", "device"),
        ("metric=,", "metric"),
        ("series=abc", "series"),
        ("series=99999999999999999999", "series"),
        ("keepalive=0", "keepalive"),
        ("keepalive=x", "keepalive"),
        ("run=a&tag.run=b", "run"),
        ("tag.=x", "tag."),
    ],
)
def test_bad_parameters_name_themselves(query: str, param: str) -> None:
    items = [tuple(p.split("=", 1)) for p in query.split("&")]
    with pytest.raises(BadParameter) as info:
        parse_request(items)  # type: ignore[arg-type]
    assert info.value.param == param


def test_parameters_repeat_and_describe() -> None:
    request = parse_request(
        [("device", "a"), ("device", "b,c*"), ("key", " k "), ("keepalive", "2.5")]
    )
    assert request.key == "k" and request.keepalive_s == 2.5
    described = request.selection(1).describe()
    assert described["device"] == ["a", "b", "c*"]
