"""The MQTT subscriber of the real app against the real Mosquitto on 127.0.0.1:1883 (and a
private Mosquitto for the broker restart): messages published with paho, read back
through the read API.

Every test works under its own random topic prefix, so retained messages and other
tests' traffic never meet; retained messages a test publishes are cleared again.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import orjson
import paho.mqtt.client as paho
import pytest
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion

from conftest import ADMIN_KEY, make_settings
from stats_service.app import create_app
from stats_service.ingest.replay import archived
from stats_service.services import Services

ADMIN = {"X-API-Key": ADMIN_KEY}
HOST, PORT = "127.0.0.1", 1883
MOSQUITTO = "/usr/sbin/mosquitto"
T = TypeVar("T")


def _broker_up(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(autouse=True)
def _needs_mosquitto() -> None:
    if not _broker_up(PORT):
        pytest.fail(
            "Mosquitto is not listening on 127.0.0.1:1883: start it (scripts/services.sh "
            "does in CI; locally `apt-get install mosquitto` and start the service)"
        )


def poll(check: Callable[[], T | None], what: str, deadline_s: float = 10.0) -> T:
    end = time.monotonic() + deadline_s
    while True:
        found = check()
        if found is not None:
            return found
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def toml_config(path: Path, brokers: list[dict[str, Any]]) -> Path:
    """A TOML config file (written by hand: values are strings, numbers, lists, tables)."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v)
        if isinstance(v, str):
            return orjson.dumps(v).decode()
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return (
                "{"
                + ", ".join(f"{orjson.dumps(k).decode()} = {value(x)}" for k, x in v.items())
                + "}"
            )
        raise TypeError(v)

    lines: list[str] = []
    for broker in brokers:
        lines.append("[[brokers]]")
        rules = broker.pop("rules", [])
        lines.extend(f"{k} = {value(v)}" for k, v in broker.items())
        for rule in rules:
            lines.append("[[brokers.rules]]")
            lines.extend(f"{k} = {value(v)}" for k, v in rule.items())
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def broker_config(prefix: str, port: int = PORT, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "name": "test",
        "url": f"mqtt://{HOST}:{port}",
        "prefix": prefix,
        "presets": [
            "stats",
            "tasmota",
            "esphome",
            "homeassistant_statestream",
            "homeassistant_discovery",
            "thingsboard",
        ],
        "linger_ms": 20,
        "reconnect_min_s": 0.05,
        "reconnect_max_s": 0.5,
        "client_id": f"stats-test-{uuid.uuid4().hex[:12]}",
        "session_expiry_s": 300,  # the shared broker forgets the test sessions soon
    }
    config.update(extra)
    return config


@contextmanager
def mqtt_app(tmp_path: Path, *brokers: dict[str, Any]) -> Iterator[TestClient]:
    config = toml_config(tmp_path / "mqtt.toml", [dict(b) for b in brokers])
    settings = make_settings(tmp_path, mqtt_config=config)
    with TestClient(create_app(settings)) as client:
        for broker in brokers:
            wait_connected(client, broker["name"])
        yield client


def services_of(client: TestClient) -> Services:
    services: Services = client.app.state.services  # type: ignore[attr-defined]
    return services


def sample(client: TestClient, name: str, labels: dict[str, str]) -> float:
    value = services_of(client).metrics.registry.get_sample_value(name, labels)
    return float(value or 0.0)


def wait_connected(client: TestClient, broker: str, deadline_s: float = 10.0) -> None:
    """Connected and subscribed (the gauge turns 1 on the SUBACK)."""
    poll(
        lambda: True if sample(client, "stats_mqtt_connected", {"broker": broker}) == 1 else None,
        f"broker {broker} connected",
        deadline_s,
    )


def count(client: TestClient, outcome: str, broker: str = "test") -> float:
    return sample(client, "stats_mqtt_messages_total", {"broker": broker, "outcome": outcome})


