"""Wire formats: one module per format, each a pure `parse(body, ctx) -> Batch`."""

from __future__ import annotations

from . import homeassistant, json_v1, statsd, thingsboard
from .base import ParseContext, Parser

PARSERS: dict[str, Parser] = {
    "json": json_v1.parse,
    "homeassistant": homeassistant.parse,
    "thingsboard": thingsboard.parse,
    "statsd": statsd.parse,
}

__all__ = ["PARSERS", "ParseContext", "Parser"]
