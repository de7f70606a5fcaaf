"""MQTT bundles: the messages the MQTT listener received in one short window.

The body is NDJSON, one received message per line:

    {"topic": "tele/plug/SENSOR", "payload": "{\"ENERGY\":{\"Power\":45}}",
     "received_us": 1714564800000000, "retain": false}

(`payload_b64` instead of `payload` when the bytes are not UTF-8). The parameters hold
what the parser needs besides: `rules`, the rule set as JSON (presets and configured
rules, see `mqtt_formats`), and `discovered`, the Home Assistant discovery entities of
the state topics in the bundle. So an archived bundle parses the same way at replay.

A message no rule takes, or one a rule cannot read, is skipped and reported (one
dropped entry per message, located by its line and topic); the others are written.
"""

from __future__ import annotations

import base64
import binascii
import functools
from typing import Any

import orjson

from ...errors import BadRequest
from ...model import Batch
from .base import BatchBuilder, ParseContext
from .mqtt_formats import Discovered, Message, Output, RuleSet, compile_rules
from .mqtt_formats.base import MAX_PROBLEMS


def encode_message(topic: str, payload: bytes, received_us: int, retain: bool) -> bytes:
    """One bundle line (without the newline)."""
    line: dict[str, Any] = {"topic": topic, "received_us": received_us, "retain": retain}
    try:
        line["payload"] = payload.decode("utf-8")
    except UnicodeDecodeError:
        line["payload_b64"] = base64.b64encode(payload).decode("ascii")
    return orjson.dumps(line)


def _decode_line(raw: bytes) -> Message:
    doc = orjson.loads(raw)
    if not isinstance(doc, dict):
        raise ValueError("not an object")
    topic, received = doc.get("topic"), doc.get("received_us")
    if not isinstance(topic, str) or type(received) is not int:
        raise ValueError("needs `topic` (string) and `received_us` (integer)")
    if isinstance(doc.get("payload"), str):
        payload = doc["payload"].encode("utf-8")
    elif isinstance(doc.get("payload_b64"), str):
        payload = base64.b64decode(doc["payload_b64"], validate=True)
    else:
        raise ValueError("needs `payload` (text) or `payload_b64`")
    return Message(topic, payload, received, bool(doc.get("retain", False)))


@functools.lru_cache(maxsize=32)
def _rules(text: str) -> RuleSet:
    """The rule set of a `rules` parameter; the listener sends the same text every time."""
    try:
        return compile_rules(orjson.loads(text))
    except orjson.JSONDecodeError:
        raise BadRequest("parameter `rules` is not JSON") from None
    except ValueError as exc:
        raise BadRequest(f"parameter `rules`: {exc}") from None


def _discovered(text: str | None) -> Discovered | None:
    if not text:
        return None
    try:
        entities = orjson.loads(text)
        if not isinstance(entities, dict):
            raise ValueError("not an object")
        return Discovered(entities)
    except (orjson.JSONDecodeError, ValueError, TypeError, KeyError, AttributeError):
        raise BadRequest("parameter `discovered` is not an object of topic -> entities") from None


def parse(body: bytes, ctx: ParseContext) -> Batch:
    rules = _rules(ctx.params.get("rules", "[]"))
    discovered = _discovered(ctx.params.get("discovered"))
    builder = BatchBuilder(ctx.tenant_id)
    for i, raw in enumerate(body.splitlines()):
        if not raw.strip():
            continue
        try:
            msg = _decode_line(raw)
        except (ValueError, binascii.Error) as exc:
            builder.drop(f"[{i}]", f"not a bundled MQTT message: {exc}")
            continue
        out = Output(builder, msg.received_us, ctx.max_future_us)
        try:
            handled = (discovered is not None and discovered.handle(msg, out)) or rules.handle(
                msg, out
            )
        except UnicodeDecodeError:
            handled = True
            out.problem("payload is not UTF-8 text")
        if not handled:
            out.problem("no rule takes this topic")
        if out.problems:
            reason = "; ".join(out.problems[:MAX_PROBLEMS])
            if len(out.problems) > MAX_PROBLEMS:
                reason += f" (+{len(out.problems) - MAX_PROBLEMS} more)"
            builder.drop(f"[{i}] {msg.topic[:200]}", reason)
    return builder.build(allow_empty=True)
