"""MQTT configuration: the TOML file, the env quick start, and mistakes named by place."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import make_settings
from stats_service.listeners.mqtt_rules import MqttConfigError, default_client_id, load_brokers

FULL = """
[[brokers]]
name = "home"
url = "mqtts://stats:s%40cret@broker.lan"
tenant = "home"
ca_file = "/etc/ssl/certs/ca-certificates.crt"
client_id = "stats-home"
protocol = "3.1.1"
keepalive = 30
receive_maximum = 200
linger_ms = 25
batch_max_messages = 500
reconnect_min_s = 1
reconnect_max_s = 60
prefix = "site1/"
presets = ["tasmota", { preset = "thingsboard", device = "pump9" }]

[[brokers.rules]]
topic = "sensors/+/temperature"
device = "{topic[1]}"
metric = "temperature"
unit = "°C"

[[brokers]]
name = "lab"
host = "127.0.0.1"
presets = ["stats"]
"""


def test_full_file(tmp_path: Path) -> None:
    path = tmp_path / "mqtt.toml"
    path.write_text(FULL, encoding="utf-8")
    home, lab = load_brokers(make_settings(tmp_path, mqtt_config=path))
    assert (home.host, home.port, home.tls) == ("broker.lan", 8883, True)
    assert (home.username, home.password) == ("stats", "s@cret")
    assert home.ca_file == Path("/etc/ssl/certs/ca-certificates.crt")
    assert (home.tenant, home.client_id, home.protocol) == ("home", "stats-home", "3.1.1")
    assert (home.keepalive, home.receive_maximum, home.batch_max_messages) == (30, 200, 500)
    assert (home.linger_ms, home.reconnect_min_s, home.reconnect_max_s) == (25.0, 1.0, 60.0)
    assert home.rules == [
        {
            "topic": "sensors/+/temperature",
            "device": "{topic[1]}",
            "metric": "temperature",
            "unit": "°C",
        },
        {"preset": "tasmota", "prefix": "site1/"},
        {"preset": "thingsboard", "device": "pump9", "prefix": "site1/"},
    ]
    assert home.ruleset.filters[0] == "sensors/+/temperature"
    assert (lab.host, lab.port, lab.tls, lab.tenant) == ("127.0.0.1", 1883, False, "default")
    assert lab.client_id == default_client_id(make_settings(tmp_path), "lab")


def test_env_quick_start(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        mqtt_url="mqtt://u:p@127.0.0.1:1884",
        mqtt_presets="stats, esphome",
        mqtt_tenant="t1",
    )
    (broker,) = load_brokers(settings)
    assert (broker.name, broker.port, broker.username, broker.tenant) == (
        "default",
        1884,
        "u",
        "t1",
    )
    assert [r["preset"] for r in broker.rules] == ["stats", "esphome"]
    assert len(broker.client_id) <= 23
    assert broker.client_id == load_brokers(settings)[0].client_id  # stable across starts
    assert load_brokers(make_settings(tmp_path)) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("brokers = 1", "one or more"),
        ("[[brokers]]\nurl = 'http://x'\npresets = ['stats']", "url must look like"),
        ("[[brokers]]\npresets = ['stats']", "give `url` or `host`"),
        ("[[brokers]]\nhost = 'h'\nport = 0\npresets = ['stats']", "port must be"),
        ("[[brokers]]\nhost = 'h'", "nothing to subscribe to"),
        ("[[brokers]]\nhost = 'h'\npresets = ['nope']", "unknown preset"),
        ("[[brokers]]\nhost = 'h'\npresets = ['stats']\ncolour = 1", "unknown keys"),
        ("[[brokers]]\nhost = 'h'\npresets = ['stats']\nprotocol = '4'", "protocol must be"),
        (
            "[[brokers]]\nhost = 'h'\npresets = ['stats']\n[[brokers]]\nhost = 'h'\n"
            "presets = ['stats']",
            "names must be unique",
        ),
        (
            "[[brokers]]\nhost = 'h'\n[[brokers.rules]]\ntopic = 'a/#/b'\ndevice = 'd'",
            "brokers\\[0\\].rules\\[0\\].topic",
        ),
        ("[[brokers]\n", "not valid TOML"),
    ],
)
def test_mistakes_name_their_place(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "mqtt.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(MqttConfigError, match=message):
        load_brokers(make_settings(tmp_path, mqtt_config=path))


def test_the_documented_example_loads(tmp_path: Path) -> None:
    docs = Path(__file__).parents[3] / "docs" / "protocols" / "mqtt.md"
    example = re.search(r"```toml\n(.*?)```", docs.read_text(encoding="utf-8"), re.S)
    assert example is not None
    path = tmp_path / "mqtt.toml"
    path.write_text(example.group(1), encoding="utf-8")
    home, lab = load_brokers(make_settings(tmp_path, mqtt_config=path))
    assert (home.tls, home.password, lab.tenant) == (True, "s@cret", "lab")
    assert "tb/v1/gateway/telemetry" in home.ruleset.filters