@contextmanager
def publisher(port: int = PORT, client_id: str = "", clean: bool = True) -> Iterator[paho.Client]:
    client = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=paho.MQTTv311,
        clean_session=clean,
    )
    client.connect(HOST, port, 30)
    client.loop_start()
    try:
        yield client
    finally:
        client.disconnect()
        client.loop_stop()


def publish(client: paho.Client, topic: str, payload: str | bytes, retain: bool = False) -> None:
    info = client.publish(topic, payload, qos=1, retain=retain)
    info.wait_for_publish(5)
    assert info.is_published(), f"publish to {topic} was not acknowledged"


def series_of(client: TestClient, device: str) -> dict[str, dict[str, Any]]:
    """metric -> series of one device."""
    answer = client.get("/v1/series", params={"device": device, "limit": 500}, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    return {s["metric"]: s for s in answer.json()["items"]}


def values_of(client: TestClient, series_id: str) -> list[float]:
    answer = client.get(
        f"/v1/series/{series_id}/points",
        params={"from": "2000-01-01T00:00:00Z", "to": "now+1h", "limit": 10000},
        headers=ADMIN,
    )
    assert answer.status_code == 200, answer.text
    return [float(v) for v in answer.json()["value"]]


def wait_series(
    client: TestClient, device: str, metrics: set[str], deadline_s: float = 10.0
) -> dict[str, dict[str, Any]]:
    def check() -> dict[str, dict[str, Any]] | None:
        found = series_of(client, device)
        ready = all(
            m in found
            and (found[m]["last_value"] is not None or found[m].get("last_state") is not None)
            for m in metrics
        )
        return found if ready else None

    return poll(check, f"{sorted(metrics)} of {device}", deadline_s)


def prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}/"


# -- presets ---------------------------------------------------------------------------


def test_stats_topics_plain_number_json_and_text(tmp_path: Path) -> None:
    p = prefix()
    with mqtt_app(tmp_path, broker_config(p)) as client, publisher() as pub:
        publish(pub, f"{p}stats/esp1/temperature", "21.5")
        publish(pub, f"{p}stats/esp1/humidity", '{"value": 48, "ts": 1714564800000, "unit": "%"}')
        publish(pub, f"{p}stats/esp1/mode", "heating")
        found = wait_series(client, "esp1", {"temperature", "humidity", "mode"})
        assert found["temperature"]["last_value"] == 21.5
        assert found["humidity"]["last_value"] == 48
        assert found["humidity"]["unit"] == "%"
        assert found["humidity"]["last_ts"].startswith("2024-05-01T12:00:00")
        assert found["mode"]["last_state"] == "heating"
        poll(lambda: True if count(client, "stored") >= 3 else None, "stored counter")


def test_tasmota_sensor_state_and_lwt(tmp_path: Path) -> None:
    p = prefix()
    sensor = {
        "Time": "2024-05-01T14:00:00",
        "ENERGY": {
            "TotalStartTime": "2024-01-01T00:00:00",
            "Total": 12.5,
            "Power": 45,
            "Voltage": 231,
            "Current": 0.21,
            "Factor": 0.93,
        },
        "AM2301": {"Temperature": 70.2, "Humidity": 45.1},
        "TempUnit": "F",
    }
    state = {
        "Time": "2024-05-01T14:00:00",
        "UptimeSec": 3723,
        "POWER": "ON",
        "Wifi": {"SSId": "home", "RSSI": 88, "Signal": -56},
    }
    with mqtt_app(tmp_path, broker_config(p)) as client, publisher() as pub:
        publish(pub, f"{p}tele/plug1/SENSOR", orjson.dumps(sensor))
        publish(pub, f"{p}tele/plug1/STATE", orjson.dumps(state))
        publish(pub, f"{p}tele/plug1/LWT", "Online")
        found = wait_series(
            client,
            "plug1",
            {"ENERGY.Power", "AM2301.Temperature", "UptimeSec", "POWER", "status", "Wifi.Signal"},
        )
    assert found["ENERGY.Power"]["last_value"] == 45
    assert found["ENERGY.Power"]["unit"] == "W"
    assert found["ENERGY.Total"]["unit"] == "kWh"
    assert found["ENERGY.Factor"]["unit"] is None
    assert found["AM2301.Temperature"]["unit"] == "°F"
    assert found["AM2301.Humidity"]["unit"] == "%"
    assert found["Wifi.Signal"]["unit"] == "dBm"
    assert found["POWER"]["last_state"] == "ON"
    assert found["status"]["last_state"] == "online"
    assert "Time" not in found and "ENERGY.TotalStartTime" not in found


