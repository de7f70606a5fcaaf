"""Home Assistant over MQTT: the `statestream` integration and MQTT discovery.

Statestream publishes `homeassistant/<domain>/<object_id>/state` (the state as plain
text) and `homeassistant/<domain>/<object_id>/<attribute>` (JSON-encoded attributes).
The device is `<domain>.<object_id>`, the metric `state` or the attribute's name;
numbers become points, anything else a text value.

Discovery messages (`homeassistant/<component>/[<node_id>/]<object_id>/config`, retained
JSON) describe an entity: its `state_topic`, `name`, `unit_of_measurement`,
`device_class` and `value_template`. The listener learns them (`entity_from_config`)
and hands the entities of the state topics in a bundle to the parser as a parameter,
so that archived bundles parse the same way again. Only value templates of the forms
`{{ value }}` and `{{ value_json.a.b }}` / `{{ value_json['a'][0] }}` (optionally
followed by `| float`, `| int`, `| round(n)`) are understood; an entity with another
template is learned, and its messages are reported as invalid with the reason.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from ..json_v1 import DEVICE_RE
from .base import MISSING, Message, Output, compile_path, resolve_path

ABBREVIATIONS = {
    "stat_t": "state_topic",
    "unit_of_meas": "unit_of_measurement",
    "val_tpl": "value_template",
    "dev_cla": "device_class",
    "obj_id": "object_id",
    "dev": "device",
    "uniq_id": "unique_id",
}
_TEMPLATE = re.compile(
    r"^\{\{\s*(value_json(?P<path>(?:\s*\.\s*[A-Za-z_][A-Za-z0-9_]*|\[\d+\]|\['[^']*'\]"
    r"|\[\"[^\"]*\"\])*)|value)\s*(?:\|\s*(?:float|int|round\(\s*\d+\s*\)|float\(\s*\d*\s*\))\s*)*"
    r"\}\}$"
)
_SLUG = re.compile(r"[^A-Za-z0-9._:@-]+")


class Statestream:
    def __init__(self, prefix: str = "", base_topic: str = "homeassistant") -> None:
        if not base_topic or "/" in base_topic or "+" in base_topic or "#" in base_topic:
            raise ValueError("base_topic must be one topic level, e.g. 'homeassistant'")
        self.prefix = prefix
        self.base_topic = base_topic
        self.filters = (f"{prefix}{base_topic}/+/+/+",)

    def handle(self, msg: Message, out: Output) -> bool:
        if not msg.topic.startswith(self.prefix):
            return False
        levels = msg.topic[len(self.prefix) :].split("/")
        if len(levels) != 4 or levels[0] != self.base_topic or levels[3] == "config":
            return False
        device, attribute = f"{levels[1]}.{levels[2]}", levels[3]
        text = msg.text()
        if attribute == "state":
            out.auto(device, "state", text)
            return True
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            value = text
        if value is None:
            return True  # an attribute without a value: nothing to keep
        out.auto(device, attribute, value)
        return True


def _config_topic(prefix: str, topic: str) -> tuple[str, str | None, str] | None:
    """(component, node_id, object_id) of a discovery config topic, else None."""
    if not topic.startswith(prefix):
        return None
    levels = topic[len(prefix) :].split("/")
    if levels[0] != "homeassistant" or levels[-1] != "config" or len(levels) not in (4, 5):
        return None
    if len(levels) == 4:
        return levels[1], None, levels[2]
    return levels[1], levels[2], levels[3]


def discovery_filters(prefix: str) -> tuple[str, ...]:
    return (prefix + "homeassistant/+/+/config", prefix + "homeassistant/+/+/+/config")


def is_config_topic(prefix: str, topic: str) -> bool:
    return _config_topic(prefix, topic) is not None


def entity_from_config(prefix: str, topic: str, payload: bytes) -> dict[str, Any] | None:
    """The entity a discovery message describes, as JSON-able parameters of the parser;
    None for an empty payload (the entity was removed). Raises ValueError with the
    reason when the message cannot be used."""
    parts = _config_topic(prefix, topic)
    if parts is None:
        raise ValueError("not a discovery config topic")
    if not payload.strip():
        return None
    _component, node_id, object_id = parts
    try:
        raw = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise ValueError("discovery payload is not JSON") from None
    if not isinstance(raw, dict):
        raise ValueError("discovery payload is not a JSON object")
    config = {ABBREVIATIONS.get(k, k): v for k, v in raw.items()}
    base = config.get("~")
    state_topic = config.get("state_topic")
    if not isinstance(state_topic, str) or not state_topic:
        raise ValueError("discovery config has no state_topic")
    if isinstance(base, str):
        if state_topic.startswith("~"):
            state_topic = base + state_topic[1:]
        elif state_topic.endswith("~"):
            state_topic = state_topic[:-1] + base
    if "+" in state_topic or "#" in state_topic:
        raise ValueError("state_topic must be a topic, not a filter")
    device = _device_name(node_id, config.get("device"), object_id)
    name = config.get("name")
    metric = name if isinstance(name, str) and name else str(config.get("object_id") or object_id)
    unit = config.get("unit_of_measurement")
    entity: dict[str, Any] = {
        "device": device,
        "metric": metric,
        "unit": unit if isinstance(unit, str) and unit else None,
        "value": None,
        "error": None,
    }
    template = config.get("value_template")
    if template is not None:
        match = _TEMPLATE.match(str(template).strip())
        if match is None:
            entity["error"] = (
                f"value_template {str(template)[:80]!r} is not supported; only "
                "{{ value }} and {{ value_json.path }} are"
            )
        elif match.group("path") is not None:
            entity["value"] = "$" + re.sub(r"\s+", "", match.group("path"))
    return {"state_topic": state_topic, "entity": entity}


def _device_name(node_id: str | None, device: Any, object_id: str) -> str:
    """node_id from the topic, else the device's name or first identifier, else the
    object id; made to fit our device names."""
    candidates: list[Any] = [node_id]
    if isinstance(device, dict):
        ids = device.get("identifiers", device.get("ids"))
        candidates.append(device.get("name"))
        candidates.append(ids[0] if isinstance(ids, list) and ids else ids)
    candidates.append(object_id)
    for candidate in candidates:
        if isinstance(candidate, str) and candidate.strip():
            slug = _SLUG.sub("_", candidate.strip()).strip("_")[:128]
            if DEVICE_RE.fullmatch(slug):
                return slug
    return object_id


class Discovered:
    """The entities learned from discovery messages, by state topic (a parser parameter)."""

    filters: tuple[str, ...] = ()

    def __init__(self, entities: dict[str, list[dict[str, Any]]]) -> None:
        self.entities = entities
        self.paths = {
            entity["value"]: compile_path(entity["value"])
            for found in entities.values()
            for entity in found
            if entity.get("value")
        }

    def handle(self, msg: Message, out: Output) -> bool:
        found = self.entities.get(msg.topic)
        if not found:
            return False
        doc: Any = MISSING
        for entity in found:
            if entity.get("error"):
                out.problem(str(entity["error"]))
                continue
            path = entity.get("value")
            if not path:
                value: Any = msg.text()
            else:
                if doc is MISSING:
                    try:
                        doc = msg.json()
                    except ValueError:
                        out.problem("payload is not JSON but the value_template reads JSON")
                        return True
                value = resolve_path(doc, self.paths[path])
                if value is MISSING:
                    out.problem(f"{entity['metric']}: the payload has no {path}")
                    continue
            out.auto(entity["device"], entity["metric"], value, unit=entity.get("unit"))
        return True
