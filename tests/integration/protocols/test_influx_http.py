"""InfluxDB-compatible HTTP endpoints on the real app: writes, auth, errors, queries.

The real client libraries talk to a real server process in
tests/e2e/test_influx_clients.py; here every status code and error text InfluxDB's
clients depend on is checked through the in-process app.
"""

from __future__ import annotations

import gzip
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from conftest import ADMIN_KEY, make_settings, new_key, new_tenant
from stats_service.app import create_app
from stats_service.errors import Overloaded, Unavailable
from stats_service.ingest.timestamps import rfc3339_to_us
from stats_service.services import Services

ADMIN = {"X-API-Key": ADMIN_KEY}
TOKEN = {"Authorization": f"Token {ADMIN_KEY}"}
HA_DEVICE = "sensor.living_room_temperature"


def now_s() -> int:
    return int(time.time())


def ha_lines(ts_s: int, value: float = 21.5) -> bytes:
    """What Home Assistant's InfluxDB integration writes for one temperature sensor."""
    return (
        f"°C,domain=sensor,entity_id=living_room_temperature "
        f'value={value},state="{value}",friendly_name_str="Living room",'
        f'device_class_str="temperature" {ts_s}'
    ).encode()


def series_of(client: TestClient, device: str, headers: dict[str, str] = ADMIN) -> dict[str, Any]:
    answer = client.get("/v1/series", params={"device": device}, headers=headers)
    assert answer.status_code == 200, answer.text
    return {s["metric"]: s for s in answer.json()["items"]}


def read(client: TestClient, sid: str, kind: str = "points") -> dict[str, Any]:
    answer = client.get(
        f"/v1/series/{sid}/{kind}", params={"from": "now-2d", "to": "now+1h"}, headers=ADMIN
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def v1_error(answer: httpx.Response, status: int) -> str:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["x-influxdb-version"]
    message = answer.json()["error"]
    assert isinstance(message, str)
    if status != 401:
        flat = " ".join(message.splitlines()).encode("ascii", "backslashreplace").decode()
        assert answer.headers["x-influxdb-error"] == flat[:1024]
    return message


def v2_error(answer: httpx.Response, status: int, code: str) -> str:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"code", "message"} and body["code"] == code, body
    message: str = body["message"]
    return message


@pytest.fixture
def strict_client(tmp_path: Path) -> Iterator[TestClient]:
    """A service that does not create unknown database names on write."""
    settings = make_settings(tmp_path, influx_auto_create=False)
    with TestClient(create_app(settings)) as client:
        yield client


# -- liveness --------------------------------------------------------------------------


def test_ping_answers_204_with_version_headers_and_no_key(client: TestClient) -> None:
    for method in ("GET", "HEAD"):
        answer = client.request(method, "/ping")
        assert answer.status_code == 204 and answer.content == b""
        assert answer.headers["x-influxdb-version"].startswith("1.")
        assert answer.headers["x-influxdb-build"] == "OSS"
    verbose = client.get("/ping", params={"verbose": "true"})
    assert verbose.status_code == 200
    assert verbose.json() == {"version": verbose.headers["x-influxdb-version"]}


def test_health_has_influxdb_2_shape(client: TestClient) -> None:
    answer = client.get("/health")
    assert answer.status_code == 200
    body = answer.json()
    assert body == {
        "name": "influxdb",
        "message": "ready for queries and writes",
        "status": "pass",
        "checks": [],
        "version": body["version"],
    }


# -- writing ---------------------------------------------------------------------------


def test_home_assistant_payload_reads_back_as_the_entity(client: TestClient) -> None:
    ts = now_s()
    answer = client.post(
        "/write",
        params={"db": "home_assistant", "precision": "s"},
        content=ha_lines(ts),
        auth=("homeassistant", ADMIN_KEY),
    )
    assert answer.status_code == 204, answer.text
    assert answer.content == b""

    found = series_of(client, HA_DEVICE)
    assert found["value"]["unit"] == "°C"
    assert found["value"]["device"] == HA_DEVICE
    points = read(client, found["value"]["id"])
    assert points["value"] == [21.5]
    assert points["t"][0].startswith(time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)))
    assert read(client, found["state"]["id"], "states")["text"] == ["21.5"]
    assert read(client, found["friendly_name_str"]["id"], "states")["text"] == ["Living room"]
    assert found["device_class_str"]["last_state"] == "temperature"


