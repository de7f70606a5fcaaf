"""The InfluxDB client libraries Home Assistant uses, over real HTTP, against `serve`.

`influxdb` (1.x API) and `influxdb-client` (2.x API) are driven exactly as Home
Assistant's InfluxDB integration drives them: its connection test (an empty write, then
`SHOW DATABASES;` or `buckets()`), then its state-change payloads; what they wrote is read
back through the native API.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from influxdb import InfluxDBClient
from influxdb.exceptions import InfluxDBClientError
from influxdb_client import InfluxDBClient as InfluxDBClientV2
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException

from .conftest import ServerFactory
from .harness import ADMIN, ADMIN_KEY, ServerProcess

pytestmark = [pytest.mark.e2e]
DEVICE = "sensor.living_room_temperature"


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(Path(tmp_path_factory.mktemp("influx")) / "data")
    try:
        yield server.start()
    finally:
        server.close()


def host_port(server: ServerProcess) -> tuple[str, int]:
    parts = urlsplit(server.url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


def ha_event(entity: str = "living_room_temperature", value: float = 21.5) -> dict[str, Any]:
    """One state change as Home Assistant's `event_to_json` shapes it (measurement = unit)."""
    return {
        "measurement": "°C",
        "tags": {"domain": "sensor", "entity_id": entity},
        "time": datetime.now(UTC),
        "fields": {
            "value": value,
            "state": str(value),
            "friendly_name_str": "Living room",
            "device_class_str": "temperature",
        },
    }


def new_key(server: ServerProcess, role: str, tenant: str = "default") -> str:
    with server.client() as client:
        made = client.post("/v1/admin/keys", json={"tenant": tenant, "role": role})
    assert made.status_code == 201, made.text
    return str(made.json()["key"])


def read_entity(server: ServerProcess, device: str = DEVICE) -> dict[str, Any]:
    """metric -> (series, numbers, texts) of the entity, through the native read API."""
    out: dict[str, Any] = {}
    with server.client() as client:
        listing = client.get("/v1/series", params={"device": device})
        assert listing.status_code == 200, listing.text
        for series in listing.json()["items"]:
            span = {"from": "now-1h", "to": "now+1h"}
            points = client.get(f"/v1/series/{series['id']}/points", params=span).json()
            states = client.get(f"/v1/series/{series['id']}/states", params=span).json()
            out[series["metric"]] = (series, points["value"], states["text"])
    return out


def assert_entity(found: dict[str, Any], value: float) -> None:
    series, numbers, _ = found["value"]
    assert series["unit"] == "°C" and series["device"] == DEVICE
    assert value in numbers
    assert str(value) in found["state"][2]
    assert found["friendly_name_str"][2][-1] == "Living room"
    assert found["device_class_str"][2][-1] == "temperature"


def test_home_assistant_v1_client(shared_server: ServerProcess) -> None:
    host, port = host_port(shared_server)
    key = new_key(shared_server, "ingest")
    influx = InfluxDBClient(host, port, "homeassistant", key, database="home_assistant", timeout=10)
    try:
        assert influx.ping() == "1.8.10"
        assert influx.write_points([]) is True  # Home Assistant's connection test
        assert {"name": "home_assistant"} in list(influx.query("SHOW DATABASES;").get_points())
        assert influx.write_points([ha_event(value=21.5)]) is True
    finally:
        influx.close()
    zipped = InfluxDBClient(host, port, "homeassistant", key, database="home_assistant", gzip=True)
    try:
        assert zipped.write_points([ha_event(value=22.0)], time_precision="ms") is True
    finally:
        zipped.close()
    found = read_entity(shared_server)
    assert_entity(found, 21.5)
    assert found["value"][1] == [21.5, 22.0]


