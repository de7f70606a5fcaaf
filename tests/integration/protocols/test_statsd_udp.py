"""The StatsD UDP listener of the real app: the `statsd` client and raw DogStatsD packets
on a free local port, read back through the read API."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
import statsd
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from conftest import ADMIN_KEY, make_settings
from stats_service.app import create_app
from stats_service.errors import Overloaded
from stats_service.ingest.replay import archived
from stats_service.services import Services

ADMIN = {"X-API-Key": ADMIN_KEY}
T = TypeVar("T")


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def statsd_app(tmp_path: Path, **overrides: object) -> Iterator[tuple[TestClient, int]]:
    port = int(overrides.pop("statsd_port", 0)) or free_udp_port()
    values: dict[str, object] = {
        "statsd_enabled": True,
        "statsd_port": port,
        "statsd_flush_s": 0.2,
    }
    values.update(overrides)
    with TestClient(create_app(make_settings(tmp_path, **values))) as client:
        yield client, port


def send(port: int, payload: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(payload, ("127.0.0.1", port))


def poll(check: Callable[[], T | None], what: str, deadline_s: float = 10.0) -> T:
    """The first non-None answer of `check`, asked until the deadline."""
    end = time.monotonic() + deadline_s
    while True:
        found = check()
        if found is not None:
            return found
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def series(client: TestClient, metric: str) -> dict[tuple[tuple[str, str], ...], dict[str, Any]]:
    """tags -> series of one metric name."""
    answer = client.get("/v1/series", params={"metric": metric}, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    return {tuple(sorted(s["tags"].items())): s for s in answer.json()["items"]}


def points(client: TestClient, series_id: str) -> list[float]:
    answer = client.get(
        f"/v1/series/{series_id}/points",
        params={"from": "now-1h", "to": "now+1h"},
        headers=ADMIN,
    )
    assert answer.status_code == 200, answer.text
    return [float(v) for v in answer.json()["value"]]


def total(client: TestClient, metric: str, tags: tuple[tuple[str, str], ...] = ()) -> float:
    found = series(client, metric).get(tags)
    return sum(points(client, found["id"])) if found else 0.0


def last(client: TestClient, metric: str, tags: tuple[tuple[str, str], ...] = ()) -> float | None:
    found = series(client, metric).get(tags)
    return None if found is None else found["last_value"]


def until_total(client: TestClient, metric: str, expected: float, tags: Any = ()) -> None:
    poll(lambda: True if total(client, metric, tags) == expected else None, f"{metric}={expected}")


def until_last(client: TestClient, metric: str, expected: float, tags: Any = ()) -> None:
    poll(lambda: True if last(client, metric, tags) == expected else None, f"{metric}={expected}")


def metric(client: TestClient, name: str, **labels: str) -> float:
    text = client.get("/metrics", headers=ADMIN).text
    value = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                value += sample.value
    return value


def until_metric(client: TestClient, name: str, expected: float, **labels: str) -> None:
    poll(
        lambda: True if metric(client, name, **labels) == expected else None,
        f"{name}{labels} == {expected}",
    )


def test_the_statsd_client_counters_gauges_timers_and_sets(tmp_path: Path) -> None:
    with statsd_app(tmp_path) as (client, port):
        sc = statsd.StatsClient("127.0.0.1", port)
        try:
            _use_the_client(client, sc)
        finally:
            sc.close()


def _use_the_client(client: TestClient, sc: statsd.StatsClient) -> None:
    for _ in range(3):
        sc.incr("web.hits")
    sc.incr("web.hits", 4)
    sc.decr("web.hits")
    with sc.pipeline() as pipe:  # one datagram, so one interval
        pipe.timing("api.latency", 10)
        pipe.timing("api.latency", 20)
        pipe.timing("api.latency", 30)
        pipe.set("users", "alice")
        pipe.set("users", "bob")
        pipe.set("users", "alice")
    sc.gauge("temp", 20)
    sc.gauge("freezer", -5)  # the client sends 0 first, then -5 (Etsy's sign rule)
    until_total(client, "web.hits", 6.0)
    until_last(client, "temp", 20.0)
    # later intervals change the gauge relative to the value carried over
    sc.gauge("temp", 3, delta=True)
    until_last(client, "temp", 23.0)
    sc.gauge("temp", -5, delta=True)
    until_last(client, "temp", 18.0)

    assert last(client, "freezer") == -5.0
    assert last(client, "api.latency.count") == 3.0
    assert last(client, "api.latency.min") == 10.0
    assert last(client, "api.latency.max") == 30.0
    assert last(client, "api.latency.mean") == 20.0
    assert last(client, "api.latency.sum") == 60.0
    assert last(client, "api.latency.p50") == 20.0
    assert last(client, "api.latency.p90") == 28.0  # numpy's linear percentile
    assert last(client, "users") == 2.0
    assert series(client, "api.latency.p99")[()]["unit"] == "ms"
    rate = series(client, "web.hits.rate")[()]
    assert rate["unit"] == "1/s" and rate["last_value"] > 0
    assert metric(client, "stats_statsd_lines_total", outcome="dropped") == 0


def test_raw_dogstatsd_packets_with_tags_sample_rates_and_devices(tmp_path: Path) -> None:
    with statsd_app(tmp_path) as (client, port):
        send(
            port,
            b"req:1|c|@0.5|#env:prod,host:web-1\n"
            b"lat:5:15|ms|#env:prod,host:web-1\n"
            b"queue.depth:7|g|#device:pico-2,canary\n"
            b"size:3:1|d",
        )
        web = (("device", "web-1"), ("env", "prod"))
        until_total(client, "req", 2.0, web)
        assert last(client, "lat.count", web) == 2.0
        assert last(client, "lat.mean", web) == 10.0
        assert last(client, "queue.depth", (("canary", "true"), ("device", "pico-2"))) == 7.0
        assert last(client, "size.max") == 3.0
        assert series(client, "size.max")[()]["unit"] is None  # distributions have no unit
        devices = client.get("/v1/devices", headers=ADMIN).json()["items"]
        assert {"web-1", "pico-2"} <= {d["name"] for d in devices}


def test_stop_flushes_the_last_interval(tmp_path: Path) -> None:
    with statsd_app(tmp_path, statsd_flush_s=3600.0) as (client, port):
        send(port, b"shutdown.count:5|c\nshutdown.level:42|g")
        until_metric(client, "stats_statsd_packets_total", 1.0, outcome="buffered")
        assert series(client, "shutdown.count") == {}  # nothing flushed yet
        for _ in range(200):  # still in the socket's receive buffer when the stop begins
            send(port, b"burst:1|c")
    with statsd_app(tmp_path, statsd_enabled=False) as (client, _):
        assert total(client, "shutdown.count") == 5.0
        assert last(client, "shutdown.level") == 42.0
        assert total(client, "burst") == 200.0


def test_malformed_lines_are_counted_and_logged(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    with statsd_app(tmp_path, log_level="info") as (client, port):
        send(port, b"fine:1|c\nbroken line\nx:abc|g\n_e{2,2}:ab|cd")
        until_total(client, "fine", 1.0)
        until_metric(client, "stats_statsd_lines_total", 3.0, outcome="dropped")
        assert metric(client, "stats_statsd_lines_total", outcome="written") == 1.0
        assert metric(client, "stats_ingest_rejected_points_total", protocol="statsd") == 3.0
        assert metric(client, "stats_ingest_rejected_total", protocol="statsd") == 1.0

        send(port, b"nothing valid")  # a flush of only bad lines is refused whole
        until_metric(client, "stats_statsd_lines_total", 1.0, outcome="refused")
        assert metric(client, "stats_statsd_flushes_total", outcome="refused") == 1.0
    logs = capfd.readouterr().err
    assert "ingest_dropped" in logs and "line 2" in logs and "x:abc" not in logs
    assert "is not a number" in logs and "DogStatsD events" in logs
    assert "statsd_flush_refused" in logs


def test_a_flush_refused_for_now_is_sent_again_with_its_own_time(tmp_path: Path) -> None:
    with statsd_app(tmp_path) as (client, port):
        services: Services = client.app.state.services  # type: ignore[attr-defined]
        real = services.pipeline.ingest
        refused_at: list[int] = []

        async def busy_once(*args: Any, **kwargs: Any) -> Any:
            if not refused_at:
                refused_at.append(time.time_ns() // 1000)
                raise Overloaded("writer queue full (test)")
            return await real(*args, **kwargs)

        services.pipeline.ingest = busy_once  # type: ignore[method-assign]
        send(port, b"retried:1|c")
        until_total(client, "retried", 1.0)
        found = series(client, "retried")[()]
        answer = client.get(
            f"/v1/series/{found['id']}/points",
            params={"from": "now-1h", "to": "now+1h"},
            headers=ADMIN,
        ).json()
        assert answer["value"] == [1.0]  # once, not twice
        stamped = datetime.fromisoformat(answer["t"][0].replace("Z", "+00:00"))
        assert stamped.timestamp() * 1e6 <= refused_at[0]  # the interval's own time
        assert metric(client, "stats_statsd_flushes_total", outcome="retry") >= 1.0


def test_a_flush_over_the_batch_limit_is_split_by_name(tmp_path: Path) -> None:
    with statsd_app(tmp_path, max_batch_points=8) as (client, port):
        send(port, b"\n".join(f"c{i}:{i}|c".encode() for i in range(1, 21)))
        for i in range(1, 21):
            until_total(client, f"c{i}", float(i))
        assert metric(client, "stats_statsd_flushes_total", outcome="split") >= 3.0
        assert metric(client, "stats_statsd_lines_total", outcome="written") == 20.0

        send(port, b"one.timer:1|ms|#k:a\none.timer:2|ms|#k:b")  # 18 points, one name
        until_metric(client, "stats_statsd_flushes_total", 1.0, outcome="refused")
        assert metric(client, "stats_statsd_lines_total", outcome="refused") == 2.0


def test_replay_of_the_archive_gives_the_stored_points(tmp_path: Path) -> None:
    with statsd_app(tmp_path) as (client, port):
        send(port, b"g:10|g\nt:1:2:3:4|ms|#k:v\nc:2|c|@0.5")
        until_last(client, "g", 10.0)
        send(port, b"g:+5|g")
        until_last(client, "g", 15.0)
        services: Services = client.app.state.services  # type: ignore[attr-defined]
        today = datetime.now(UTC).date()
        replayed: dict[str, list[tuple[int, float]]] = {}
        for envelope in archived(services.archive, today, today, "default"):
            assert envelope.protocol == "statsd"
            batch = services.pipeline.parse(envelope, time.time_ns() // 1000)
            for sid, ts, value in zip(batch.series_id, batch.ts, batch.value, strict=True):
                metric_name = batch.series[int(sid)].key.metric
                replayed.setdefault(metric_name, []).append((int(ts), float(value)))
        in_time_order = {name: [v for _, v in sorted(rows)] for name, rows in replayed.items()}
        assert in_time_order["g"] == [10.0, 15.0]  # the relative gauge replays from its params
        assert len(in_time_order) == 3 + 9  # g, c, c.rate and the 9 series of the timer
        for name, values in in_time_order.items():
            tags = (("k", "v"),) if name.startswith("t.") else ()
            assert points(client, series(client, name)[tags]["id"]) == values


def test_a_taken_port_stops_the_start_with_a_clear_message(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        app = create_app(
            make_settings(tmp_path, statsd_enabled=True, statsd_port=port, statsd_flush_s=0.2)
        )
        refused = pytest.raises(
            OSError, match=f"StatsD listener cannot bind udp://127.0.0.1:{port}"
        )
        with refused, TestClient(app):
            pass


def test_datagrams_over_the_buffer_limit_are_counted_and_logged(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    line = b"big.payload:1|c|#pad:" + b"x" * 200
    datagram = b"\n".join([line] * 4)  # 4 lines, about 900 bytes
    fits = 65536 // len(datagram)
    with statsd_app(tmp_path, statsd_flush_s=3600.0, statsd_max_buffer_bytes=65536) as (
        client,
        port,
    ):
        for _ in range(fits + 10):
            send(port, datagram)
        until_metric(client, "stats_statsd_packets_total", fits + 10.0)
        assert metric(client, "stats_statsd_packets_total", outcome="dropped") == 10.0
    with statsd_app(tmp_path, statsd_enabled=False) as (client, _):
        assert total(client, "big.payload", (("pad", "x" * 200),)) == 4.0 * fits
    logs = capfd.readouterr().err
    assert "statsd_buffer_full" in logs and '"dropped_packets": 10' in logs