def test_every_way_of_presenting_the_key_is_accepted(client: TestClient) -> None:
    key = new_key(client, "ingest")["X-API-Key"]
    ways: list[tuple[dict[str, str], dict[str, str], Any]] = [
        ({"u": "anyone", "p": key}, {}, None),
        ({}, {}, ("anyone", key)),
        ({}, {"Authorization": f"Token {key}"}, None),
        ({}, {"Authorization": f"Bearer {key}"}, None),
        ({}, {"Authorization": f"Token someone:{key}"}, None),
        ({}, {"X-API-Key": key}, None),
    ]
    for index, (params, headers, auth) in enumerate(ways):
        line = f"ways,device=d{index} v={index} {now_s()}"
        answer = client.post(
            "/write",
            params={"db": "x", "precision": "s", **params},
            headers=headers,
            auth=auth,
            content=line,
        )
        assert answer.status_code == 204, (index, answer.text)
        assert series_of(client, f"d{index}")["ways_v"]["last_value"] == index


def test_wrong_or_missing_credentials_are_refused(client: TestClient) -> None:
    for auth, headers in ((None, {}), (("root", "root"), {}), (None, {"X-API-Key": "nope"})):
        answer = client.post(
            "/write", params={"db": "x"}, auth=auth, headers=headers, content=b"m v=1"
        )
        assert v1_error(answer, 401) == "authorization failed"
        assert answer.headers["www-authenticate"] == 'Basic realm="InfluxDB"'
    answer = client.post("/api/v2/write", params={"bucket": "x"}, content=b"m v=1")
    assert v2_error(answer, 401, "unauthorized") == "unauthorized access"
    assert client.post("/query", data={"q": "SHOW DATABASES"}).status_code == 401


def test_root_root_writes_only_where_anonymous_writes_are_on(client: TestClient) -> None:
    root = ("root", "root")  # what Home Assistant's 1.x client sends without credentials
    line = f"m,device=anon v=1 {now_s()}"
    refused = client.post("/write", params={"db": "ha", "precision": "s"}, auth=root, content=line)
    assert v1_error(refused, 401) == "authorization failed"

    on = client.patch("/v1/admin/tenants/default", json={"anonymous_write": True}, headers=ADMIN)
    assert on.status_code == 200, on.text
    answer = client.post("/write", params={"db": "ha", "precision": "s"}, auth=root, content=line)
    assert answer.status_code == 204, answer.text
    assert series_of(client, "anon")["m_v"]["last_value"] == 1.0
    # anonymous writers may not read
    listing = client.get("/query", params={"q": "SHOW DATABASES"}, auth=root)
    assert v1_error(listing, 401) == "authorization failed"


def test_anonymous_write_goes_to_the_tenant_named_like_the_database(client: TestClient) -> None:
    new_tenant(client, "garden")
    on = client.patch("/v1/admin/tenants/garden", json={"anonymous_write": True}, headers=ADMIN)
    assert on.status_code == 200, on.text
    answer = client.post(
        "/write",
        params={"db": "garden", "precision": "s"},
        content=f"soil,device=bed1 v=40 {now_s()}",
    )
    assert answer.status_code == 204, answer.text
    garden = new_key(client, "read", "garden")
    assert "soil_v" in series_of(client, "bed1", garden)
    assert series_of(client, "bed1") == {}  # not in default


