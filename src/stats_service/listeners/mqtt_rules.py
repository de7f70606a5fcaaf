"""MQTT configuration: brokers and their topic rules, from the TOML file or the env.

The TOML file (`STATS_MQTT_CONFIG`) lists brokers, each with its tenant, presets and
rules (docs/protocols/mqtt.md has the full reference). Without a file, `STATS_MQTT_URL`,
`STATS_MQTT_PRESETS` and `STATS_MQTT_TENANT` describe one broker. Everything is checked
here, at start-up, so that a mistake names its place in the file instead of surfacing
as dropped messages later.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import orjson

from ..config import Settings
from ..ingest.protocols.mqtt_formats import PRESETS, RuleSet, compile_rules

BROKER_KEYS = frozenset(
    {
        "name",
        "url",
        "host",
        "port",
        "username",
        "password",
        "tls",
        "ca_file",
        "cert_file",
        "key_file",
        "tls_insecure",
        "tenant",
        "client_id",
        "protocol",
        "keepalive",
        "session_expiry_s",
        "receive_maximum",
        "linger_ms",
        "batch_max_messages",
        "reconnect_min_s",
        "reconnect_max_s",
        "presets",
        "prefix",
        "rules",
    }
)
PROTOCOLS = ("5", "3.1.1")


class MqttConfigError(ValueError):
    """The MQTT configuration is wrong; the message says where."""


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    name: str
    host: str
    port: int
    tenant: str
    client_id: str
    rules: list[dict[str, Any]]
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    tls_insecure: bool = False
    protocol: str = "5"
    keepalive: int = 60
    session_expiry_s: int = 7 * 86_400
    receive_maximum: int = 20_000  # above the bundle size: the next bundle arrives during a commit
    linger_ms: float = 50.0
    batch_max_messages: int = 5000
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0

    @property
    def rules_json(self) -> str:
        """The rule set as the parser parameter (stable text: sorted keys)."""
        return orjson.dumps(self.rules, option=orjson.OPT_SORT_KEYS).decode()

    @property
    def ruleset(self) -> RuleSet:
        return compile_rules(self.rules)


def load_brokers(settings: Settings) -> list[BrokerConfig]:
    """The configured brokers; raises MqttConfigError with the place of a mistake."""
    if settings.mqtt_config is not None:
        path = settings.mqtt_config
        try:
            doc = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise MqttConfigError(f"cannot read MQTT config {path}: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise MqttConfigError(f"MQTT config {path} is not valid TOML: {exc}") from None
        brokers = doc.get("brokers")
        if set(doc) - {"brokers"} or not isinstance(brokers, list) or not brokers:
            raise MqttConfigError(
                f"{path}: expected one or more [[brokers]] tables and nothing else"
            )
        found = [_broker(raw, f"{path}: brokers[{i}]", settings) for i, raw in enumerate(brokers)]
    elif settings.mqtt_url is not None:
        presets = [p.strip() for p in settings.mqtt_presets.split(",") if p.strip()]
        raw = {
            "name": "default",
            "url": settings.mqtt_url,
            "tenant": settings.mqtt_tenant,
            "presets": presets,
        }
        found = [_broker(raw, "STATS_MQTT_URL/STATS_MQTT_PRESETS", settings)]
    else:
        return []
    names = [b.name for b in found]
    if len(set(names)) != len(names):
        raise MqttConfigError(f"broker names must be unique (got {names})")
    ids = [b.client_id for b in found]
    if len(set(ids)) != len(ids):
        raise MqttConfigError(f"broker client ids must be unique (got {ids})")
    return found


def default_client_id(settings: Settings, name: str) -> str:
    """Stable per data dir and broker, so a restart resumes the same broker session;
    22 characters, within MQTT 3.1.1's guaranteed 23."""
    seed = f"{settings.data_dir.resolve()}|{name}".encode()
    return "stats-" + hashlib.sha256(seed).hexdigest()[:16]