def test_v1_client_errors(shared_server: ServerProcess) -> None:
    host, port = host_port(shared_server)
    anonymous = InfluxDBClient(host, port, database="anon_db")  # root:root, the default
    reader = InfluxDBClient(host, port, "x", new_key(shared_server, "read"), database="d")
    admin = InfluxDBClient(host, port, "admin", ADMIN_KEY, database="d")
    try:
        with pytest.raises(InfluxDBClientError) as refused:
            anonymous.write_points([ha_event()])
        assert refused.value.code == 401 and "authorization failed" in str(refused.value)
        with pytest.raises(InfluxDBClientError) as forbidden:
            reader.write_points([ha_event()])
        assert forbidden.value.code == 403
        with pytest.raises(InfluxDBClientError) as partial:
            admin.write_points(["good,device=e2e v=1", "bad line"], protocol="line")
        assert partial.value.code == 400
        assert "partial write: unable to parse 'bad line'" in str(partial.value)
        assert "dropped=1" in str(partial.value)
        admin.create_database("made_by_client")
        names = [d["name"] for d in admin.get_list_database()]
        assert "made_by_client" in names
    finally:
        for client in (anonymous, reader, admin):
            client.close()


def test_v1_client_anonymous_and_unknown_database(server_factory: ServerFactory) -> None:
    server = server_factory(env={"STATS_INFLUX_AUTO_CREATE": "false"}).start()
    host, port = host_port(server)
    with server.client() as client:
        on = client.patch("/v1/admin/tenants/default", json={"anonymous_write": True})
        assert on.status_code == 200, on.text
    anonymous = InfluxDBClient(host, port, database="home_assistant")  # root:root
    try:
        with pytest.raises(InfluxDBClientError) as missing:
            anonymous.write_points([])
        assert missing.value.code == 404
        assert str(missing.value) == '404: {"error":"database not found: \\"home_assistant\\""}'
        with server.client() as client:
            created = client.post("/query", data={"q": "CREATE DATABASE home_assistant"})
            assert created.json() == {"results": [{"statement_id": 0}]}
        assert anonymous.write_points([]) is True
        assert anonymous.write_points([ha_event(value=19.5)]) is True
    finally:
        anonymous.close()
    assert_entity(read_entity(server), 19.5)
    v2 = InfluxDBClientV2(url=server.url, token=ADMIN_KEY, org="home")
    try:
        with pytest.raises(ApiException) as bucket:
            v2.write_api(write_options=SYNCHRONOUS).write("nope", record="m v=1")
        assert bucket.value.status == 404
        assert 'bucket \\"nope\\" not found' in str(bucket.value.body)
    finally:
        v2.close()


def test_home_assistant_v2_client(shared_server: ServerProcess) -> None:
    key = new_key(shared_server, "ingest")
    reader = new_key(shared_server, "read")
    influx = InfluxDBClientV2(
        url=shared_server.url, token=key, org="home", timeout=10_000, enable_gzip=True
    )
    try:
        assert influx.ping() is True
        assert influx.version() == "1.8.10"
        write_api = influx.write_api(write_options=SYNCHRONOUS)
        write_api.write(bucket="ha_bucket", record=b"")  # Home Assistant's connection test
        entity = "kitchen_temperature"
        write_api.write(bucket="ha_bucket", record=ha_event(entity, 23.25), write_precision="ms")
    finally:
        influx.close()
    with InfluxDBClientV2(url=shared_server.url, token=reader, org="home") as influx:
        tables = influx.query_api().query("buckets()")
        assert "ha_bucket" in [record.values["name"] for record in tables[0].records]
    series = read_entity(shared_server, "sensor.kitchen_temperature")
    assert series["value"][0]["unit"] == "°C" and series["value"][1] == [23.25]
    wrong = InfluxDBClientV2(url=shared_server.url, token="wrong", org="home")
    with wrong, pytest.raises(ApiException) as refused:
        wrong.write_api(write_options=SYNCHRONOUS).write("ha_bucket", record="m v=1")
    assert refused.value.status == 401


def test_ping_and_health_over_http(shared_server: ServerProcess) -> None:
    ping = httpx.head(f"{shared_server.url}/ping", timeout=10)
    assert ping.status_code == 204 and ping.headers["X-Influxdb-Version"] == "1.8.10"
    health = httpx.get(f"{shared_server.url}/health", timeout=10)
    assert health.json()["status"] == "pass"
    with httpx.Client(base_url=shared_server.url, headers=ADMIN) as client:
        assert client.get("/metrics").status_code == 200