def test_a_read_key_may_not_write(client: TestClient) -> None:
    reader = new_key(client, "read")
    answer = client.post("/write", params={"db": "x"}, headers=reader, content=b"m v=1")
    assert 'not authorized to write to database "x"' in v1_error(answer, 403)
    answer = client.post("/api/v2/write", params={"bucket": "x"}, headers=reader, content=b"m v=1")
    v2_error(answer, 403, "forbidden")


def test_database_and_bucket_are_required(client: TestClient) -> None:
    assert v1_error(client.post("/write", headers=ADMIN, content=b"m v=1"), 400) == (
        "database is required"
    )
    answer = client.post("/api/v2/write", params={"org": "o"}, headers=TOKEN, content=b"m v=1")
    assert v2_error(answer, 400, "invalid") == "bucket is required"


def test_unknown_database_is_404_when_auto_create_is_off(strict_client: TestClient) -> None:
    client = strict_client
    answer = client.post("/write", params={"db": "nope"}, headers=ADMIN, content=b"m v=1")
    assert v1_error(answer, 404) == 'database not found: "nope"'
    answer = client.post(
        "/api/v2/write", params={"bucket": "nope"}, headers=TOKEN, content=b"m v=1"
    )
    assert v2_error(answer, 404, "not found") == 'bucket "nope" not found'
    # an ingest key may not create it either; an admin may
    ingest = new_key(client, "ingest")
    created = client.post("/query", data={"q": 'CREATE DATABASE "nope"'}, headers=ingest)
    assert "CREATE DATABASE needs an admin key" in v1_error(created, 403)
    created = client.post("/query", data={"q": 'CREATE DATABASE "nope"'}, headers=ADMIN)
    assert created.json() == {"results": [{"statement_id": 0}]}
    answer = client.post("/write", params={"db": "nope"}, headers=ingest, content=b"m v=1")
    assert answer.status_code == 204, answer.text


def test_partial_write_stores_the_valid_lines(client: TestClient, services: Services) -> None:
    ts = now_s()
    body = f"good,device=p v=1 {ts}\nbroken line here\ngood,device=p v=2 {ts + 1}\n"
    answer = client.post(
        "/write", params={"db": "x", "precision": "s"}, headers=ADMIN, content=body
    )
    message = v1_error(answer, 400)
    assert message.startswith("partial write: unable to parse 'broken line here': ")
    assert message.endswith(" dropped=1")
    assert read(client, series_of(client, "p")["good_v"]["id"])["value"] == [1.0, 2.0]

    answer = client.post(
        "/api/v2/write", params={"bucket": "x", "precision": "s"}, headers=TOKEN, content=body
    )
    assert v2_error(answer, 400, "invalid").endswith(" dropped=1")


def test_all_lines_bad_is_400_with_every_line(client: TestClient) -> None:
    answer = client.post("/write", params={"db": "x"}, headers=ADMIN, content=b"bad one\nbad two")
    message = v1_error(answer, 400)
    lines = message.split("\n")
    assert len(lines) == 2
    assert lines[0].startswith("unable to parse 'bad one': ")
    assert lines[1].startswith("unable to parse 'bad two': ")
    answer = client.post("/api/v2/write", params={"bucket": "x"}, headers=TOKEN, content=b"bad")
    assert v2_error(answer, 400, "invalid").startswith("unable to parse 'bad': ")


def test_empty_body_is_204(client: TestClient) -> None:
    for body in (b"", b"\n", gzip.compress(b"")):
        headers = {**ADMIN, "Content-Encoding": "gzip"} if body.startswith(b"\x1f") else ADMIN
        answer = client.post(
            "/write", params={"db": "home_assistant"}, headers=headers, content=body
        )
        assert answer.status_code == 204, answer.text
    answer = client.post("/api/v2/write", params={"bucket": "b", "org": "o"}, headers=TOKEN)
    assert answer.status_code == 204, answer.text


