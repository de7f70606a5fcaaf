"""MQTT payload formats: the built-in presets and configured topic rules.

A rule set is a JSON list, the same in the configuration, in the archived bundle's
parameters and at replay: each entry is either a preset

    {"preset": "tasmota", "prefix": "", "timezone": "Europe/Berlin"}

or a configured rule (see `custom.py`). A message goes to the first entry whose
handler takes it; learned Home Assistant discovery entities come before all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .base import Handler, Message, Output, check_filter, filter_matches, minimal_filters
from .custom import Rule
from .esphome import Esphome
from .homeassistant import Discovered, Statestream, discovery_filters
from .stats import Stats
from .tasmota import Tasmota
from .thingsboard import Thingsboard

DISCOVERY = "homeassistant_discovery"


def _tasmota(spec: dict[str, Any]) -> Handler:
    return Tasmota(spec.get("prefix", ""), spec.get("timezone"), spec.get("device_timezones"))


def _statestream(spec: dict[str, Any]) -> Handler:
    return Statestream(spec.get("prefix", ""), spec.get("base_topic", "homeassistant"))


def _thingsboard(spec: dict[str, Any]) -> Handler:
    return Thingsboard(spec.get("prefix", ""), spec.get("device"))


PRESETS: dict[str, tuple[frozenset[str], Callable[[dict[str, Any]], Handler] | None]] = {
    "stats": (frozenset(), lambda spec: Stats(spec.get("prefix", ""))),
    "tasmota": (frozenset({"timezone", "device_timezones"}), _tasmota),
    "esphome": (frozenset(), lambda spec: Esphome(spec.get("prefix", ""))),
    "homeassistant_statestream": (frozenset({"base_topic"}), _statestream),
    DISCOVERY: (frozenset(), None),  # learned by the listener, see homeassistant.py
    "thingsboard": (frozenset({"device"}), _thingsboard),
}


@dataclass(frozen=True, slots=True)
class RuleSet:
    handlers: tuple[Handler, ...]
    discovery_prefixes: tuple[str, ...]

    @property
    def filters(self) -> list[str]:
        """The topic filters to subscribe to, none covered by another."""
        found = [f for handler in self.handlers for f in handler.filters]
        for prefix in self.discovery_prefixes:
            found.extend(discovery_filters(prefix))
        return minimal_filters(found)

    def matches(self, topic: str) -> bool:
        """Whether some rule's filter takes this topic (it may still find it invalid)."""
        return any(filter_matches(f, topic) for h in self.handlers for f in h.filters)

    def handle(self, msg: Message, out: Output) -> bool:
        return any(handler.handle(msg, out) for handler in self.handlers)


def compile_rules(specs: Any) -> RuleSet:
    """The rule set of a JSON list; raises ValueError naming the entry that is wrong."""
    if not isinstance(specs, list):
        raise ValueError("rules must be a list")
    handlers: list[Handler] = []
    discovery: list[str] = []
    for i, spec in enumerate(specs):
        where = f"rules[{i}]"
        if not isinstance(spec, dict):
            raise ValueError(f"{where} must be a table")
        if "preset" not in spec:
            handlers.append(Rule(spec, where))
            continue
        name = spec["preset"]
        if name not in PRESETS:
            raise ValueError(f"{where}: unknown preset {name!r}; choose from {', '.join(PRESETS)}")
        options, factory = PRESETS[name]
        unknown = set(spec) - {"preset", "prefix"} - options
        if unknown:
            raise ValueError(f"{where}: preset {name} has no options {sorted(unknown)}")
        prefix = spec.get("prefix", "")
        if not isinstance(prefix, str) or (prefix and check_filter(prefix + "x")):
            raise ValueError(f"{where}.prefix must be a topic prefix such as 'site1/'")
        if factory is None:
            discovery.append(prefix)
            continue
        try:
            handlers.append(factory(spec))
        except (ValueError, KeyError) as exc:  # e.g. an unknown time zone
            raise ValueError(f"{where}: {exc}") from None
    return RuleSet(tuple(handlers), tuple(discovery))


__all__ = [
    "DISCOVERY",
    "PRESETS",
    "Discovered",
    "Message",
    "Output",
    "RuleSet",
    "compile_rules",
]
