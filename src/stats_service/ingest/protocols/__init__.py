"""Wire formats: one module per format, each a pure `parse(body, ctx) -> Batch`."""

from __future__ import annotations

from . import (
    epidemic_run,
    homeassistant,
    influx_line,
    json_v1,
    mqtt,
    prometheus_remote,
    statsd,
    temperature_v1,
    thingsboard,
)
from .base import ParseContext, Parser

PARSERS: dict[str, Parser] = {
    "json": json_v1.parse,
    "influx": influx_line.parse,
    "homeassistant": homeassistant.parse,
    "thingsboard": thingsboard.parse,
    "statsd": statsd.parse,
    "prometheus": prometheus_remote.parse,
    "mqtt": mqtt.parse,
    "temperature": temperature_v1.parse,
    "epidemic-run": epidemic_run.parse,
}

__all__ = ["PARSERS", "ParseContext", "Parser"]