def test_tasmota_time_zone_reads_local_time(tmp_path: Path) -> None:
    p = prefix()
    presets = [{"preset": "tasmota", "device_timezones": {"plug2": "Europe/Berlin"}}]
    with mqtt_app(tmp_path, broker_config(p, presets=presets)) as client, publisher() as pub:
        publish(pub, f"{p}tele/plug2/SENSOR", '{"Time":"2024-05-01T14:00:00","ENERGY":{"Power":7}}')
        found = wait_series(client, "plug2", {"ENERGY.Power"})
    assert found["ENERGY.Power"]["last_ts"].startswith("2024-05-01T12:00:00")  # CEST = UTC+2


def test_esphome_states(tmp_path: Path) -> None:
    p = prefix()
    with mqtt_app(tmp_path, broker_config(p)) as client, publisher() as pub:
        publish(pub, f"{p}livingroom/sensor/temperature/state", "22.40")
        publish(pub, f"{p}livingroom/binary_sensor/motion/state", "ON")
        publish(pub, f"{p}livingroom/status", "online")
        found = wait_series(client, "livingroom", {"temperature", "motion", "status"})
    assert found["temperature"]["last_value"] == pytest.approx(22.4)
    assert found["motion"]["last_state"] == "ON"
    assert found["status"]["last_state"] == "online"


def test_homeassistant_statestream(tmp_path: Path) -> None:
    p = prefix()
    with mqtt_app(tmp_path, broker_config(p)) as client, publisher() as pub:
        publish(pub, f"{p}homeassistant/sensor/outside_temp/state", "12.5")
        publish(pub, f"{p}homeassistant/sensor/outside_temp/friendly_name", '"Outside"')
        publish(pub, f"{p}homeassistant/climate/hall/state", "heat")
        publish(pub, f"{p}homeassistant/climate/hall/temperature", "20.5")
        outside = wait_series(client, "sensor.outside_temp", {"state", "friendly_name"})
        hall = wait_series(client, "climate.hall", {"state", "temperature"})
    assert outside["state"]["last_value"] == 12.5
    assert outside["friendly_name"]["last_state"] == "Outside"
    assert hall["state"]["last_state"] == "heat"
    assert hall["temperature"]["last_value"] == 20.5


def test_homeassistant_discovery_then_state(tmp_path: Path) -> None:
    p = prefix()
    config_topic = f"{p}homeassistant/sensor/node7/node7_temp/config"
    config = {
        "name": "Temperature",
        "stat_t": "~/state",
        "~": f"{p}zigbee/node7",
        "unit_of_meas": "°C",
        "dev_cla": "temperature",
        "val_tpl": "{{ value_json.temperature | float }}",
        "dev": {"name": "Node 7", "ids": ["abc123"]},
    }
    with publisher() as pub:
        publish(pub, config_topic, orjson.dumps(config), retain=True)
        try:
            with mqtt_app(tmp_path, broker_config(p)) as client:
                poll(lambda: True if count(client, "discovery") >= 1 else None, "discovery")
                publish(pub, f"{p}zigbee/node7/state", '{"temperature": 19.25, "battery": 90}')
                found = wait_series(client, "node7", {"Temperature"})
                assert found["Temperature"]["unit"] == "°C"
                assert found["Temperature"]["last_value"] == 19.25
                assert replayed(services_of(client)) == {("node7", "Temperature", 19.25)}
        finally:
            publish(pub, config_topic, b"", retain=True)


