"""POST /v1/ingest against the real app and a real DuckDB file (in-process)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from write_support import (
    MINUTE_US,
    T0,
    T0_US,
    Background,
    assert_problem,
    batch,
    count,
    stored,
    wait_until,
    writer_held,
)

from conftest import make_settings, new_key, new_tenant
from stats_service.app import create_app
from stats_service.archive.envelope import Envelope, read_object
from stats_service.errors import Overloaded
from stats_service.ingest.writer import Writer
from stats_service.model import SeriesKey, WriteItem
from stats_service.services import Services

NOW_US = T0_US + 3_600_000_000  # the server's (injected) clock: 2024-05-01T13:00:00Z
READING = {"device": "esp32-kitchen", "ts": T0, "metrics": {"temperature": 21.5}}


@pytest.fixture
def frozen(services: Services) -> int:
    """Pin the server clock the pipeline reads (received_at, `now` of missing ts, skew)."""
    services.pipeline._clock = lambda: NOW_US
    return NOW_US


def post(client: TestClient, body: Any, headers: dict[str, str], **kwargs: Any) -> httpx.Response:
    return client.post("/v1/ingest", json=body, headers=headers, **kwargs)


# -- acceptance and durability ----------------------------------------------------------


def test_accepted_answer_and_the_data_is_committed_before_it(
    client: TestClient, services: Services, admin: dict[str, str]
) -> None:
    response = post(client, READING, admin)
    assert response.status_code == 202, response.text
    body = response.json()
    assert set(body) == {"batch_id", "points"}
    assert body["points"] == 1
    assert uuid.UUID(body["batch_id"])
    # no drain(): the answer itself promises the commit
    assert stored(services) == [("temperature", "esp32-kitchen", T0_US, 21.5)]


def test_the_answer_waits_for_the_commit(
    client: TestClient, services: Services, admin: dict[str, str]
) -> None:
    requests = Background(client)
    with writer_held(services) as held:
        requests.post("a", "/v1/ingest", json=READING, headers=admin)
        assert held.entered.wait(10)  # the writer took the batch and is inside its commit
        requests.threads[0].join(0.2)
        assert "a" not in requests.responses  # no answer before the commit
        assert stored(services) == []
    assert requests.join()["a"].status_code == 202
    assert stored(services) == [("temperature", "esp32-kitchen", T0_US, 21.5)]


def test_all_forms_of_the_contract(
    client: TestClient, services: Services, admin: dict[str, str]
) -> None:
    body = [
        {"device": "a", "ts": T0, "tags": {"room": "kitchen"}, "metrics": {"t": 1, "h": 2}},
        {"device": "b", "points": [{"ts": T0, "values": {"t": 3}}, {"ts": T0, "values": {"h": 4}}]},
    ]
    response = post(client, body, admin)
    assert response.status_code == 202, response.text
    assert response.json()["points"] == 4
    assert stored(services) == [
        ("h", "a", T0_US, 2.0),
        ("h", "b", T0_US, 4.0),
        ("t", "a", T0_US, 1.0),
        ("t", "b", T0_US, 3.0),
    ]


def test_units_and_tags_are_kept_on_the_series(
    client: TestClient, services: Services, admin: dict[str, str]
) -> None:
    body = {
        "device": "d1",
        "tags": {"room": "lab"},
        "units": {"t": "°C"},
        "metrics": {"t": 20, "p": {"value": 1013, "unit": "hPa"}, "n": 1},
    }
    assert post(client, body, admin).status_code == 202
    with services.store.reader() as cur:
        rows = cur.execute(
            "SELECT metric, device, unit, tags FROM series ORDER BY metric"
        ).fetchall()
    assert [(m, d, u, json.loads(t)) for m, d, u, t in rows] == [
        ("n", "d1", None, {"device": "d1", "room": "lab"}),
        ("p", "d1", "hPa", {"device": "d1", "room": "lab"}),
        ("t", "d1", "°C", {"device": "d1", "room": "lab"}),
    ]


# -- refusals ---------------------------------------------------------------------------


def test_invalid_json_is_a_400_problem(
    client: TestClient, services: Services, admin: dict[str, str]
) -> None:
    response = client.post(
        "/v1/ingest", content=b'{"device": "d", "metrics": {', headers=admin | _json_type()
    )
    problem = assert_problem(response, 400)
    assert "not valid JSON" in problem["detail"]
    assert problem["instance"] == "/v1/ingest"
    assert count(services, "points") == 0


def test_schema_errors_list_every_field_error(client: TestClient, admin: dict[str, str]) -> None:
    points = [{"ts": T0, "values": {"temperature": 20}} for _ in range(3)]
    points.append({"ts": T0, "values": {"temperature": "warm"}})
    body = [
        {"device": "esp32-kitchen", "points": points},
        {"device": "bad device", "tags": {"device": "x"}, "metrics": {"x": None, "y": True}},
        {"device": "ok", "ts": "yesterday", "metrics": {}},
    ]
    problem = assert_problem(post(client, body, admin), 400)
    assert problem["title"] == "Invalid payload"
    assert {(e["loc"], e["msg"]) for e in problem["errors"]} >= {
        ("[0].points[3].values.temperature", "must be a finite number"),
        ("[1].metrics.x", "must be a finite number"),
        ("[1].metrics.y", "must be a finite number"),
    }
    assert [e["loc"] for e in problem["errors"]] == [
        "[0].points[3].values.temperature",
        "[1].device",
        "[1].tags.device",
        "[1].metrics.x",
        "[1].metrics.y",
        "[2].ts",
        "[2].metrics",
    ]
    assert problem["detail"].startswith("7 field errors: [0].points[3].values.temperature: must")


def test_non_finite_values_are_refused_with_their_location(
    client: TestClient, services: Services, admin: dict[str, str]
) -> None:
    text = '{"device": "d", "points": [{"values": {"t": 1}}, {"values": {"t": NaN}}]}'
    response = client.post("/v1/ingest", content=text, headers=admin | _json_type())
    problem = assert_problem(response, 400)
    errors = {e["loc"]: e["msg"] for e in problem["errors"]}
    assert errors["points[1].values.t"] == "must be a finite number"
    assert count(services, "points") == 0


@pytest.mark.parametrize(
    "body", [[], {"device": "d", "points": []}, {"device": "d", "metrics": {}}]
)
def test_empty_batches_are_refused(client: TestClient, admin: dict[str, str], body: Any) -> None:
    problem = assert_problem(post(client, body, admin), 400)
    assert "no points" in problem["detail"] or "non-empty" in problem["detail"]


def test_one_bad_point_refuses_the_whole_batch(
    client: TestClient, services: Services, admin: dict[str, str]
) -> None:
    body = batch("d1", 200)
    body["points"][150]["values"]["temperature"] = "n/a"
    problem = assert_problem(post(client, body, admin), 400)
    assert [e["loc"] for e in problem["errors"]] == ["points[150].values.temperature"]
    services.writer.drain()
    assert count(services, "points") == 0
    assert count(services, "series") == 0
    assert count(services, "devices") == 0
    assert list(services.archive.keys("raw/")) == []


def test_future_timestamps_beyond_the_skew_are_refused(
    client: TestClient, services: Services, admin: dict[str, str], frozen: int
) -> None:
    skew_us = int(services.settings.future_skew_s * 1_000_000)
    ok = {"device": "d", "points": [{"ts": (frozen + skew_us) // 1000, "values": {"t": 1}}]}
    assert post(client, ok, admin, params={"precision": "ms"}).status_code == 202
    late = {"device": "d", "points": [{"ts": (frozen + skew_us) // 1000 + 1, "values": {"t": 2}}]}
    problem = assert_problem(post(client, late, admin, params={"precision": "ms"}), 400)
    (error,) = problem["errors"]
    assert error["loc"] == "points[0].ts"
    assert "2024-05-01T13:10:00.001000Z lies too far in the future" in error["msg"]
    assert "server time 2024-05-01T13:00:00.000000Z" in error["msg"]
    assert [v for *_, v in stored(services)] == [1.0]


def test_missing_timestamp_is_the_server_time(
    client: TestClient, services: Services, admin: dict[str, str], frozen: int
) -> None:
    assert post(client, {"device": "d", "metrics": {"t": 1}}, admin).status_code == 202
    assert stored(services) == [("t", "d", frozen, 1.0)]


@pytest.mark.parametrize(
    ("precision", "ts", "expected"),
    [
        ("s", T0_US // 10**6, T0_US),
        ("ms", T0_US // 10**3, T0_US),
        ("us", T0_US, T0_US),
        ("ns", T0_US * 10**3 + 999, T0_US),
        ("s", 5, 5_000_000),  # explicit: even values that cannot be guessed
    ],
)
def test_precision_parameter(
    client: TestClient,
    services: Services,
    admin: dict[str, str],
    precision: str,
    ts: int,
    expected: int,
) -> None:
    body = {"device": "d", "ts": ts, "metrics": {"t": 1}}
    response = post(client, body, admin, params={"precision": precision})
    assert response.status_code == 202, response.text
    assert stored(services) == [("t", "d", expected, 1.0)]


def test_bad_or_missing_precision(client: TestClient, admin: dict[str, str]) -> None:
    problem = assert_problem(post(client, READING, admin, params={"precision": "m"}), 400)
    assert problem["errors"][0]["loc"] == "query.precision"
    ambiguous = {"device": "d", "ts": 1000, "metrics": {"t": 1}}
    problem = assert_problem(post(client, ambiguous, admin), 400)
    assert "precision=s|ms|us|ns" in problem["errors"][0]["msg"]


# -- limits -----------------------------------------------------------------------------


def test_body_over_the_limit_is_413(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, max_body_bytes=1024)
    with TestClient(create_app(settings)) as client:
        services: Services = client.app.state.services  # type: ignore[attr-defined]
        admin = {"X-API-Key": settings.admin_key or ""}
        small = batch("d", 5)
        assert len(json.dumps(small)) < 1024
        assert post(client, small, admin).status_code == 202
        big = batch("d", 40)
        assert len(json.dumps(big)) > 1024
        problem = assert_problem(post(client, big, admin), 413)
        assert "1024" in problem["detail"]
        # chunked: no Content-Length, the limit holds while reading
        chunks = iter([json.dumps(big).encode()])
        response = client.post("/v1/ingest", content=chunks, headers=admin | _json_type())
        assert "content-length" not in response.request.headers
        assert_problem(response, 413)
        assert len(stored(services)) == 5


def test_chunked_body_is_cut_off_at_the_limit(tmp_path: Path) -> None:
    """A streamed body is refused once it passes the limit, without reading the rest."""
    settings = make_settings(tmp_path, max_body_bytes=1024)
    with TestClient(create_app(settings)) as client:
        app = client.app
        sent: list[int] = []

        async def chunks() -> AsyncIterator[bytes]:
            for i in range(100):
                sent.append(i)
                yield b" " * 512

        async def run() -> httpx.Response:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                return await http.post(
                    "/v1/ingest",
                    content=chunks(),
                    headers={"X-API-Key": settings.admin_key or ""} | _json_type(),
                )

        response = asyncio.run(run())
        assert_problem(response, 413)
        assert len(sent) < 10


def test_batch_over_the_tenant_limit_is_413(
    client: TestClient, services: Services, admin: dict[str, str]
) -> None:
    patch = client.patch("/v1/admin/tenants/default", json={"max_batch_points": 10}, headers=admin)
    assert patch.status_code == 200, patch.text
    assert post(client, batch("d", 10), admin).status_code == 202
    problem = assert_problem(post(client, batch("d", 11, start_us=T0_US + MINUTE_US), admin), 413)
    assert "11 points" in problem["detail"] and "at most 10" in problem["detail"]
    assert len(stored(services)) == 10


def test_series_limit_is_422_and_nothing_of_the_batch_is_written(
    client: TestClient, services: Services, admin: dict[str, str]
) -> None:
    client.patch("/v1/admin/tenants/default", json={"max_series": 3}, headers=admin)
    first = {"device": "d", "ts": T0, "metrics": {"a": 1, "b": 2}}
    assert post(client, first, admin).status_code == 202
    over = {
        "device": "d",
        "points": [
            {"ts": "2024-05-01T12:01:00Z", "values": {"a": 10, "b": 20}},  # known series
            {"ts": "2024-05-01T12:01:00Z", "values": {"c": 30, "e": 40}},  # two new: 4 > 3
        ],
    }
    problem = assert_problem(post(client, over, admin), 422)
    assert "at most 3" in problem["detail"] and "2 new series" in problem["detail"]
    services.writer.drain()
    assert stored(services) == [("a", "d", T0_US, 1.0), ("b", "d", T0_US, 2.0)]
    assert count(services, "series") == 2
    # within the limit it is accepted, the known series do not count again
    fits = {"device": "d", "ts": "2024-05-01T12:02:00Z", "metrics": {"a": 3, "b": 4, "c": 5}}
    assert post(client, fits, admin).status_code == 202
    assert count(services, "series") == 3
    assert post(client, {"device": "d", "metrics": {"z": 1}}, admin).status_code == 422


def test_series_limit_is_per_tenant(client: TestClient, admin: dict[str, str]) -> None:
    new_tenant(client, "acme")
    client.patch("/v1/admin/tenants/acme", json={"max_series": 1}, headers=admin)
    acme = new_key(client, "ingest", "acme")
    assert post(client, {"device": "d", "metrics": {"a": 1}}, acme).status_code == 202
    assert post(client, {"device": "d", "metrics": {"b": 1}}, acme).status_code == 422
    assert post(client, {"device": "d", "metrics": {"a": 1, "b": 1}}, admin).status_code == 202


def test_queue_full_is_429_with_retry_after(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, queue_max_points=1000)
    with TestClient(create_app(settings)) as client:
        services: Services = client.app.state.services  # type: ignore[attr-defined]
        admin = {"X-API-Key": settings.admin_key or ""}
        requests = Background(client)
        with writer_held(services) as held:
            requests.post("a", "/v1/ingest", json=batch("a", 1), headers=admin)
            assert held.entered.wait(10)  # the writer is busy with "a"; the queue is empty
            requests.post("b", "/v1/ingest", json=batch("b", 600), headers=admin)
            wait_until(services, lambda: services.writer.queued_points == 600)
            response = post(client, batch("c", 600), admin)
            problem = assert_problem(response, 429)
            assert response.headers["Retry-After"] == "1"
            assert "queue is full" in problem["detail"]
        answers = requests.join()
        assert answers["a"].status_code == 202 and answers["b"].status_code == 202
        assert {device for _, device, *_ in stored(services)} == {"a", "b"}
        assert len(stored(services)) == 601
        assert services.writer.queued_points == 0
        # room again once the queue has drained
        assert post(client, batch("c", 600), admin).status_code == 202


def test_writer_submit_is_bounded_by_points(services: Services) -> None:
    """`Writer.submit` directly: an oversized item is taken only into an empty queue."""
    writer = Writer(
        services.store,
        services.usage,
        None,
        max_queue_points=1000,
        commit_max_points=1000,
        linger_s=0,
    )  # never started: nothing leaves the queue
    item = _item(services, 600)
    writer.submit(item)
    with pytest.raises(Overloaded) as info:
        writer.submit(_item(services, 401))
    assert info.value.retry_after >= 1
    writer.submit(_item(services, 400))
    assert writer.queued_points == 1000
    alone = Writer(
        services.store,
        services.usage,
        None,
        max_queue_points=1000,
        commit_max_points=1000,
        linger_s=0,
    )
    alone.submit(_item(services, 5000))  # bigger than the queue, but alone: not starved
    assert alone.queued_points == 5000


def test_a_timed_out_request_does_not_stop_the_writer(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, ingest_timeout_s=0.5)
    with TestClient(create_app(settings)) as client:
        services: Services = client.app.state.services  # type: ignore[attr-defined]
        admin = {"X-API-Key": settings.admin_key or ""}
        requests = Background(client)
        with writer_held(services) as held:
            requests.post("a", "/v1/ingest", json=batch("a", 1), headers=admin)
            assert held.entered.wait(10)
            response = post(client, batch("b", 1), admin)  # queued behind "a"; times out
            problem = assert_problem(response, 503)
            assert "Idempotency-Key" in problem["detail"]
            assert response.headers["Retry-After"] == "5"
        assert requests.join()["a"].status_code == 503  # it waited too long as well
        services.writer.drain()
        assert post(client, batch("c", 1), admin).status_code == 202
        devices = {device for _, device, *_ in stored(services)}
        assert devices >= {"a", "c"}  # "a" was committed after all (as the 503 warns)


def test_refused_requests_do_not_use_up_the_series_limit(tmp_path: Path) -> None:
    """New series of a request that ends in 429 are not counted against the tenant."""
    settings = make_settings(tmp_path, queue_max_points=1000, max_series=3)
    with TestClient(create_app(settings)) as client:
        services: Services = client.app.state.services  # type: ignore[attr-defined]
        admin = {"X-API-Key": settings.admin_key or ""}
        requests = Background(client)
        with writer_held(services) as held:
            requests.post("x", "/v1/ingest", json=batch("x", 1), headers=admin)
            assert held.entered.wait(10)
            requests.post("b", "/v1/ingest", json=batch("b", 600), headers=admin)
            wait_until(services, lambda: services.writer.queued_points == 600)
            assert_problem(post(client, batch("c", 600), admin), 429)  # a third new series
        assert all(r.status_code == 202 for r in requests.join().values())
        assert count(services, "series") == 2
        assert post(client, batch("d", 1), admin).status_code == 202  # the third series
        assert_problem(post(client, batch("e", 1), admin), 422)  # a fourth is too many


def test_a_failing_item_does_not_fail_its_neighbours(
    client: TestClient, services: Services, admin: dict[str, str], frozen: int
) -> None:
    """One request of a group commit fails (a series id taken meanwhile): only it is
    refused; replay reports it instead of stopping."""
    requests = Background(client)
    with writer_held(services) as held:
        requests.post("x", "/v1/ingest", json=batch("x", 1), headers=admin)
        assert held.entered.wait(10)
        requests.post("a", "/v1/ingest", json=batch("a", 2), headers=admin)
        wait_until(services, lambda: services.writer.queued_points == 2)
        requests.post("b", "/v1/ingest", json=batch("b", 3), headers=admin)
        wait_until(services, lambda: services.writer.queued_points == 5)
        taken = SeriesKey.of(1, "temperature", {"device": "b"}).series_id
        with services.store.transaction() as con:  # the writer waits before its transaction
            con.execute(
                "INSERT INTO series (id, tenant_id, metric, tags, canonical, created_at) "
                "VALUES (?, 1, 'other', '{}', '[1,\"other\",[]]', now())",
                [taken],
            )
    answers = requests.join()
    assert answers["x"].status_code == answers["a"].status_code == 202
    problem = assert_problem(answers["b"], 409)
    assert "collides" in problem["detail"]
    assert {device for _, device, *_ in stored(services)} == {"x", "a"}

    _delete_points(services)
    report = _replay(client, admin)
    assert report["points"] == 3
    refused = answers["b"].json()  # a problem body: b's batch id is not in it
    assert "batch_id" not in refused
    assert report["failed"]
    assert all("collides" in f for f in report["failed"])
    assert {device for _, device, *_ in stored(services)} == {"x", "a"}


# -- late, out-of-order and repeated points -----------------------------------------------


def test_late_and_out_of_order_points_are_accepted(
    client: TestClient, services: Services, admin: dict[str, str]
) -> None:
    for minutes in (30, 10, 20, -60 * 24 * 365, 25):
        ts = (T0_US + minutes * MINUTE_US) // 1_000_000
        body = {"device": "d", "points": [{"ts": ts, "values": {"t": float(minutes)}}]}
        assert post(client, body, admin).status_code == 202
    assert [v for *_, v in stored(services)] == [-525600.0, 10.0, 20.0, 25.0, 30.0]
    with services.store.reader() as cur:
        last = cur.execute("SELECT epoch_us(last_ts), last_value FROM series").fetchall()
    assert last == [(T0_US + 30 * MINUTE_US, 30.0)]


def test_same_series_and_time_keeps_the_last_value(
    client: TestClient, services: Services, admin: dict[str, str]
) -> None:
    within = {
        "device": "d",
        "points": [
            {"ts": T0, "values": {"t": 1}},
            {"ts": "2024-05-01T12:01:00Z", "values": {"t": 5}},
            {"ts": "2024-05-01T14:00:00+02:00", "values": {"t": 2}},  # == T0
        ],
    }
    assert post(client, within, admin).status_code == 202
    assert [(ts, v) for _, _, ts, v in stored(services)] == [(T0_US, 2.0), (T0_US + MINUTE_US, 5.0)]
    again = {"device": "d", "points": [{"ts": T0_US // 1000, "values": {"t": 3}}]}
    assert post(client, again, admin, params={"precision": "ms"}).status_code == 202
    newest = {"device": "d", "ts": "2024-05-01T12:01:00Z", "metrics": {"t": 6}}
    assert post(client, newest, admin).status_code == 202
    assert [(ts, v) for _, _, ts, v in stored(services)] == [(T0_US, 3.0), (T0_US + MINUTE_US, 6.0)]
    with services.store.reader() as cur:
        assert cur.execute("SELECT last_value FROM series").fetchall() == [(6.0,)]


def test_same_series_and_time_in_one_group_commit_keeps_the_last_request(
    client: TestClient, services: Services, admin: dict[str, str]
) -> None:
    requests = Background(client)
    with writer_held(services) as held:
        requests.post("first", "/v1/ingest", json=batch("x", 1), headers=admin)
        assert held.entered.wait(10)
        for value in (1, 2, 3):  # queued together: one group, in arrival order
            body = {"device": "d", "ts": T0, "metrics": {"t": value}}
            requests.post(f"v{value}", "/v1/ingest", json=body, headers=admin)
            wait_until(services, lambda v=value: services.writer.queued_points == v)
    assert all(r.status_code == 202 for r in requests.join().values())
    assert stored(services, "t") == [("t", "d", T0_US, 3.0)]


# -- idempotency --------------------------------------------------------------------------


def test_retry_with_the_same_idempotency_key_is_not_stored_twice(
    client: TestClient, services: Services, admin: dict[str, str]
) -> None:
    key = {"Idempotency-Key": "upload-0001"}
    first = post(client, batch("d", 3), admin | key)
    assert first.status_code == 202
    again = post(client, batch("d", 3), admin | key)
    assert again.status_code == 202
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert len(stored(services)) == 3
    assert count(services, "idempotency") == 1
    services.writer.drain()
    with services.store.reader() as cur:
        assert cur.execute("SELECT sum(points) FROM usage").fetchone() == (3,)
    assert len(list(services.archive.keys("raw/"))) == 1
    # another key, or no key, is new data
    other = post(client, batch("d", 3), admin | {"Idempotency-Key": "upload-0002"})
    assert other.json()["batch_id"] != first.json()["batch_id"]


def test_same_idempotency_key_with_another_body_is_409(
    client: TestClient, services: Services, admin: dict[str, str]
) -> None:
    key = {"Idempotency-Key": "k-1"}
    assert post(client, batch("d", 2), admin | key).status_code == 202
    problem = assert_problem(post(client, batch("d", 3), admin | key), 409)
    assert "k-1" in problem["detail"]
    assert len(stored(services)) == 2


def test_idempotency_keys_are_per_tenant(client: TestClient, admin: dict[str, str]) -> None:
    new_tenant(client, "acme")
    acme = new_key(client, "ingest", "acme")
    key = {"Idempotency-Key": "shared"}
    mine = post(client, batch("d", 1), admin | key)
    theirs = post(client, batch("e", 2), acme | key)
    assert mine.status_code == theirs.status_code == 202
    assert theirs.json()["points"] == 2
    assert theirs.json()["batch_id"] != mine.json()["batch_id"]


def test_concurrent_retries_with_one_key_are_stored_once(
    client: TestClient, services: Services, admin: dict[str, str]
) -> None:
    """A retry sent while the first attempt still waits in the queue."""
    requests = Background(client)
    key = {"Idempotency-Key": "in-flight"}
    with writer_held(services) as held:
        requests.post("x", "/v1/ingest", json=batch("x", 1), headers=admin)
        assert held.entered.wait(10)
        requests.post("first", "/v1/ingest", json=batch("d", 3), headers=admin | key)
        wait_until(services, lambda: services.writer.queued_points == 3)
        requests.post("retry", "/v1/ingest", json=batch("d", 3), headers=admin | key)
        requests.post("other", "/v1/ingest", json=batch("d", 4), headers=admin | key)
        requests.threads[3].join(10)
        assert requests.responses["other"].status_code == 409
    answers = requests.join()
    assert answers["first"].status_code == answers["retry"].status_code == 202
    assert answers["retry"].json() == answers["first"].json()
    assert len(stored(services, "temperature")) == 4  # x's point and d's three
    assert count(services, "idempotency") == 1


def test_idempotency_key_must_be_reasonable(client: TestClient, admin: dict[str, str]) -> None:
    problem = assert_problem(post(client, READING, admin | {"Idempotency-Key": "k" * 256}), 400)
    assert "Idempotency-Key" in problem["detail"]


# -- devices, archive and replay ---------------------------------------------------------


def test_devices_last_seen_is_the_server_time_of_the_newest_request(
    client: TestClient, services: Services, admin: dict[str, str]
) -> None:
    times = iter([T0_US + 60_000_000, T0_US + 120_000_000])
    services.pipeline._clock = lambda: next(times)
    assert post(client, batch("d1", 2), admin).status_code == 202
    assert post(client, [batch("d1", 1), batch("d2", 1)], admin).status_code == 202
    with services.store.reader() as cur:
        rows = cur.execute(
            "SELECT name, epoch_us(first_seen), epoch_us(last_seen) FROM devices ORDER BY name"
        ).fetchall()
    assert rows == [
        ("d1", T0_US + 60_000_000, T0_US + 120_000_000),
        ("d2", T0_US + 120_000_000, T0_US + 120_000_000),
    ]


def test_raw_archive_holds_the_payload(
    client: TestClient, services: Services, admin: dict[str, str], frozen: int
) -> None:
    raw = json.dumps(READING).encode()
    response = client.post(
        "/v1/ingest",
        content=raw,
        params={"precision": "s"},
        headers=admin | _json_type() | {"Idempotency-Key": "arch-1"},
    )
    assert response.status_code == 202
    batch_id = response.json()["batch_id"]
    keys = list(services.archive.keys("raw/"))
    assert keys == [f"raw/default/2024/05/01/13/{batch_id}.ndjson.zst"]
    path = services.settings.archive_dir.parent / keys[0]
    assert path.is_file()
    data = path.read_bytes()
    assert data.startswith(b"\x28\xb5\x2f\xfd")  # a zstd frame: compressed
    (envelope,) = read_object(data)
    assert envelope.body == raw
    assert envelope.batch_id == batch_id
    assert (envelope.tenant, envelope.protocol) == ("default", "json")
    assert envelope.params == {"precision": "s"}
    assert envelope.idempotency_key == "arch-1"
    assert envelope.received_at == datetime(2024, 5, 1, 13, 0)


def test_one_archive_object_per_group_commit(
    client: TestClient, services: Services, admin: dict[str, str], frozen: int
) -> None:
    requests = Background(client)
    bodies = [batch(f"d{i}", 2) for i in range(3)]
    with writer_held(services) as held:
        requests.post("x", "/v1/ingest", json=batch("x", 1), headers=admin)
        assert held.entered.wait(10)
        for i, body in enumerate(bodies):
            requests.post(str(i), "/v1/ingest", json=body, headers=admin)
            wait_until(services, lambda n=i: services.writer.queued_points == 2 * (n + 1))
    answers = requests.join()
    keys = list(services.archive.keys("raw/default/2024/05/01/13/"))
    assert len(keys) == 2  # "x" alone, then the three queued behind it together
    envelopes = [e for key in keys for e in read_object(services.archive.get(key))]
    batch_ids = sorted(r.json()["batch_id"] for r in answers.values())
    assert sorted(e.batch_id for e in envelopes) == batch_ids
    by_id = {e.batch_id: json.loads(e.body) for e in envelopes}
    for i, body in enumerate(bodies):
        assert by_id[answers[str(i)].json()["batch_id"]] == body


def _delete_points(services: Services) -> None:
    with services.store.transaction() as con:
        con.execute("DELETE FROM points")


def _replay(client: TestClient, admin: dict[str, str], **extra: str) -> dict[str, Any]:
    body = {"from": "2024-05-01", "to": "2024-05-01", **extra}
    response = client.post("/v1/admin/replay", json=body, headers=admin)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def test_replay_restores_deleted_points_and_is_idempotent(
    client: TestClient, services: Services, admin: dict[str, str], frozen: int
) -> None:
    assert post(client, batch("d1", 5), admin).status_code == 202
    assert post(client, [READING, {"device": "d2", "metrics": {"h": 40}}], admin).status_code == 202
    before = stored(services)
    assert len(before) == 7
    _delete_points(services)
    assert stored(services) == []
    assert _replay(client, admin) == {"batches": 2, "points": 7, "failed": []}
    assert stored(services) == before  # incl. the point without ts: the archived server time
    assert _replay(client, admin) == {"batches": 2, "points": 0, "failed": []}
    assert stored(services) == before
    other_day = {"from": "2024-05-02", "to": "2024-05-03"}
    assert _replay(client, admin, **other_day)["batches"] == 0


def test_replay_never_overwrites_a_newer_value(
    client: TestClient, services: Services, admin: dict[str, str], frozen: int
) -> None:
    old = {"device": "d", "ts": T0, "metrics": {"t": 1.0}}
    assert post(client, old, admin).status_code == 202
    (first_key,) = services.archive.keys("raw/")
    newer = {"device": "d", "ts": T0, "metrics": {"t": 2.0}}
    assert post(client, newer, admin).status_code == 202
    # only the older payload is in the archive now
    for key in list(services.archive.keys("raw/")):
        if key != first_key:
            (services.settings.data_dir / key).unlink()
    assert _replay(client, admin)["points"] == 0
    assert stored(services) == [("t", "d", T0_US, 2.0)]
    with services.store.reader() as cur:
        last = cur.execute("SELECT epoch_us(last_ts), last_value FROM series").fetchall()
    assert last == [(T0_US, 2.0)]


def test_replay_of_one_tenant(
    client: TestClient, services: Services, admin: dict[str, str], frozen: int
) -> None:
    new_tenant(client, "acme")
    acme = new_key(client, "ingest", "acme")
    assert post(client, batch("a", 2), acme).status_code == 202
    assert post(client, batch("d", 3), admin).status_code == 202
    _delete_points(services)
    assert _replay(client, admin, tenant="acme") == {"batches": 1, "points": 2, "failed": []}
    assert {device for _, device, *_ in stored(services)} == {"a"}


# -- helpers -------------------------------------------------------------------------------


def _json_type() -> dict[str, str]:
    return {"Content-Type": "application/json"}


def _item(services: Services, n: int) -> WriteItem:
    body = batch("q", n)
    parsed = services.pipeline.parse(_envelope(json.dumps(body).encode()), T0_US + 10**10)
    return WriteItem(
        batch=parsed,
        batch_id=str(uuid.uuid4()),
        received_at=datetime.now(UTC).replace(tzinfo=None),
        protocol="json",
        nbytes=0,
        response={},
    )


def _envelope(body: bytes) -> Envelope:
    return Envelope(
        str(uuid.uuid4()), "default", 1, "json", datetime(2024, 5, 1, 12), {}, body, None
    )