def test_gzip_bodies_are_inflated(client: TestClient) -> None:
    lines = "\n".join(f"zipped,device=z v={i} {now_s() - 100 + i}" for i in range(50))
    answer = client.post(
        "/write",
        params={"db": "x", "precision": "s"},
        headers={**ADMIN, "Content-Encoding": "gzip"},
        content=gzip.compress(lines.encode()),
    )
    assert answer.status_code == 204, answer.text
    assert len(read(client, series_of(client, "z")["zipped_v"]["id"])["value"]) == 50
    broken = client.post(
        "/write",
        params={"db": "x"},
        headers={**ADMIN, "Content-Encoding": "gzip"},
        content=b"not gzip at all",
    )
    assert v1_error(broken, 400).startswith("unable to decode gzip body")


def test_bodies_over_the_limit_are_413(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, max_body_bytes=64 * 1024)
    with TestClient(create_app(settings)) as client:
        big = b"m v=1\n" * 20_000  # 120 kB
        answer = client.post("/write", params={"db": "x"}, headers=ADMIN, content=big)
        assert v1_error(answer, 413) == "Request Entity Too Large"
        # 120 kB inflated from ~0.3 kB: refused while inflating
        bomb = gzip.compress(big)
        assert len(bomb) < 64 * 1024
        zipped = {**ADMIN, "Content-Encoding": "gzip"}
        answer = client.post("/write", params={"db": "x"}, headers=zipped, content=bomb)
        assert v1_error(answer, 413) == "Request Entity Too Large"
        answer = client.post("/api/v2/write", params={"bucket": "x"}, headers=TOKEN, content=big)
        v2_error(answer, 413, "request too large")


@pytest.mark.parametrize(
    ("precision", "factor_us"),
    [
        ("n", None),
        ("ns", None),
        ("u", 1),
        ("us", 1),
        ("ms", 1_000),
        ("s", 1_000_000),
        ("m", 60_000_000),
        ("h", 3_600_000_000),
    ],
)
def test_v1_precisions(client: TestClient, precision: str, factor_us: int | None) -> None:
    ns = time.time_ns()
    if factor_us is None:
        stamp, expected_us = ns, ns // 1000
    else:
        stamp = ns // 1000 // factor_us
        expected_us = stamp * factor_us
    answer = client.post(
        "/write",
        params={"db": "x", "precision": precision},
        headers=ADMIN,
        content=f"prec,device=p-{precision} v=1 {stamp}",
    )
    assert answer.status_code == 204, answer.text
    sid = series_of(client, f"p-{precision}")["prec_v"]["id"]
    stored = client.get(
        f"/v1/series/{sid}/points",
        params={"from": "now-2h", "to": "now+1h"},
        headers=ADMIN,
    ).json()["t"]
    assert len(stored) == 1
    assert rfc3339_to_us(stored[0]) == expected_us


def test_v2_precisions_and_unknown_precisions(client: TestClient) -> None:
    divisors = {"ns": 1, "us": 1000, "ms": 10**6, "s": 10**9}
    for precision, divisor in divisors.items():
        answer = client.post(
            "/api/v2/write",
            params={"bucket": "x", "precision": precision},
            headers=TOKEN,
            content=f"m,device=v2 v=1 {time.time_ns() // divisor}",
        )
        assert answer.status_code == 204, (precision, answer.text)
    answer = client.post(
        "/write", params={"db": "x", "precision": "d"}, headers=ADMIN, content=b"m v=1"
    )
    assert "invalid precision 'd'" in v1_error(answer, 400)
    answer = client.post(
        "/api/v2/write", params={"bucket": "x", "precision": "h"}, headers=TOKEN, content=b"m v=1"
    )
    assert "invalid precision 'h'" in v2_error(answer, 400, "invalid")


def test_type_changes_across_requests_never_fail(client: TestClient) -> None:
    ts = now_s()
    for offset, value in enumerate(("1i", "2.5", '"on"', "3i")):
        answer = client.post(
            "/write",
            params={"db": "x", "precision": "s"},
            headers=ADMIN,
            content=f"flip,device=t v={value} {ts - 10 + offset}",
        )
        assert answer.status_code == 204, (value, answer.text)
    found = series_of(client, "t")["flip_v"]
    assert read(client, found["id"])["value"] == [1.0, 2.5, 3.0]
    assert read(client, found["id"], "states")["text"] == ["on"]