def test_learned_entities_survive_a_restart(tmp_path: Path) -> None:
    """Entities are kept in the data dir: a state message that waited in the session
    while the server was down arrives before the retained config comes again, and is
    still mapped with its name and unit."""
    p = prefix()
    config_topic = f"{p}homeassistant/sensor/node8/power/config"
    config = {
        "name": "Power",
        "state_topic": f"{p}plugs/node8",
        "unit_of_measurement": "W",
        "value_template": "{{ value_json.power }}",
    }
    broker = broker_config(p)
    with publisher() as pub:
        publish(pub, config_topic, orjson.dumps(config), retain=True)
        try:
            with mqtt_app(tmp_path, broker) as client:
                poll(lambda: True if count(client, "discovery") >= 1 else None, "discovery")
            assert (tmp_path / "data" / "mqtt" / "test-discovery.json").exists()
            publish(pub, f"{p}plugs/node8", '{"power": 12}')  # queued in the session
            with mqtt_app(tmp_path, broker) as client:
                found = wait_series(client, "node8", {"Power"})
                assert (found["Power"]["last_value"], found["Power"]["unit"]) == (12, "W")
                assert count(client, "unmatched") == 0
        finally:
            publish(pub, config_topic, b"", retain=True)


def test_environment_quick_start(tmp_path: Path) -> None:
    """STATS_MQTT_URL + STATS_MQTT_PRESETS, the client id derived from the data dir."""
    device = f"env{uuid.uuid4().hex[:8]}"
    settings = make_settings(tmp_path, mqtt_url=f"mqtt://{HOST}:{PORT}", mqtt_presets="stats")
    with TestClient(create_app(settings)) as client, publisher() as pub:
        wait_connected(client, "default")
        publish(pub, f"stats/{device}/temperature", "19.5")
        assert wait_series(client, device, {"temperature"})["temperature"]["last_value"] == 19.5


