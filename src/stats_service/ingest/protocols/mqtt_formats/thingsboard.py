"""ThingsBoard telemetry topics, read as a subscriber.

ThingsBoard identifies a device by the access token it connects with (the MQTT user
name); a subscriber on a plain broker never sees that, so the device must be in the
topic:

    v1/devices/<device>/telemetry     {"temperature": 21} | {"ts": ms, "values": {...}} | [...]
    v1/gateway/telemetry              {"<device>": [{"ts": ms, "values": {...}}, ...], ...}

`v1/devices/me/telemetry` (the topic a device uses towards a ThingsBoard server) names
no device; its messages are reported as invalid unless the preset is configured with
`device = "<name>"` for a broker that carries one device only. Payloads are parsed by
the ThingsBoard HTTP device API's parser (`protocols/thingsboard.py`).
"""

from __future__ import annotations

from ....errors import ServiceError
from .. import thingsboard
from ..base import BatchBuilder
from ..json_v1 import DEVICE_MSG, DEVICE_RE
from .base import Message, Output


class Thingsboard:
    def __init__(self, prefix: str = "", device: str | None = None) -> None:
        self.prefix = prefix
        self.device = device
        self.filters = (prefix + "v1/devices/+/telemetry", prefix + "v1/gateway/telemetry")

    def handle(self, msg: Message, out: Output) -> bool:
        if not msg.topic.startswith(self.prefix):
            return False
        levels = msg.topic[len(self.prefix) :].split("/")
        if levels == ["v1", "gateway", "telemetry"]:
            doc = self._json(msg, out)
            if doc is None:
                return True
            if not isinstance(doc, dict):
                out.problem('gateway telemetry is an object {"<device>": [...]}')
                return True
            for device, entries in doc.items():
                self._document(entries, str(device), msg, out)
            return True
        if len(levels) != 4 or levels[:2] != ["v1", "devices"] or levels[3] != "telemetry":
            return False
        device = levels[2]
        if device == "me":
            if self.device is None:
                out.problem(
                    "v1/devices/me/telemetry names no device: publish to "
                    "v1/devices/<device>/telemetry or configure the preset's device"
                )
                return True
            device = self.device
        doc = self._json(msg, out)
        if doc is not None:
            self._document(doc, device, msg, out)
        return True

    @staticmethod
    def _json(msg: Message, out: Output) -> object | None:
        try:
            doc: object = msg.json()
        except ValueError:
            out.problem("payload is not JSON")
            return None
        return doc

    @staticmethod
    def _document(doc: object, device: str, msg: Message, out: Output) -> None:
        if not DEVICE_RE.fullmatch(device):
            out.problem(f"device {device[:80]!r}: {DEVICE_MSG}")
            return
        scratch = BatchBuilder(out.builder.tenant_id)
        try:
            thingsboard.parse_document(doc, device, msg.received_us, out.max_future_us, scratch)
        except ServiceError as exc:
            for error in exc.errors or []:
                out.problem(f"{error.loc}: {error.msg}")
            if not exc.errors:
                out.problem(exc.detail)
            return
        out.merge(scratch)