def test_backpressure_is_429_or_503_with_retry_after(
    client: TestClient, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pipeline's refusals (a full writer queue cannot be produced on demand here)."""
    for exc, status, code in (
        (Overloaded("the writer queue is full", retry_after=2.0), 429, "too many requests"),
        (Unavailable("the store is not writable", retry_after=7.0), 503, "unavailable"),
    ):

        async def refuse(*args: object, exc: Exception = exc, **kwargs: object) -> None:
            raise exc

        monkeypatch.setattr(services.pipeline, "ingest", refuse)
        answer = client.post("/write", params={"db": "x"}, headers=ADMIN, content=b"m v=1")
        assert v1_error(answer, status) == str(exc)
        assert answer.headers["retry-after"] == str(round(exc.retry_after))  # type: ignore[attr-defined]
        answer = client.post(
            "/api/v2/write", params={"bucket": "x"}, headers=TOKEN, content=b"m v=1"
        )
        v2_error(answer, status, code)
        assert answer.headers["retry-after"]


def test_ingest_counters_count_influx(client: TestClient) -> None:
    ts = now_s()
    body = f"c,device=m v=1 {ts}\nbad\n"
    client.post("/write", params={"db": "x", "precision": "s"}, headers=ADMIN, content=body)
    metrics = client.get("/metrics").text
    assert 'stats_ingest_points_total{protocol="influx",tenant="default"} 1.0' in metrics
    assert (
        'stats_ingest_rejected_total{protocol="influx",reason="partial",tenant="default"} 1.0'
        in metrics
    )
    assert 'stats_ingest_rejected_points_total{protocol="influx",tenant="default"} 1.0' in metrics


# -- queries ---------------------------------------------------------------------------


def query(client: TestClient, q: str, headers: dict[str, str] = ADMIN, **params: str) -> Any:
    answer = client.get("/query", params={"q": q, **params}, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()["results"]


def test_show_databases_lists_the_recorded_names(client: TestClient) -> None:
    assert query(client, "SHOW DATABASES") == [
        {"statement_id": 0, "series": [{"name": "databases", "columns": ["name"]}]}
    ]
    for db in ("home_assistant", "telegraf"):
        client.post("/write", params={"db": db}, headers=ADMIN, content=b"")
    client.post("/api/v2/write", params={"bucket": "bucket/autogen"}, headers=TOKEN, content=b"")
    results = query(client, "SHOW DATABASES;")  # Home Assistant's test query
    assert results[0]["series"][0]["values"] == [["bucket"], ["home_assistant"], ["telegraf"]]


def test_show_measurements_and_retention_policies(client: TestClient) -> None:
    client.post(
        "/write",
        params={"db": "x", "precision": "s"},
        headers=ADMIN,
        content=f"cpu,host=h1 usage=1,idle=99 {now_s()}",
    )
    results = query(client, "SHOW MEASUREMENTS; SHOW RETENTION POLICIES ON x", db="x")
    assert results[0]["series"] == [
        {"name": "measurements", "columns": ["name"], "values": [["cpu_idle"], ["cpu_usage"]]}
    ]
    policy = results[1]["series"][0]
    assert policy["columns"] == ["name", "duration", "shardGroupDuration", "replicaN", "default"]
    assert policy["values"][0][0] == "autogen" and policy["values"][0][4] is True
    assert query(client, "SHOW RETENTION POLICIES") == [
        {"statement_id": 0, "error": "database name required"}
    ]
    assert query(client, "SHOW RETENTION POLICIES ON nope") == [
        {"statement_id": 0, "error": "database not found: nope"}
    ]


def test_create_database_and_unsupported_statements(client: TestClient) -> None:
    answer = client.post(
        "/query", data={"q": 'CREATE DATABASE "tele graf" WITH DURATION 7d'}, headers=ADMIN
    )
    assert answer.status_code == 200 and answer.json() == {"results": [{"statement_id": 0}]}
    assert query(client, "SHOW DATABASES")[0]["series"][0]["values"] == [["tele graf"]]
    results = query(client, "SHOW DATABASES; SELECT mean(value) FROM cpu; SHOW DATABASES")
    assert len(results) == 2  # InfluxDB stops at the first failing statement
    assert results[1]["statement_id"] == 1
    assert "not supported" in results[1]["error"]
    assert "StatisticsService answers only SHOW DATABASES" in results[1]["error"]
    assert v1_error(client.get("/query", headers=ADMIN), 400) == 'missing required parameter "q"'


def test_query_permissions(client: TestClient) -> None:
    ingest, reader = new_key(client, "ingest"), new_key(client, "read")
    assert query(client, "SHOW DATABASES", ingest)[0]["statement_id"] == 0
    assert query(client, "SHOW MEASUREMENTS", reader) == [{"statement_id": 0}]
    answer = client.get("/query", params={"q": "SHOW MEASUREMENTS"}, headers=ingest)
    assert "SHOW MEASUREMENTS needs a read or admin key" in v1_error(answer, 403)
    answer = client.get("/query", params={"q": "CREATE DATABASE x"}, headers=reader)
    v1_error(answer, 403)


def test_v2_buckets_query(client: TestClient) -> None:
    client.post("/api/v2/write", params={"bucket": "home", "org": "o"}, headers=TOKEN, content=b"")
    answer = client.post(
        "/api/v2/query",
        params={"org": "o"},
        headers=TOKEN,
        json={"query": "buckets()", "type": "flux"},
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    lines = answer.text.split("\r\n")
    assert lines[3] == ",result,table,name,id,organizationID,retentionPolicy,retentionPeriod"
    assert lines[4].startswith(",,0,home,")
    raw = client.post(
        "/api/v2/query",
        headers={**TOKEN, "Content-Type": "application/vnd.flux"},
        content=b"buckets()",
    )
    assert raw.text == answer.text
    other = client.post("/api/v2/query", headers=TOKEN, json={"query": 'from(bucket:"home")'})
    assert "StatisticsService answers only the Flux query buckets()" in v2_error(
        other, 400, "invalid"
    )
    v2_error(client.post("/api/v2/query", json={"query": "buckets()"}), 401, "unauthorized")


# -- tenants ---------------------------------------------------------------------------


def test_tenants_are_isolated(client: TestClient) -> None:
    ts = now_s()
    a_write = client.post(
        "/write",
        params={"db": "a_secret_db", "precision": "s"},
        headers=ADMIN,
        content=f"a_secret_measurement,device=a-dev v=1 {ts}",
    )
    assert a_write.status_code == 204, a_write.text
    new_tenant(client, "other")
    b = new_key(client, "admin", "other")
    b_write = client.post(
        "/write",
        params={"db": "x", "precision": "s"},
        headers=b,
        content=f"b_measurement,device=b-dev v=2 {ts}",
    )
    assert b_write.status_code == 204, b_write.text

    assert "b_measurement_v" in series_of(client, "b-dev", b)
    assert series_of(client, "b-dev") == {}  # not in A
    assert series_of(client, "a-dev", b) == {}
    results = query(
        client, "SHOW DATABASES; SHOW MEASUREMENTS; SHOW RETENTION POLICIES ON a_secret_db", b
    )
    assert results[0]["series"][0]["values"] == [["x"]]
    assert results[1]["series"][0]["values"] == [["b_measurement_v"]]
    assert results[2] == {"statement_id": 2, "error": "database not found: a_secret_db"}
    buckets = client.post(
        "/api/v2/query",
        headers={"Authorization": f"Token {b['X-API-Key']}"},
        json={"query": "buckets()"},
    ).text
    assert "a_secret" not in buckets and ",x," in buckets
    # B writing to A's database name lands in B
    again = client.post(
        "/write",
        params={"db": "a_secret_db", "precision": "s"},
        headers=b,
        content=f"b_measurement,device=b-dev v=3 {ts + 1}",
    )
    assert again.status_code == 204
    assert read(client, series_of(client, "a-dev")["a_secret_measurement_v"]["id"])["value"] == [
        1.0
    ]


def test_odd_input_gets_a_clear_answer_never_a_500(client: TestClient) -> None:
    answer = client.post("/write", params={"db": "x" * 300}, headers=ADMIN, content=b"m v=1")
    assert "invalid database name" in v1_error(answer, 400)
    answer = client.post("/api/v2/write", params={"bucket": "a\tb"}, headers=TOKEN, content=b"")
    assert "invalid bucket name" in v2_error(answer, 400, "invalid")
    created = query(client, f'CREATE DATABASE "{"y" * 300}"')
    assert "invalid database name" in created[0]["error"]
    for authorization in ("Basic ***not base64***", "Basic " + "w7w=", "Token ", "Basic"):
        answer = client.post(
            "/write", params={"db": "x"}, headers={"Authorization": authorization}, content=b""
        )
        assert v1_error(answer, 401) == "authorization failed"
    answer = client.post(
        "/write", params={"db": "x"}, headers={**ADMIN, "Content-Encoding": "br"}, content=b"m"
    )
    assert "unsupported Content-Encoding 'br'" in v1_error(answer, 400)
    for body in (b"[1]", b"{", b'{"query": 3}'):
        answer = client.post("/api/v2/query", headers=TOKEN, content=body)
        assert "failed to decode request body" in v2_error(answer, 400, "invalid")
    answer = client.post(
        "/query",
        headers={**ADMIN, "Content-Type": "application/x-www-form-urlencoded"},
        content=b"q=%FF%FE",
    )
    assert "not supported" in answer.json()["results"][0]["error"]


def test_retention_policy_and_org_parameters_are_accepted_and_ignored(client: TestClient) -> None:
    line = f"rp,device=rp v=1 {now_s()}"
    answer = client.post(
        "/write",
        params={"db": "x", "rp": "two_weeks", "precision": "s"},
        headers=ADMIN,
        content=line,
    )
    assert answer.status_code == 204, answer.text
    answer = client.post(
        "/api/v2/write",
        params={"bucket": "x/autogen", "orgID": "0123456789abcdef", "precision": "s"},
        headers=TOKEN,
        content=line,
    )
    assert answer.status_code == 204, answer.text
    assert query(client, "SHOW DATABASES")[0]["series"][0]["values"] == [["x"]]
    assert len(read(client, series_of(client, "rp")["rp_v"]["id"])["value"]) == 1


def test_telegraf_shaped_requests(client: TestClient) -> None:
    """What Telegraf's outputs.influxdb sends: CREATE DATABASE as a form, gzip writes."""
    key = new_key(client, "ingest")["X-API-Key"]
    created = client.post(
        "/query",
        headers={"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "Telegraf"},
        auth=("telegraf", key),
        content=b"q=CREATE+DATABASE+%22telegraf%22",
    )
    assert created.status_code == 200 and created.json() == {"results": [{"statement_id": 0}]}
    metrics = "\n".join(
        f"cpu,cpu=cpu-total,host=server01 usage_idle=9{i}.5,usage_user=1.25 {time.time_ns() - i}"
        for i in range(5)
    )
    answer = client.post(
        "/write",
        params={"db": "telegraf", "rp": "", "consistency": "any"},
        headers={"Content-Type": "text/plain; charset=utf-8", "Content-Encoding": "gzip"},
        auth=("telegraf", key),
        content=gzip.compress(metrics.encode()),
    )
    assert answer.status_code == 204, answer.text
    found = series_of(client, "server01")
    assert set(found) == {"cpu_usage_idle", "cpu_usage_user"}
    assert found["cpu_usage_idle"]["tags"] == {"cpu": "cpu-total", "device": "server01"}
