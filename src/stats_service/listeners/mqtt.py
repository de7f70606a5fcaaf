"""The MQTT subscriber: messages from configured brokers into the ingest pipeline.

Per broker, a connection thread (`mqtt_client.py`) receives QoS 1 messages into a
bounded buffer; a task here takes what arrived within a short linger (or a full batch),
learns Home Assistant discovery configs, and ingests the rest as ONE pipeline call:
an NDJSON bundle of the messages (protocol `mqtt`, parsed by `ingest/protocols/mqtt.py`
with the rule set in the parameters, so `replay` parses the archived bundle the same
way). Only after the pipeline has committed the bundle are its messages acknowledged
(PUBACK), so a crash or a refused write loses nothing: the broker still holds every
unacknowledged message of our persistent session and sends it again. While the store
is backpressured (Overloaded / Unavailable) the bundle is retried and nothing is
acknowledged; the buffer stops growing at its bound and the broker holds the rest.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import structlog
from prometheus_client import Counter, Gauge

from ..errors import (
    Overloaded,
    PayloadTooLarge,
    ServiceError,
    Unavailable,
    ValidationFailed,
)
from ..ingest.protocols.base import MAX_FIELD_ERRORS
from ..ingest.protocols.mqtt import encode_message
from ..ingest.protocols.mqtt_formats.homeassistant import (
    discovery_filters,
    entity_from_config,
    is_config_topic,
)
from ..model import Principal
from .mqtt_client import MqttConnection, Received
from .mqtt_rules import BrokerConfig, load_brokers

if TYPE_CHECKING:
    from ..services import Services

log = structlog.get_logger(__name__)
PROTOCOL = "mqtt"
RETRY_MIN_S = 0.2
RETRY_MAX_S = 10.0
STOP_TIMEOUT_S = 15.0
STOP_RETRY_S = 2.0  # on shutdown an unavailable store is not waited for long: the broker keeps them
UNMATCHED_LOG_EVERY_S = 60.0
DUPLICATE_WINDOW_US = 20_000


def _overlap(filters: list[str]) -> bool:
    """Whether some topic could match two of the filters (then it arrives twice)."""
    return any(
        _levels_overlap(a.split("/"), b.split("/"))
        for i, a in enumerate(filters)
        for b in filters[i + 1 :]
    )


def _levels_overlap(a: list[str], b: list[str]) -> bool:
    for x, y in zip(a, b, strict=False):
        if x == "#" or y == "#":
            return True
        if x != y and x != "+" and y != "+":
            return False
    return len(a) == len(b) or "#" in (a[-1], b[-1])


class MqttMetrics:
    def __init__(self, services: Services) -> None:
        registry = services.metrics.registry
        self.messages = Counter(
            "stats_mqtt_messages",
            "MQTT messages by broker and outcome: stored, invalid (a rule could not read "
            "it, or part of it), unmatched (no rule), discovery (a config learned), "
            "rejected (the pipeline refused its bundle).",
            ["broker", "outcome"],
            registry=registry,
        )
        self.connected = Gauge(
            "stats_mqtt_connected",
            "1 while connected to the broker, else 0.",
            ["broker"],
            registry=registry,
        )
        self.buffered = Gauge(
            "stats_mqtt_buffered_messages",
            "Messages received and not yet acknowledged, by broker.",
            ["broker"],
            registry=registry,
        )


class MqttListener:
    """All configured brokers (`STATS_MQTT_CONFIG` or `STATS_MQTT_URL`)."""

    name = "mqtt"

    def __init__(self, services: Services) -> None:
        self._services = services
        self._brokers = [
            BrokerListener(services, config) for config in load_brokers(services.settings)
        ]
        metrics = MqttMetrics(services) if self._brokers else None
        for broker in self._brokers:
            broker.metrics = metrics

    @property
    def brokers(self) -> list[BrokerListener]:
        return list(self._brokers)

    async def start(self) -> None:
        for broker in self._brokers:
            await broker.start()

    async def stop(self) -> None:
        await asyncio.gather(*(broker.stop() for broker in self._brokers))


class BrokerListener:
    """One broker: buffer, bundle, ingest, acknowledge."""

    def __init__(self, services: Services, config: BrokerConfig) -> None:
        self.config = config
        self.metrics: MqttMetrics | None = None
        self._services = services
        self._rules = config.ruleset
        self._rules_json = config.rules_json
        self._discovery_prefixes = self._rules.discovery_prefixes
        self._entities: dict[str, dict[str, Any]] = {}  # config topic -> learned entity
        self._by_state: dict[
            str, dict[str, dict[str, Any]]
        ] = {}  # state topic -> config topic -> entity
        self._entities_file = services.settings.data_dir / "mqtt" / f"{config.name}-discovery.json"
        self._buffer: deque[Received] = deque()
        self._lock = threading.Condition()
        self._max_buffer = max(10 * config.batch_max_messages, 2 * config.receive_maximum)
        self._closing = False
        self._wakeup = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._principal: Principal | None = None
        self._unmatched_logged: dict[str, float] = {}
        filters = self._rules.filters
        self._connection = MqttConnection(
            config,
            self._deliver,
            self._connection_state,
            filters,
            [f for p in self._discovery_prefixes for f in discovery_filters(p)],
        )
        self.committed_bundles = 0
        self._last: Received | None = None
        self._overlapping = _overlap(filters)

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        self._principal = self._services.auth.principal_for(self.config.tenant)
        self._loop = asyncio.get_running_loop()
        self._load_entities()
        if self.metrics is not None:
            self.metrics.connected.labels(self.config.name).set(0)
        self._task = asyncio.create_task(self._run(), name=f"mqtt-{self.config.name}")
        for state_topic in self._by_state:
            self._connection.subscribe(state_topic)
        self._connection.start()
        log.info(
            "mqtt_listener_started",
            broker=self.config.name,
            tenant=self.config.tenant,
            filters=self._rules.filters,
        )

    async def stop(self) -> None:
        """Stop taking messages, ingest and acknowledge what was received, disconnect.
        Messages that arrive after this point stay unacknowledged: the broker keeps them
        for the next session."""
        with self._lock:
            self._closing = True
            self._lock.notify_all()
        self._wakeup.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, STOP_TIMEOUT_S)
            except TimeoutError:
                log.warning("mqtt_stop_timeout", broker=self.config.name)
        await asyncio.to_thread(self._connection.stop)
        if self.metrics is not None:
            self.metrics.connected.labels(self.config.name).set(0)

    @property
    def connected(self) -> bool:
        return self._connection.connected

    # -- the connection thread's side -------------------------------------------------

    def _deliver(self, item: Received) -> None:
        """Called in the connection thread for every message. Blocks while the buffer is
        full (the broker then holds further messages); drops nothing once closing: an
        unacknowledged message comes again in the next session."""
        with self._lock:
            while len(self._buffer) >= self._max_buffer and not self._closing:
                self._lock.wait(0.5)
            if self._closing:
                return
            self._buffer.append(item)
            size = len(self._buffer)
        if size == 1 or size >= self.config.batch_max_messages:
            loop = self._loop
            if loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(self._wakeup.set)

    def _connection_state(self, connected: bool) -> None:
        if self.metrics is not None:
            self.metrics.connected.labels(self.config.name).set(1 if connected else 0)

    # -- the event loop's side --------------------------------------------------------

    async def _run(self) -> None:
        linger = self.config.linger_ms / 1000
        while True:
            if not self._buffer:
                if self._closing:
                    return
                self._wakeup.clear()
                if not self._buffer:
                    await self._wakeup.wait()
                    continue
            deadline = time.monotonic() + linger
            while len(self._buffer) < self.config.batch_max_messages and not self._closing:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), remaining)
                except TimeoutError:
                    break
            with self._lock:
                count = min(len(self._buffer), self.config.batch_max_messages)
                taken = [self._buffer.popleft() for _ in range(count)]
                self._lock.notify_all()
            if self.metrics is not None:
                self.metrics.buffered.labels(self.config.name).set(len(self._buffer) + count)
            try:
                await self._process(taken)
            except Exception:  # never let one bundle end the listener; nothing is acked
                if self._closing:  # the broker keeps them for the next session
                    log.warning(
                        "mqtt_stopped_unacknowledged",
                        broker=self.config.name,
                        messages=count + len(self._buffer),
                    )
                    return
                log.exception("mqtt_bundle_failed", broker=self.config.name, messages=count)
                await asyncio.sleep(RETRY_MIN_S)
                with self._lock:
                    self._buffer.extendleft(reversed(taken))

    async def _process(self, taken: list[Received]) -> None:
        lines: list[bytes] = []
        topics: set[str] = set()
        outcomes: dict[str, int] = {}
        for item in taken:
            if self._duplicate(item):
                outcomes["duplicate"] = outcomes.get("duplicate", 0) + 1
                continue
            if self._learn(item, outcomes):
                continue
            if item.topic in self._by_state or self._rules.matches(item.topic):
                lines.append(
                    encode_message(item.topic, item.payload, item.received_us, item.retain)
                )
                topics.add(item.topic)
            else:
                outcomes["unmatched"] = outcomes.get("unmatched", 0) + 1
                self._log_unmatched(item.topic)
        if lines:
            await self._ingest(lines, topics, outcomes)
        self._connection.ack(taken)
        self._count(outcomes)
        if self.metrics is not None:
            self.metrics.buffered.labels(self.config.name).set(len(self._buffer))

    def _duplicate(self, item: Received) -> bool:
        """The second copy of a message that matched two overlapping subscriptions (the
        broker sends one copy per subscription, back to back): same topic and payload
        right after the first."""
        last, self._last = self._last, item
        return (
            last is not None
            and last.topic == item.topic
            and last.payload == item.payload
            and last.retain == item.retain
            and 0 <= item.received_us - last.received_us <= DUPLICATE_WINDOW_US
            and self._overlapping
        )

    def _learn(self, item: Received, outcomes: dict[str, int]) -> bool:
        """Learn (or forget) a Home Assistant discovery config; True when it was one."""
        prefix = next((p for p in self._discovery_prefixes if is_config_topic(p, item.topic)), None)
        if prefix is None:
            return False
        try:
            learned = entity_from_config(prefix, item.topic, item.payload)
        except ValueError as exc:
            outcomes["invalid"] = outcomes.get("invalid", 0) + 1
            log.info(
                "mqtt_discovery_invalid", broker=self.config.name, topic=item.topic, reason=str(exc)
            )
            return True
        outcomes["discovery"] = outcomes.get("discovery", 0) + 1
        old = self._entities.pop(item.topic, None)
        if old is not None:
            self._by_state.get(old["state_topic"], {}).pop(item.topic, None)
            if not self._by_state.get(old["state_topic"]):
                self._by_state.pop(old["state_topic"], None)
        if learned is not None:
            self._entities[item.topic] = learned
            self._by_state.setdefault(learned["state_topic"], {})[item.topic] = learned["entity"]
            self._connection.subscribe(learned["state_topic"])
            log.info(
                "mqtt_discovery_learned",
                broker=self.config.name,
                config_topic=item.topic,
                state_topic=learned["state_topic"],
                **learned["entity"],
            )
        self._save_entities()
        return True

    async def _ingest(self, lines: list[bytes], topics: set[str], outcomes: dict[str, int]) -> None:
        params = {"rules": self._rules_json, "broker": self.config.name}
        discovered = {
            topic: list(self._by_state[topic].values())
            for topic in sorted(topics)
            if topic in self._by_state
        }
        if discovered:
            params["discovered"] = orjson.dumps(discovered, option=orjson.OPT_SORT_KEYS).decode()
        body = b"\n".join(lines)
        assert self._principal is not None
        delay = RETRY_MIN_S
        stop_deadline: float | None = None
        while True:
            try:
                result = await self._services.pipeline.ingest(
                    self._principal, PROTOCOL, body, params=params
                )
            except (Overloaded, Unavailable) as exc:
                if self._closing:
                    stop_deadline = stop_deadline or time.monotonic() + STOP_RETRY_S
                    if time.monotonic() > stop_deadline:
                        raise
                wait = max(delay, float(getattr(exc, "retry_after", 0) or 0))
                log.warning(
                    "mqtt_ingest_backpressure",
                    broker=self.config.name,
                    messages=len(lines),
                    retry_in_s=round(wait, 2),
                    reason=exc.detail[:200],
                )
                await asyncio.sleep(min(wait, RETRY_MAX_S))
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            except PayloadTooLarge:
                if len(lines) == 1:
                    self._rejected(outcomes, 1, "a single message holds more points than allowed")
                    return
                half = len(lines) // 2
                await self._ingest(lines[:half], topics, outcomes)
                await self._ingest(lines[half:], topics, outcomes)
                return
            except ValidationFailed as exc:  # nothing in the bundle was usable
                invalid = len(lines) if len(exc.errors) >= MAX_FIELD_ERRORS else len(exc.errors)
                outcomes["invalid"] = outcomes.get("invalid", 0) + invalid
                outcomes["stored"] = outcomes.get("stored", 0) + len(lines) - invalid
                for error in exc.errors[:10]:
                    log.info(
                        "mqtt_message_invalid",
                        broker=self.config.name,
                        loc=error.loc,
                        reason=error.msg[:300],
                    )
                return
            except ServiceError as exc:
                self._rejected(outcomes, len(lines), f"{type(exc).__name__}: {exc.detail[:300]}")
                return
            self.committed_bundles += 1
            outcomes["invalid"] = outcomes.get("invalid", 0) + result.dropped_count
            outcomes["stored"] = outcomes.get("stored", 0) + len(lines) - result.dropped_count
            return

    def _rejected(self, outcomes: dict[str, int], count: int, reason: str) -> None:
        """A refusal that retrying cannot change (a quota, a collision): counted, logged,
        acknowledged, so that it does not block the messages behind it."""
        outcomes["rejected"] = outcomes.get("rejected", 0) + count
        log.error("mqtt_bundle_rejected", broker=self.config.name, messages=count, reason=reason)

    def _count(self, outcomes: dict[str, int]) -> None:
        if self.metrics is None:
            return
        for outcome, count in outcomes.items():
            if count:
                self.metrics.messages.labels(self.config.name, outcome).inc(count)

    def _log_unmatched(self, topic: str) -> None:
        now = time.monotonic()
        if now - self._unmatched_logged.get(topic, -UNMATCHED_LOG_EVERY_S) >= UNMATCHED_LOG_EVERY_S:
            if len(self._unmatched_logged) > 10_000:
                self._unmatched_logged.clear()
            self._unmatched_logged[topic] = now
            log.info("mqtt_message_unmatched", broker=self.config.name, topic=topic[:200])

    # -- learned discovery entities survive restarts ---------------------------------

    def _load_entities(self) -> None:
        path: Path = self._entities_file
        try:
            saved = orjson.loads(path.read_bytes())
        except FileNotFoundError:
            return
        except (OSError, orjson.JSONDecodeError) as exc:
            log.warning("mqtt_discovery_file_unreadable", path=str(path), error=str(exc))
            return
        for config_topic, learned in saved.items():
            self._entities[config_topic] = learned
            self._by_state.setdefault(learned["state_topic"], {})[config_topic] = learned["entity"]

    def _save_entities(self) -> None:
        path = self._entities_file
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(self._entities, option=orjson.OPT_SORT_KEYS))
        tmp.replace(path)