def replayed(services: Services) -> set[tuple[str | None, str, float]]:
    """(device, metric, value) of every archived MQTT bundle parsed again as `replay` does."""
    today = datetime.now(UTC).date()
    found = set()
    for envelope in archived(services.archive, today, today, "default"):
        assert envelope.protocol == "mqtt"
        batch = services.pipeline.parse(envelope, time.time_ns() // 1000)
        for sid, value in zip(batch.series_id, batch.value, strict=True):
            key = batch.series[int(sid)].key
            found.add((key.device, key.metric, float(value)))
    return found


def test_thingsboard_device_and_gateway_topics(tmp_path: Path) -> None:
    p = prefix()
    with mqtt_app(tmp_path, broker_config(p)) as client, publisher() as pub:
        publish(
            pub, f"{p}v1/devices/pump1/telemetry", '{"ts": 1714564800000, "values": {"rpm": 1450}}'
        )
        publish(pub, f"{p}v1/devices/pump1/telemetry", '[{"pressure": 2.5}, {"state": "running"}]')
        publish(
            pub,
            f"{p}v1/gateway/telemetry",
            '{"pump2": [{"ts": 1714564800000, "values": {"rpm": 900}}]}',
        )
        publish(pub, f"{p}v1/devices/me/telemetry", '{"rpm": 1}')
        pump1 = wait_series(client, "pump1", {"rpm", "pressure", "state"})
        pump2 = wait_series(client, "pump2", {"rpm"})
        poll(lambda: True if count(client, "invalid") >= 1 else None, "the `me` topic counted")
    assert pump1["rpm"]["last_value"] == 1450
    assert pump1["pressure"]["last_value"] == 2.5
    assert pump1["state"]["last_state"] == "running"
    assert pump2["rpm"]["last_value"] == 900


def test_configured_rule_with_templates_paths_and_time(tmp_path: Path) -> None:
    p = prefix()
    rule = {
        "topic": f"{p}sites/+/meters/+",
        "device": "{topic[-1]}",
        "metric": "energy.{key}",
        "value": "$.readings",
        "unit": "kWh",
        "tags": {"site": "{topic[2]}"},
        "time": "$.at",
        "time_format": "s",
    }
    broker = broker_config(p, presets=[], rules=[rule])
    with mqtt_app(tmp_path, broker) as client, publisher() as pub:
        publish(
            pub,
            f"{p}sites/berlin/meters/m1",
            '{"at": 1714564800, "readings": {"import": 5.5, "export": 1.25}}',
        )
        found = wait_series(client, "m1", {"energy.import", "energy.export"})
    assert found["energy.import"]["tags"] == {"device": "m1", "site": "berlin"}
    assert found["energy.import"]["unit"] == "kWh"
    assert found["energy.export"]["last_value"] == 1.25
    assert found["energy.import"]["last_ts"].startswith("2024-05-01T12:00:00")


def test_bad_and_unmatched_messages_are_counted_not_lost(tmp_path: Path) -> None:
    p = prefix()
    old_rule = {"topic": f"{p}old/+", "device": "{topic[2]}", "metric": "x"}
    rule = {"topic": f"{p}extra/+", "device": "{topic[2]}", "metric": "x", "type": "number"}
    with mqtt_app(tmp_path, broker_config(p, rules=[old_rule], client_id=f"stats-{p[:-1]}")):
        pass  # leaves the subscription `old/+` in the broker's session
    broker = broker_config(p, rules=[rule], client_id=f"stats-{p[:-1]}")
    with mqtt_app(tmp_path, broker) as client, publisher() as pub:
        publish(pub, f"{p}tele/plug3/SENSOR", "not json")  # invalid
        publish(pub, f"{p}stats/bad device/t", "1")  # invalid: device name
        publish(pub, f"{p}livingroom/sensor/t/state", "nan")  # invalid: not a number
        publish(pub, f"{p}extra/d9", "abc")  # invalid: the rule wants a number
        publish(pub, f"{p}old/d8", "5")  # unmatched: no rule takes it any more
        publish(pub, f"{p}stats/ok1/t", "1")
        wait_series(client, "ok1", {"t"})
        poll(lambda: True if count(client, "invalid") >= 4 else None, "4 invalid messages")
        poll(lambda: True if count(client, "unmatched") >= 1 else None, "1 unmatched message")
        assert count(client, "invalid") == 4
        assert count(client, "unmatched") == 1
        assert count(client, "stored") == 1
        rejected = sample(
            client, "stats_ingest_rejected_points_total", {"protocol": "mqtt", "tenant": "default"}
        )
        assert rejected == 4


# -- delivery guarantees ---------------------------------------------------------------


def test_messages_published_while_stopped_arrive_after_restart(tmp_path: Path) -> None:
    p = prefix()
    broker = broker_config(p)
    with mqtt_app(tmp_path, broker):
        pass  # the persistent session now exists on the broker
    with publisher() as pub:
        for i in range(50):
            publish(
                pub, f"{p}stats/offline1/n", orjson.dumps({"value": i, "ts": 1714564800000 + i})
            )
    with mqtt_app(tmp_path, broker) as client:
        sid = wait_series(client, "offline1", {"n"})["n"]["id"]
        values = poll(
            lambda: v if len(v := values_of(client, sid)) >= 50 else None, "50 offline messages"
        )
    assert values == [float(i) for i in range(50)]


def test_backpressure_is_retried_until_the_store_takes_the_bundle(tmp_path: Path) -> None:
    """While the pipeline answers Unavailable the bundle is kept and retried (not acked,
    not dropped); once the store takes writes again every message is stored."""
    from stats_service.errors import Unavailable

    p = prefix()
    broker = broker_config(p)
    with mqtt_app(tmp_path, broker) as client:
        services = services_of(client)
        original = services.pipeline.ingest
        calls = 0

        async def refuse(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            raise Unavailable("store down (test)", retry_after=0.1)

        services.pipeline.ingest = refuse  # type: ignore[method-assign]
        with publisher() as pub:
            for i in range(5):
                publish(
                    pub, f"{p}stats/held1/n", orjson.dumps({"value": i, "ts": 1714564800000 + i})
                )
        poll(lambda: True if calls >= 2 else None, "ingest retried under backpressure")
        services.pipeline.ingest = original  # type: ignore[method-assign]
        # the retry now succeeds, then the acks go out
        sid = wait_series(client, "held1", {"n"})["n"]["id"]
        poll(lambda: v if len(v := values_of(client, sid)) == 5 else None, "5 messages")


def test_stop_while_the_store_refuses_leaves_messages_to_the_next_session(
    tmp_path: Path,
) -> None:
    """Messages received but never committed are not acknowledged: after a restart of
    the app (same data dir, same client id) the broker delivers them again."""
    from stats_service.errors import Overloaded

    p = prefix()
    broker = broker_config(p)
    with mqtt_app(tmp_path, broker) as client:
        calls = 0

        async def refuse(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            raise Overloaded("queue full (test)", retry_after=0.05)

        services_of(client).pipeline.ingest = refuse  # type: ignore[method-assign]
        with publisher() as pub:
            for i in range(5):
                publish(
                    pub, f"{p}stats/held2/n", orjson.dumps({"value": i, "ts": 1714564800000 + i})
                )
        poll(lambda: True if calls >= 1 else None, "a refused bundle")
    with mqtt_app(tmp_path, broker) as client:
        sid = wait_series(client, "held2", {"n"})["n"]["id"]
        values = poll(lambda: v if len(v := values_of(client, sid)) >= 5 else None, "5 messages")
    assert values == [0.0, 1.0, 2.0, 3.0, 4.0]


@dataclass
class PrivateBroker:
    """A private Mosquitto with persistence on a free port, to stop and start at will."""

    conf: Path
    port: int
    procs: list[subprocess.Popen[bytes]]

    def start(self) -> None:
        self.procs.append(
            subprocess.Popen(
                [MOSQUITTO, "-c", str(self.conf)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        poll(lambda: True if _broker_up(self.port) else None, "private mosquitto", 10)

    def stop(self) -> None:
        proc = self.procs[-1]
        proc.terminate()  # SIGTERM: Mosquitto writes its persistence file on the way out
        proc.wait(10)


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    if not os.path.exists(MOSQUITTO):
        if os.environ.get("CI") == "true":
            pytest.fail(f"{MOSQUITTO} is missing: install the mosquitto package")
        pytest.skip(f"{MOSQUITTO} is not installed (Debian package mosquitto)")
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port = int(probe.getsockname()[1])
    store = tmp_path / "mosquitto"
    store.mkdir()
    conf = store / "mosquitto.conf"
    conf.write_text(
        # `user`: run as root, Mosquitto would switch to `mosquitto`, which may not write here
        f"listener {port} 127.0.0.1\nuser {getpass.getuser()}\nallow_anonymous true\n"
        "persistence true\nmax_queued_messages 100000\n"
        f"persistence_location {store}/\nlog_dest file {store}/mosquitto.log\n"
    )
    broker = PrivateBroker(conf, port, [])
    broker.start()
    try:
        yield broker
    finally:
        for proc in broker.procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(10)


def _need_programs(*names: str) -> None:
    for name in names:
        if shutil.which(name) is None and not os.path.exists(name):
            if os.environ.get("CI") == "true":
                pytest.fail(f"{name} is missing: install its Debian package")
            pytest.skip(f"{name} is not installed")


def _tls_files(root: Path) -> None:
    """A CA and a server certificate for 127.0.0.1 (EC keys: quick to make)."""
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=root, check=True, capture_output=True)

    openssl(
        "req",
        "-x509",
        *key,
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=stats test CA",
    )
    openssl("req", *key, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (root / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    )


def test_tls_with_user_name_and_password(tmp_path: Path) -> None:
    _need_programs(MOSQUITTO, "mosquitto_passwd", "openssl")
    root = tmp_path / "tls"
    root.mkdir()
    _tls_files(root)
    subprocess.run(
        ["mosquitto_passwd", "-b", "-c", str(root / "passwords"), "stats", "s@cret"],
        check=True,
        capture_output=True,
    )
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port = int(probe.getsockname()[1])
    conf = root / "mosquitto.conf"
    conf.write_text(
        f"user {getpass.getuser()}\nlistener {port} 127.0.0.1\ncafile {root}/ca.crt\n"
        f"certfile {root}/server.crt\nkeyfile {root}/server.key\nallow_anonymous false\n"
        f"password_file {root}/passwords\nlog_dest none\n"
    )
    broker = PrivateBroker(conf, port, [])
    broker.start()
    try:
        p = prefix()
        config = broker_config(p, port=port, ca_file=str(root / "ca.crt"))
        config["url"] = f"mqtts://stats:s%40cret@{HOST}:{port}"
        with mqtt_app(tmp_path, config) as client:
            pub = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2)
            pub.tls_set(ca_certs=str(root / "ca.crt"))
            pub.username_pw_set("stats", "s@cret")
            pub.connect(HOST, port, 30)
            pub.loop_start()
            try:
                publish(pub, f"{p}stats/secure1/t", "7.5")
            finally:
                pub.disconnect()
                pub.loop_stop()
            assert wait_series(client, "secure1", {"t"})["t"]["last_value"] == 7.5
    finally:
        for proc in broker.procs:
            proc.terminate()
            proc.wait(10)


def test_broker_restart_mid_stream_loses_nothing(
    tmp_path: Path, private_broker: PrivateBroker
) -> None:
    """A numbered QoS 1 stream; the broker is stopped and started again while the
    listener holds a bundle it has not committed (so not acknowledged) and the rest of
    the first half is still on its way. Every message the broker acknowledged to the
    publisher is stored exactly once."""
    p = prefix()
    broker = broker_config(p, port=private_broker.port)
    total = 1000
    topic = f"{p}stats/stream1/n"

    def message(i: int) -> bytes:
        return orjson.dumps({"value": i, "ts": 1714564800000 + i})

    with mqtt_app(tmp_path, broker) as client:
        gate = threading.Event()
        pipeline = services_of(client).pipeline
        original = pipeline.ingest
        held = 0

        async def gated(*args: Any, **kwargs: Any) -> Any:
            nonlocal held
            held += 1
            while not gate.is_set():
                await asyncio.sleep(0.005)
            return await original(*args, **kwargs)

        pipeline.ingest = gated  # type: ignore[method-assign]
        with publisher(private_broker.port, f"pub-{uuid.uuid4().hex[:8]}", clean=False) as pub:
            infos = [pub.publish(topic, message(i), qos=1) for i in range(total // 2)]
            poll(lambda: True if held else None, "a bundle waiting for its commit")
            private_broker.stop()  # mid-stream, with messages received and not acknowledged
            gate.set()  # that bundle commits now; its acks have no connection to go to
            poll(
                lambda: (
                    True
                    if sample(client, "stats_mqtt_connected", {"broker": "test"}) == 0
                    else None
                ),
                "the listener noticing the broker is gone",
            )
            private_broker.start()
            wait_connected(client, "test")
            poll(lambda: True if pub.is_connected() else None, "publisher reconnected")
            infos += [pub.publish(topic, message(i), qos=1) for i in range(total // 2, total)]
            for info in infos:
                info.wait_for_publish(10)
            acked = [i for i, info in enumerate(infos) if info.is_published()]
        assert acked == list(range(total))
        sid = wait_series(client, "stream1", {"n"}, 10)["n"]["id"]
        values = poll(
            lambda: v if len(v := values_of(client, sid)) >= total else None,
            f"{total} messages",
            10,
        )
        assert values == [float(i) for i in acked]  # each once, none missing
        # the bundle held at the broker's stop was not acknowledged: delivered again
        assert count(client, "stored") > total
