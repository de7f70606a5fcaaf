"""POST /api/v1/write (Prometheus remote write 1.0) through the real app and DuckDB file.

Bodies are encoded by the protobuf runtime with the full upstream schema (see
tests/unit/ingest/protocols/make_prometheus_cases.py) and snappy, as Prometheus sends them.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient

from conftest import ADMIN_KEY, make_settings, new_key, new_tenant
from integration.api.write_support import Background, count, wait_until, writer_held
from stats_service.app import create_app
from stats_service.services import Services
from unit.ingest.protocols.make_prometheus_cases import (
    NORMAL_NAN,
    STALE_NAN,
    Series,
    body,
    snappy,
    write_request,
)

ADMIN = {"X-API-Key": ADMIN_KEY}
URL = "/api/v1/write"
PROTOBUF = {
    "Content-Type": "application/x-protobuf",
    "Content-Encoding": "snappy",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
    "User-Agent": "Prometheus/2.42.0",
}


def now_ms() -> int:
    return (int(time.time()) - 60) * 1000


def write(client: TestClient, data: bytes, key: str = ADMIN_KEY, **headers: str) -> httpx.Response:
    return client.post(URL, content=data, headers={**PROTOBUF, "X-API-Key": key, **headers})


def series(client: TestClient, metric: str, headers: dict[str, str] = ADMIN) -> list[Any]:
    answer = client.get("/v1/series", params={"metric": metric}, headers=headers)
    assert answer.status_code == 200, answer.text
    items: list[Any] = answer.json()["items"]
    return items


def points(client: TestClient, sid: str, headers: dict[str, str] = ADMIN) -> list[float]:
    answer = client.get(
        f"/v1/series/{sid}/points", params={"from": "now-1d", "to": "now+1h"}, headers=headers
    )
    assert answer.status_code == 200, answer.text
    values: list[float] = answer.json()["value"]
    return values


def text_error(answer: httpx.Response, status: int) -> str:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return answer.text


def metric_value(client: TestClient, line_start: str) -> float:
    text = client.get("/metrics", headers=ADMIN).text
    lines = [line for line in text.splitlines() if line.startswith(line_start)]
    assert len(lines) == 1, f"{line_start!r} not in /metrics: {lines}"
    return float(lines[0].rsplit(" ", 1)[1])


# -- storing and reading back ------------------------------------------------------------


def test_series_are_stored_with_labels_as_tags_and_read_back(client: TestClient) -> None:
    t = now_ms()
    data = body(
        [
            Series(
                [("__name__", "node_load1"), ("instance", "rpi:9100"), ("job", "node")],
                [(0.25, t - 30_000), (0.5, t - 15_000), (0.75, t)],
            ),
            Series(
                [("__name__", "esp_temp_celsius"), ("device", "esp32-attic"), ("job", "esp")],
                [(21.5, t)],
            ),
        ]
    )
    answer = write(client, data)
    assert answer.status_code == 204, answer.text
    assert answer.content == b""

    [load] = series(client, "node_load1")
    assert load["tags"] == {"instance": "rpi:9100", "job": "node"}
    assert load["device"] is None  # no `device` label: no device is made up
    assert points(client, load["id"]) == [0.25, 0.5, 0.75]
    [temp] = series(client, "esp_temp_celsius")
    assert temp["device"] == "esp32-attic"
    assert temp["tags"] == {"device": "esp32-attic", "job": "esp"}
    assert points(client, temp["id"]) == [21.5]
    devices = client.get("/v1/devices", headers=ADMIN).json()["items"]
    assert [d["name"] for d in devices] == ["esp32-attic"]
    assert metric_value(client, 'stats_ingest_points_total{protocol="prometheus"') == 4.0


def test_metadata_only_and_empty_requests_are_204(client: TestClient) -> None:
    assert write(client, body([], metadata=3)).status_code == 204
    assert write(client, body([])).status_code == 204
    assert client.get("/v1/series", headers=ADMIN).json()["items"] == []


def test_stale_markers_are_skipped_and_counted(client: TestClient) -> None:
    t = now_ms()
    data = body(
        [
            Series([("__name__", "up"), ("job", "a")], [(1.0, t - 15_000), (STALE_NAN, t)]),
            Series([("__name__", "gone"), ("job", "a")], [(STALE_NAN, t)]),
        ]
    )
    assert write(client, data).status_code == 204
    [up] = series(client, "up")
    assert points(client, up["id"]) == [1.0]
    assert series(client, "gone") == []  # nothing but a stale marker: no series at all
    stale = 'stats_prometheus_stale_markers_total{tenant="default"}'
    assert metric_value(client, stale) == 2.0
    assert write(client, data).status_code == 204
    assert metric_value(client, stale) == 4.0


# -- keys ----------------------------------------------------------------------------------


def test_every_way_of_presenting_the_key_is_accepted(client: TestClient) -> None:
    key = new_key(client, "ingest")["X-API-Key"]
    data = body([Series([("__name__", "auth_ok")], [(1.0, now_ms())])])
    basic = base64.b64encode(f"prometheus:{key}".encode()).decode()
    user_only = base64.b64encode(f"{key}:".encode()).decode()
    for headers in (
        {"Authorization": f"Bearer {key}"},
        {"Authorization": f"Basic {basic}"},
        {"Authorization": f"Basic {user_only}"},
        {"X-API-Key": key},
    ):
        answer = client.post(URL, content=data, headers={**PROTOBUF, **headers})
        assert answer.status_code == 204, (headers, answer.text)


def test_missing_wrong_and_read_only_keys_are_refused(client: TestClient) -> None:
    data = body([Series([("__name__", "secret")], [(1.0, now_ms())])])
    missing = client.post(URL, content=data, headers=PROTOBUF)
    assert "authorization" in text_error(missing, 401)
    assert "Bearer" in missing.headers["WWW-Authenticate"]
    wrong = client.post(URL, content=data, headers={**PROTOBUF, "Authorization": "Bearer nope"})
    text_error(wrong, 401)
    garbled = client.post(URL, content=data, headers={**PROTOBUF, "Authorization": "Basic %%%"})
    assert "base64" in text_error(garbled, 401)
    reader = new_key(client, "read")["X-API-Key"]
    assert "'ingest' is needed" in text_error(write(client, data, reader), 403)
    assert series(client, "secret") == []


def test_a_device_key_writes_as_its_device(client: TestClient) -> None:
    made = client.post("/v1/admin/keys", json={"role": "ingest", "device": "pico-7"}, headers=ADMIN)
    assert made.status_code == 201, made.text
    token = made.json()["key"]
    mine = body([Series([("__name__", "pico_temp"), ("job", "pico")], [(30.0, now_ms())])])
    assert write(client, mine, token).status_code == 204
    [found] = series(client, "pico_temp")
    assert found["device"] == "pico-7"
    other = body([Series([("__name__", "pico_temp"), ("device", "pico-8")], [(1.0, now_ms())])])
    assert "pico-7" in text_error(write(client, other, token), 403)


# -- headers -------------------------------------------------------------------------------


def test_remote_write_2_is_415_naming_the_accepted_message(client: TestClient) -> None:
    data = body([Series([("__name__", "v2")], [(1.0, now_ms())])])
    answer = write(
        client,
        data,
        **{
            "Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request",
            "X-Prometheus-Remote-Write-Version": "2.0.0",
        },
    )
    message = text_error(answer, 415)
    assert "io.prometheus.write.v2.Request" in message
    assert "only remote write 1.0 (prometheus.WriteRequest)" in message
    assert series(client, "v2") == []


def test_headers_of_other_formats_are_415_and_v1_variants_pass(client: TestClient) -> None:
    data = body([Series([("__name__", "hdr")], [(1.0, now_ms())])])
    assert "application/x-protobuf" in text_error(
        write(client, data, **{"Content-Type": "application/json"}), 415
    )
    assert "snappy" in text_error(write(client, data, **{"Content-Encoding": "gzip"}), 415)
    assert "0.1.0" in text_error(
        write(client, data, **{"X-Prometheus-Remote-Write-Version": "9.0"}), 415
    )
    v1_named = "application/x-protobuf; proto=prometheus.WriteRequest"
    assert write(client, data, **{"Content-Type": v1_named}).status_code == 204
    bare = client.post(URL, content=data, headers={"X-API-Key": ADMIN_KEY})  # no headers at all
    assert bare.status_code == 204, bare.text


# -- bad payloads --------------------------------------------------------------------------


def test_bodies_that_are_not_snappy_or_not_protobuf_are_400(client: TestClient) -> None:
    plain = write_request([Series([("__name__", "x")], [(1.0, now_ms())])])
    assert "snappy" in text_error(write(client, plain), 400)
    assert "snappy" in text_error(write(client, b""), 400)
    garbage = snappy(b"\x0a\xff\xff\xff\xff\x0f not protobuf")
    assert "prometheus.WriteRequest" in text_error(write(client, garbage), 400)
    assert client.get("/v1/series", headers=ADMIN).json()["items"] == []


def test_a_request_of_only_invalid_series_is_400_listing_them(client: TestClient) -> None:
    data = body(
        [
            Series([("job", "x")], [(1.0, now_ms())]),
            Series([("__name__", "n"), ("bad-name!", "v")], [(1.0, now_ms())]),
        ]
    )
    message = text_error(write(client, data), 400)
    assert message.startswith("nothing was stored")
    assert 'timeseries[0]: {job="x"}: no __name__ label' in message
    assert "timeseries[1]: n{" in message and "'bad-name!' is invalid" in message
    assert client.get("/v1/series", headers=ADMIN).json()["items"] == []


def test_partial_write_stores_the_valid_series_and_lists_the_rest(
    client: TestClient, services: Services
) -> None:
    t = now_ms()
    data = body(
        [
            Series([("__name__", "good"), ("job", "j")], [(1.0, t), (NORMAL_NAN, t + 1)]),
            Series([("job", "j")], [(2.0, t)]),
            Series([("__name__", "good_too")], [(3.0, t)]),
        ]
    )
    message = text_error(write(client, data), 400)
    assert message.splitlines()[0] == (
        "2 series or samples were not stored, the other 2 samples were:"
    )
    assert "timeseries[0].samples[1]: good: NaN is not stored" in message
    assert 'timeseries[1]: {job="j"}: no __name__ label' in message
    assert points(client, series(client, "good")[0]["id"]) == [1.0]
    assert points(client, series(client, "good_too")[0]["id"]) == [3.0]
    partial = 'stats_ingest_rejected_total{protocol="prometheus",reason="partial"'
    assert metric_value(client, partial) == 1.0


def test_bodies_over_the_limits_are_413(tmp_path: Path) -> None:
    with TestClient(create_app(make_settings(tmp_path, max_body_bytes=1024))) as client:
        big = body([Series([("__name__", f"m{i}")], [(float(i), now_ms())]) for i in range(200)])
        assert len(big) > 1024
        assert "1024" in text_error(write(client, big), 413)
        # 12 bytes that declare 9 KiB of protobuf: refused before anything is inflated
        bomb = bytes([0x80, 0x48]) + b"\x00" * 10
        assert "9216 bytes" in text_error(write(client, bomb), 413)
        fits = body([Series([("__name__", "m")], [(1.0, now_ms())])])
        assert write(client, fits).status_code == 204


def test_queue_full_is_429_with_retry_after(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, queue_max_points=1000)
    with TestClient(create_app(settings)) as client:
        services: Services = client.app.state.services  # type: ignore[attr-defined]
        t = now_ms()
        requests = Background(client)
        with writer_held(services) as held:
            first = body([Series([("__name__", "a")], [(1.0, t)])])
            requests.post("a", URL, content=first, headers={**PROTOBUF, **ADMIN})
            assert held.entered.wait(10)  # the writer is busy with "a"; the queue is empty
            many = [Series([("__name__", "b")], [(float(i), t - i) for i in range(600)])]
            requests.post("b", URL, content=body(many), headers={**PROTOBUF, **ADMIN})
            wait_until(services, lambda: services.writer.queued_points == 600)
            answer = write(client, body(many))
            assert "queue is full" in text_error(answer, 429)
            assert answer.headers["Retry-After"] == "1"
        answers = requests.join()
        assert answers["a"].status_code == 204 and answers["b"].status_code == 204
        assert write(client, body(many)).status_code == 204  # room again once drained


def test_a_commit_that_takes_too_long_is_503_with_retry_after(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, ingest_timeout_s=0.5)
    with TestClient(create_app(settings)) as client:
        services: Services = client.app.state.services  # type: ignore[attr-defined]
        t = now_ms()
        requests = Background(client)
        with writer_held(services) as held:
            first = body([Series([("__name__", "a")], [(1.0, t)])])
            requests.post("a", URL, content=first, headers={**PROTOBUF, **ADMIN})
            assert held.entered.wait(10)
            answer = write(client, body([Series([("__name__", "b")], [(2.0, t)])]))
            assert "did not complete in time" in text_error(answer, 503)
            assert answer.headers["Retry-After"] == "5"
        requests.join()
        services.writer.drain()
        assert write(client, body([Series([("__name__", "c")], [(3.0, t)])])).status_code == 204


# -- tenants -------------------------------------------------------------------------------


def test_another_tenants_key_writes_only_into_its_own_tenant(client: TestClient) -> None:
    t = now_ms()
    labels = [("__name__", "shared_name"), ("job", "a")]
    assert write(client, body([Series(labels, [(1.0, t)])])).status_code == 204
    new_tenant(client, "other")
    other_key = new_key(client, "ingest", "other")["X-API-Key"]
    other_read = new_key(client, "read", "other")
    assert write(client, body([Series(labels, [(-1.0, t)])]), other_key).status_code == 204

    [mine] = series(client, "shared_name")
    assert points(client, mine["id"]) == [1.0]  # A's point is untouched
    [theirs] = series(client, "shared_name", other_read)
    assert theirs["id"] != mine["id"]
    assert points(client, theirs["id"], other_read) == [-1.0]
    assert client.get(f"/v1/series/{mine['id']}", headers=other_read).status_code == 404


def test_a_full_shard_batch_in_one_request(client: TestClient, services: Services) -> None:
    """Prometheus' shards send up to max_samples_per_send samples, one series each."""
    t = now_ms()
    data = body(
        [
            Series(
                [("__name__", f"bulk_{i % 7}"), ("instance", f"host-{i}"), ("job", "bulk")],
                [(float(i), t)],
            )
            for i in range(2000)
        ]
    )
    assert write(client, data).status_code == 204
    assert count(services, "points") == 2000
    assert count(services, "series") == 2000


def test_the_archived_body_is_parsed_again_by_replay(client: TestClient) -> None:
    t = now_ms()
    data = body(
        [
            Series([("__name__", "replayed"), ("job", "r")], [(1.0, t), (STALE_NAN, t + 1)]),
            Series([("job", "r")], [(2.0, t)]),  # skipped again, without failing the replay
        ]
    )
    assert write(client, data).status_code == 400  # partial: one series stored
    day = time.strftime("%Y-%m-%d", time.gmtime())
    answer = client.post("/v1/admin/replay", json={"from": day, "to": day}, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["batches"] == 1 and report["failed"] == []
    assert report["points"] == 0  # replay never overwrites: the point is there already
    assert points(client, series(client, "replayed")[0]["id"]) == [1.0]
