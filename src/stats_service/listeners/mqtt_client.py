"""One broker connection on paho-mqtt, in its own thread, with acknowledgements by hand.

aiomqtt 2.5 acknowledges every QoS 1 message when it hands it over (its paho client is
built without `manual_ack`, and nothing public turns it on), which would lose what the
broker sent but the store had not yet committed. paho 2.x has `manual_ack=True` and
`ack(mid, qos)`, so this module drives paho directly: a thread runs its network loop,
sends the acknowledgements the listener queues (only after the commit), subscribes,
and reconnects with capped, jittered exponential backoff. Acks and subscriptions are
queued to that thread, so the socket is only ever touched by it.

A packet id is only meaningful on the connection that delivered it: each message
carries the generation of its connection, and acks of an earlier connection are not
sent (the broker delivers those messages again; the store keeps the last value of a
repeated (series, time)).
"""

from __future__ import annotations

import random
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
import structlog
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from ..ingest.protocols.mqtt_formats.base import filter_covers
from .mqtt_rules import BrokerConfig

log = structlog.get_logger(__name__)
LOOP_TIMEOUT_S = 0.02


@dataclass(frozen=True, slots=True)
class Received:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    mid: int
    generation: int
    received_us: int


class MqttConnection:
    """Connects, subscribes, delivers messages to `deliver` (called in this thread; it
    may block to apply backpressure) and sends the acks queued with `ack`."""

    def __init__(
        self,
        config: BrokerConfig,
        deliver: Callable[[Received], None],
        on_state: Callable[[bool], None],
        filters: list[str],
        always_retained: list[str],
    ) -> None:
        self.config = config
        self._deliver = deliver
        self._on_state = on_state
        self._filters = list(filters)
        self._always_retained = set(always_retained)  # filters whose retained messages we need
        self._acks: deque[tuple[int, int, int]] = deque()  # (generation, mid, qos)
        self._new_filters: deque[str] = deque()
        self._stopping = threading.Event()
        self._generation = 0
        self._attempt = 0
        self._thread: threading.Thread | None = None
        self.connected = False  # connected and subscribed
        self._session_present = False
        self._initial_mid: int | None = None

    # -- called from the event loop ---------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"mqtt-{self.config.name}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Send the queued acks, disconnect (the session stays on the broker), join."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def ack(self, items: list[Received]) -> None:
        for item in items:
            if item.qos > 0:
                self._acks.append((item.generation, item.mid, item.qos))

    def subscribe(self, topic_filter: str) -> None:
        """Add a subscription (a learned state topic); kept across reconnects."""
        self._new_filters.append(topic_filter)

    # -- the connection thread --------------------------------------------------------

    def _client(self) -> paho.Client:
        cfg = self.config
        v5 = cfg.protocol == "5"
        client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=cfg.client_id,
            protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
            clean_session=None if v5 else False,
            reconnect_on_failure=False,
            manual_ack=True,
        )
        if cfg.username is not None:
            client.username_pw_set(cfg.username, cfg.password)
        if cfg.tls:
            context = ssl.create_default_context(cafile=str(cfg.ca_file) if cfg.ca_file else None)
            if cfg.cert_file is not None:
                context.load_cert_chain(
                    str(cfg.cert_file), str(cfg.key_file) if cfg.key_file else None
                )
            if cfg.tls_insecure:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            client.tls_set_context(context)
        generation = self._generation
        client.on_connect = lambda c, _u, flags, rc, _p: self._connected(c, flags, rc)
        client.on_disconnect = lambda _c, _u, _f, rc, _p: self._disconnected(rc)
        client.on_message = lambda _c, _u, m: self._message(m, generation)
        client.on_subscribe = lambda _c, _u, mid, codes, _p: self._subscribed(mid, codes)
        return client

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._generation += 1
            client = self._client()
            try:
                self._connect(client)
            except (OSError, ssl.SSLError, ValueError) as exc:
                log.warning("mqtt_connect_failed", broker=self.config.name, error=str(exc)[:300])
                self._backoff()
                continue
            self._serve(client)
            if self.connected:
                self._set_state(False)
            if not self._stopping.is_set():
                self._backoff()

    def _connect(self, client: paho.Client) -> None:
        cfg = self.config
        log.info("mqtt_connecting", broker=cfg.name, host=cfg.host, port=cfg.port)
        if cfg.protocol == "5":
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = cfg.session_expiry_s
            props.ReceiveMaximum = cfg.receive_maximum
            client.connect(cfg.host, cfg.port, cfg.keepalive, clean_start=False, properties=props)
        else:
            client.connect(cfg.host, cfg.port, cfg.keepalive)

    def _serve(self, client: paho.Client) -> None:
        """Run the network loop until the connection ends or the listener stops."""
        while True:
            self._send_queued(client)
            if self._stopping.is_set():
                break
            rc = client.loop(LOOP_TIMEOUT_S)
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                if rc not in (MQTTErrorCode.MQTT_ERR_NO_CONN, MQTTErrorCode.MQTT_ERR_CONN_LOST):
                    log.info("mqtt_loop_ended", broker=self.config.name, rc=paho.error_string(rc))
                return
        # stopping: flush the last acks, then disconnect without ending the session
        self._send_queued(client)
        for _ in range(5):
            client.loop(LOOP_TIMEOUT_S)
        client.disconnect()
        client.loop(LOOP_TIMEOUT_S)

    def _send_queued(self, client: paho.Client) -> None:
        while self._new_filters:
            topic_filter = self._new_filters.popleft()
            # a topic an existing filter covers would otherwise arrive twice
            if not any(filter_covers(f, topic_filter) for f in self._filters):
                self._filters.append(topic_filter)
                if client.is_connected():
                    client.subscribe([self._subscription(topic_filter)])
        while self._acks:
            generation, mid, qos = self._acks.popleft()
            if generation == self._generation and client.is_connected():
                client.ack(mid, qos)

    def _subscription(self, topic_filter: str) -> tuple[str, Any]:
        if self.config.protocol != "5":
            return topic_filter, 1
        # retained messages again on every resubscribe only where they are needed (the
        # discovery configs); data topics get them once, when the subscription is new
        handling = 0 if topic_filter in self._always_retained else 1
        return topic_filter, SubscribeOptions(qos=1, retainHandling=handling)

    def _connected(self, client: paho.Client, flags: Any, rc: Any) -> None:
        if rc.is_failure:
            log.error("mqtt_connect_refused", broker=self.config.name, reason=str(rc))
            client.disconnect()
            return
        self._attempt = 0
        self._session_present = bool(flags.session_present)
        # one SUBSCRIBE for all filters: its SUBACK marks the connection ready
        _rc, self._initial_mid = client.subscribe([self._subscription(f) for f in self._filters])

    def _disconnected(self, rc: Any) -> None:
        if self.connected and not self._stopping.is_set():
            log.warning("mqtt_disconnected", broker=self.config.name, reason=str(rc))

    def _subscribed(self, mid: int, codes: list[Any]) -> None:
        for code in codes:
            if code.is_failure:
                log.error("mqtt_subscribe_refused", broker=self.config.name, reason=str(code))
        if mid == self._initial_mid:
            self._set_state(True, session_present=self._session_present)

    def _message(self, message: paho.MQTTMessage, generation: int) -> None:
        self._deliver(
            Received(
                message.topic,
                bytes(message.payload),
                message.qos,
                bool(message.retain),
                message.mid,
                generation,
                time.time_ns() // 1000,
            )
        )

    def _set_state(self, connected: bool, **facts: Any) -> None:
        self.connected = connected
        event = "mqtt_connected" if connected else "mqtt_connection_lost"
        log.info(event, broker=self.config.name, client_id=self.config.client_id, **facts)
        self._on_state(connected)

    def _backoff(self) -> None:
        """Wait min(max, min * 2^attempt), jittered to 50-100 %, or until stopped."""
        cfg = self.config
        delay = min(cfg.reconnect_max_s, cfg.reconnect_min_s * 2**self._attempt)
        delay *= random.uniform(0.5, 1.0)
        self._attempt = min(self._attempt + 1, 30)
        log.info("mqtt_reconnect_wait", broker=cfg.name, seconds=round(delay, 2))
        self._stopping.wait(delay)
