"""MQTT bundles: golden cases under testcases/mqtt/<case>/ (input.ndjson + params.json
with the rule set), plus the pieces the listener relies on: topic filters, discovery
configs, rule checks and the bundle line encoding.

Regenerate the cases' expected.json with `STATS_UPDATE_GOLDEN=1 pytest <this file>`,
then review the diff.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from golden import cases, context, run_case
from stats_service.ingest.protocols import PARSERS
from stats_service.ingest.protocols.mqtt import encode_message
from stats_service.ingest.protocols.mqtt_formats import compile_rules
from stats_service.ingest.protocols.mqtt_formats.base import (
    check_filter,
    compile_path,
    filter_covers,
    filter_matches,
    minimal_filters,
)
from stats_service.ingest.protocols.mqtt_formats.homeassistant import entity_from_config

FORMAT = "mqtt"


@pytest.mark.parametrize("case", cases(FORMAT), ids=lambda p: p.name)
def test_golden(case: Path) -> None:
    run_case(FORMAT, case)


@pytest.mark.parametrize(
    ("topic_filter", "topic", "matches"),
    [
        ("a/+/c", "a/b/c", True),
        ("a/+/c", "a/b/d", False),
        ("a/#", "a", True),
        ("a/#", "a/b/c", True),
        ("#", "$SYS/broker/uptime", False),
        ("+/status", "$SYS/status", False),
        ("a/+", "a/b/c", False),
        ("a/b", "a/b", True),
        ("a/+/+", "a//x", True),
    ],
)
def test_filter_matches(topic_filter: str, topic: str, matches: bool) -> None:
    assert filter_matches(topic_filter, topic) is matches


def test_filters_covered_by_others_are_left_out() -> None:
    assert filter_covers("a/#", "a/+/c")
    assert filter_covers("a/+/c", "a/b/c")
    assert not filter_covers("a/+/c", "a/#")
    assert not filter_covers("a/b/c", "a/+/c")
    assert minimal_filters(["x/+/+/config", "x/+/+/+", "y/z", "x/+/+/+"]) == ["x/+/+/+", "y/z"]


@pytest.mark.parametrize("bad", ["", "a/#/b", "a/b#", "a+/b"])
def test_invalid_filters(bad: str) -> None:
    assert check_filter(bad) is not None


def test_json_paths() -> None:
    assert compile_path("$.ENERGY.Power") == ("ENERGY", "Power")
    assert compile_path("$.a[0]['b c']") == ("a", 0, "b c")
    with pytest.raises(ValueError, match="must start with"):
        compile_path("ENERGY.Power")
    with pytest.raises(ValueError, match="cannot read"):
        compile_path("$.a[x]")


def test_rule_set_filters_and_errors() -> None:
    rules = compile_rules(
        [
            {"preset": "stats", "prefix": "p/"},
            {"preset": "homeassistant_statestream", "prefix": "p/"},
            {"preset": "homeassistant_discovery", "prefix": "p/"},
        ]
    )
    assert rules.filters == ["p/stats/+/+", "p/homeassistant/+/+/+", "p/homeassistant/+/+/+/config"]
    assert rules.discovery_prefixes == ("p/",)
    for specs, message in [
        ([{"preset": "nope"}], "unknown preset"),
        ([{"preset": "stats", "timezone": "UTC"}], "has no options"),
        ([{"preset": "tasmota", "timezone": "Mars/Base"}], "Mars/Base"),
        ([{"topic": "a/#/b", "device": "d", "metric": "m"}], "rules\\[0\\].topic"),
        ([{"topic": "a/b", "metric": "m"}], "device must be"),
        ([{"topic": "a/b", "device": "{payload}", "metric": "m"}], "unknown placeholder"),
        ([{"topic": "a/b", "device": "d", "metric": "m", "value": "x"}], "must start with"),
        ([{"topic": "a/b", "device": "d", "metric": "m", "type": "float"}], "type must be"),
        ([{"topic": "a/b", "device": "d", "metric": "m", "colour": 1}], "unknown keys"),
        ([{"topic": "a/b", "device": "d", "tags": {"device": "x"}}], "tags"),
        ([{"topic": "a/b", "device": "d", "timezone": "Nowhere"}], "unknown time zone"),
    ]:
        with pytest.raises(ValueError, match=message):
            compile_rules(specs)


def _config(payload: Any, topic: str = "homeassistant/sensor/node7/temp/config") -> Any:
    return entity_from_config("", topic, orjson.dumps(payload) if payload is not None else b"")


def test_discovery_config_abbreviations_base_and_template() -> None:
    learned = _config(
        {
            "~": "zigbee/node7",
            "stat_t": "~/state",
            "name": "Temperature",
            "unit_of_meas": "°C",
            "val_tpl": "{{ value_json.temperature | float }}",
        }
    )
    assert learned == {
        "state_topic": "zigbee/node7/state",
        "entity": {
            "device": "node7",
            "metric": "Temperature",
            "unit": "°C",
            "value": "$.temperature",
            "error": None,
        },
    }


def test_discovery_config_device_names_and_templates() -> None:
    without_node = _config(
        {
            "state_topic": "t/s",
            "device": {"name": "Living Room", "ids": ["x1"]},
            "value_template": "{{ value }}",
        },
        topic="homeassistant/sensor/lr_temp/config",
    )
    assert without_node["entity"]["device"] == "Living_Room"
    assert without_node["entity"]["metric"] == "lr_temp"
    assert without_node["entity"]["value"] is None
    nested = _config({"state_topic": "t/s", "value_template": "{{ value_json['a'][0].b }}"})
    assert nested["entity"]["value"] == "$['a'][0].b"
    unsupported = _config({"state_topic": "t/s", "value_template": "{{ value_json.a * 10 }}"})
    assert "not supported" in unsupported["entity"]["error"]
    assert _config(None) is None  # an empty retained message removes the entity
    for bad, reason in [
        ({"name": "x"}, "no state_topic"),
        ([1], "not a JSON object"),
        ({"state_topic": "a/+/b"}, "not a filter"),
    ]:
        with pytest.raises(ValueError, match=reason):
            _config(bad)
    with pytest.raises(ValueError, match="not JSON"):
        entity_from_config("", "homeassistant/sensor/x/config", b"{")


def test_bundle_lines_round_trip_binary_payloads() -> None:
    line = orjson.loads(encode_message("a/b", b"\xff\x00", 5, True))
    assert line == {"topic": "a/b", "received_us": 5, "retain": True, "payload_b64": "/wA="}
    assert orjson.loads(encode_message("a/b", "21.5 °C".encode(), 5, False))["payload"] == "21.5 °C"


def test_same_bundle_parses_the_same_twice() -> None:
    case = Path(__file__).parent / "testcases" / FORMAT / "tasmota_sensor"
    body = (case / "input.ndjson").read_bytes()
    params = orjson.loads((case / "params.json").read_bytes())
    first, second = (PARSERS[FORMAT](body, context(params)) for _ in range(2))
    assert first.series.keys() == second.series.keys()
    assert first.value.tolist() == second.value.tolist()
