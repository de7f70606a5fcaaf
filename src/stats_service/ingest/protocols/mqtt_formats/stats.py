"""Our own topics: `stats/<device>/<metric>`.

The payload is a plain number (`21.5`), a text (`heating`, kept as a text value), or
JSON `{"value": 21.5, "ts": 1714564800000, "unit": "°C"}` where `ts` (RFC 3339 or epoch
seconds/ms/us, the unit guessed from the magnitude) and `unit` are optional. Without
`ts` the receive time is used.
"""

from __future__ import annotations

from typing import Any

from ...timestamps import TimestampError, parse_timestamp
from .base import Message, Output, number_of


class Stats:
    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.filters = (prefix + "stats/+/+",)

    def handle(self, msg: Message, out: Output) -> bool:
        if not msg.topic.startswith(self.prefix):
            return False
        levels = msg.topic[len(self.prefix) :].split("/")
        if len(levels) != 3 or levels[0] != "stats":
            return False
        device, metric = levels[1], levels[2]
        text = msg.text()
        if not text:
            out.problem("empty payload")
            return True
        if text[0] != "{":
            number = number_of(text)
            if number is not None:
                out.number(device, metric, number)
            else:
                out.text(device, metric, text)
            return True
        try:
            doc = msg.json()
        except ValueError:
            out.problem("payload starts with `{` but is not JSON")
            return True
        self._document(doc, device, metric, out)
        return True

    @staticmethod
    def _document(doc: dict[str, Any], device: str, metric: str, out: Output) -> None:
        unknown = set(doc) - {"value", "ts", "unit"}
        if unknown or "value" not in doc:
            out.problem('JSON payloads are {"value": x, "ts": optional, "unit": optional}')
            return
        ts = None
        if doc.get("ts") is not None:
            try:
                ts = parse_timestamp(doc["ts"], None)
            except TimestampError as exc:
                out.problem(f"ts: {exc}")
                return
        unit = doc.get("unit")
        if unit is not None and not isinstance(unit, str):
            out.problem("unit must be a string")
            return
        out.auto(device, metric, doc["value"], ts=ts, unit=unit)