def _broker(raw: Any, where: str, settings: Settings) -> BrokerConfig:
    if not isinstance(raw, dict):
        raise MqttConfigError(f"{where} must be a table")
    unknown = set(raw) - BROKER_KEYS
    if unknown:
        raise MqttConfigError(f"{where}: unknown keys {sorted(unknown)}")
    name = raw.get("name", "default")
    if not isinstance(name, str) or not name.replace("-", "").replace("_", "").isalnum():
        raise MqttConfigError(f"{where}.name must be letters, digits, - and _")
    values: dict[str, Any] = {"name": name, "tenant": raw.get("tenant", settings.mqtt_tenant)}
    values.update(_address(raw, where))
    for key in ("username", "password", "client_id"):
        if key in raw:
            values[key] = _typed(raw, key, str, where)
    for key in ("ca_file", "cert_file", "key_file"):
        if key in raw:
            values[key] = Path(_typed(raw, key, str, where))
            values["tls"] = True
    for key in ("tls", "tls_insecure"):
        if key in raw:
            values[key] = _typed(raw, key, bool, where)
    for key, low, high in (
        ("keepalive", 5, 65535),
        ("session_expiry_s", 0, 0xFFFFFFFF),
        ("receive_maximum", 1, 65535),
        ("batch_max_messages", 1, 100_000),
    ):
        if key in raw:
            values[key] = _number(raw, key, int, low, high, where)
    for key, flow, fhigh in (
        ("linger_ms", 0.0, 10_000.0),
        ("reconnect_min_s", 0.01, 3600),
        ("reconnect_max_s", 0.01, 3600),
    ):
        if key in raw:
            values[key] = float(_number(raw, key, float, flow, fhigh, where))
    if "protocol" in raw:
        protocol = str(raw["protocol"])
        if protocol not in PROTOCOLS:
            raise MqttConfigError(f"{where}.protocol must be one of {', '.join(PROTOCOLS)}")
        values["protocol"] = protocol
    values.setdefault("client_id", default_client_id(settings, name))
    values["rules"] = _rules(raw, where)
    if not isinstance(values["tenant"], str) or not values["tenant"]:
        raise MqttConfigError(f"{where}.tenant must be a tenant name")
    broker = BrokerConfig(**values)
    if broker.reconnect_max_s < broker.reconnect_min_s:
        raise MqttConfigError(f"{where}: reconnect_max_s is below reconnect_min_s")
    return broker


def _address(raw: dict[str, Any], where: str) -> dict[str, Any]:
    if "url" in raw:
        url = urlsplit(_typed(raw, "url", str, where))
        if url.scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not url.hostname:
            raise MqttConfigError(
                f"{where}.url must look like mqtt://[user:pass@]host[:port] or mqtts://..."
            )
        tls = url.scheme in ("mqtts", "ssl")
        try:
            port = url.port or (8883 if tls else 1883)
        except ValueError:
            raise MqttConfigError(f"{where}.url has an invalid port") from None
        found: dict[str, Any] = {"host": url.hostname, "port": port, "tls": tls}
        if url.username:
            found["username"] = unquote(url.username)
        if url.password:
            found["password"] = unquote(url.password)
        return found
    host = raw.get("host")
    if not isinstance(host, str) or not host:
        raise MqttConfigError(f"{where}: give `url` or `host` (and `port`)")
    tls = bool(raw.get("tls", False))
    return {"host": host, "port": _number(raw, "port", int, 1, 65535, where, 8883 if tls else 1883)}


def _rules(raw: dict[str, Any], where: str) -> list[dict[str, Any]]:
    """Configured rules first (they win), then the presets in the order listed."""
    rules = raw.get("rules", [])
    if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
        raise MqttConfigError(f"{where}.rules must be [[brokers.rules]] tables")
    prefix = raw.get("prefix", "")
    if not isinstance(prefix, str):
        raise MqttConfigError(f"{where}.prefix must be a string")
    specs: list[dict[str, Any]] = [dict(r) for r in rules]
    presets = raw.get("presets", [])
    if not isinstance(presets, list):
        raise MqttConfigError(f"{where}.presets must be a list of preset names or tables")
    for i, preset in enumerate(presets):
        if isinstance(preset, str):
            spec: dict[str, Any] = {"preset": preset}
        elif isinstance(preset, dict) and "preset" in preset:
            spec = dict(preset)
        else:
            raise MqttConfigError(
                f"{where}.presets[{i}] must be a name or a table with `preset`; "
                f"choose from {', '.join(PRESETS)}"
            )
        if prefix and "prefix" not in spec:
            spec["prefix"] = prefix
        specs.append(spec)
    if not specs:
        raise MqttConfigError(f"{where}: no presets and no rules: nothing to subscribe to")
    try:
        compile_rules(specs)
    except ValueError as exc:
        raise MqttConfigError(f"{where}.{exc}") from None
    return specs


def _typed(raw: dict[str, Any], key: str, kind: type, where: str) -> Any:
    value = raw[key]
    if not isinstance(value, kind):
        raise MqttConfigError(f"{where}.{key} must be a {kind.__name__}")
    return value


def _number(
    raw: dict[str, Any],
    key: str,
    kind: type,
    low: float,
    high: float,
    where: str,
    default: float | None = None,
) -> Any:
    value = raw.get(key, default)
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if kind is int:
        ok = ok and isinstance(value, int)
    if not ok or not low <= value <= high:  # type: ignore[operator]
        raise MqttConfigError(f"{where}.{key} must be a number in {low}..{high}")
    return value
