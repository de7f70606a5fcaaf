"""The StatsD UDP listener: collect datagrams, flush one interval at a time.

Datagrams are only buffered as they arrive. Every `statsd_flush_s` the interval's
datagrams become one body (joined by newlines) that goes through the ingest pipeline as
protocol `statsd`, with the params that make its aggregation a pure function of what is
archived (see `ingest/protocols/statsd.py`). So `replay` rebuilds the same points.

A flush the pipeline cannot take now (429 Overloaded / 503 Unavailable) stays queued and
is sent again, unchanged and under the same Idempotency-Key, before the next interval:
each interval keeps its own timestamp and a retry of a write that did commit is not
stored twice. A flush too large for the tenant's batch limit is split by metric name
(every line of one name stays in one part, so its aggregation does not change). Memory
is bounded by `statsd_max_buffer_bytes` over what is buffered and queued: datagrams
beyond it are dropped, counted and logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import zlib
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client import Counter, Gauge

from ..errors import Overloaded, PayloadTooLarge, ServiceError, Unavailable
from ..ingest.protocols.statsd import (
    GaugeKey,
    decode_gauges,
    encode_gauges,
    gauge_updates,
    sanitize_name,
    split_lines,
)

if TYPE_CHECKING:
    from ..services import Services

log = structlog.get_logger(__name__)
PROTOCOL = "statsd"
MAX_GAUGES = 100_000  # gauge values carried between intervals (for +N / -N)
HASH_BITS = 32  # a flush splits by the bits of crc32(name), one bit per split
INLINE_PREPARE_BYTES = 64 * 1024
STOP_RETRIES = 3  # a flush refused for now (429/503) at shutdown is tried this often more
STOP_RETRY_S = 0.5
DRAIN_ROUNDS = 100_000
RECEIVE_BUFFER_BYTES = 8 * 1024 * 1024


@dataclass(slots=True)
class _Flush:
    """One request to the pipeline: (part of) one interval, sent until it is settled."""

    body: bytes
    params: dict[str, str]
    key: str
    lines: int
    depth: int = 0
    attempts: int = 0


class _Receiver(asyncio.DatagramProtocol):
    def __init__(self, listener: StatsdListener) -> None:
        self._listener = listener

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self._listener.received(data)

    def error_received(self, exc: Exception) -> None:
        log.warning("statsd_socket_error", error=str(exc))


class StatsdListener:
    name = "statsd"

    def __init__(self, services: Services) -> None:
        self._services = services
        s = services.settings
        self._host, self._port = s.statsd_host, s.statsd_port
        self._flush_s = s.statsd_flush_s
        self._cap = s.statsd_max_buffer_bytes
        self._percentiles = s.statsd_percentiles
        self._buffer: list[bytes] = []
        self._held = 0  # bytes buffered + queued in `_pending`
        self._pending: deque[_Flush] = deque()
        self._gauges: dict[GaugeKey, float] = {}
        self._interval_start_us = _now_us()
        self._datagrams = 0
        self._overflow_packets = 0
        self._overflow_bytes = 0
        self._transport: asyncio.DatagramTransport | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        registry = services.metrics.registry
        self.packets = Counter(
            "stats_statsd_packets",
            "StatsD datagrams received: buffered, or dropped because the buffer was full.",
            ["outcome"],
            registry=registry,
        )
        self.lines = Counter(
            "stats_statsd_lines",
            "StatsD lines flushed, by outcome: written, dropped (malformed or unsupported, "
            "skipped while the rest was written), refused (their flush was refused whole), "
            "lost (not written when the listener stopped).",
            ["outcome"],
            registry=registry,
        )
        self.flushes = Counter(
            "stats_statsd_flushes",
            "StatsD flush requests, by outcome: ok, retry (kept and sent again), split "
            "(too large, sent in parts), refused, lost.",
            ["outcome"],
            registry=registry,
        )
        self.held_bytes = Gauge(
            "stats_statsd_buffer_bytes",
            "StatsD bytes received and not yet written (buffered and queued flushes).",
            registry=registry,
        )

    @property
    def address(self) -> tuple[str, int]:
        """Where the socket listens (the real port when `statsd_port` is 0)."""
        if self._transport is None:
            return self._host, self._port
        host, port = self._transport.get_extra_info("sockname")[:2]
        return str(host), int(port)

    async def start(self) -> None:
        tenant = self._services.settings.statsd_tenant
        try:
            self._services.auth.tenant(tenant)
        except ServiceError as exc:
            raise ValueError(f"STATS_STATSD_TENANT={tenant}: {exc.detail}") from exc
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _Receiver(self), local_addr=(self._host, self._port)
            )
        except OSError as exc:
            raise OSError(
                exc.errno,
                f"StatsD listener cannot bind udp://{self._host}:{self._port}: {exc.strerror}; "
                "set STATS_STATSD_PORT to a free port or STATS_STATSD_ENABLED=false",
            ) from exc
        self._transport = transport
        receive_buffer = _grow_receive_buffer(transport)
        self._interval_start_us = _now_us()
        self._task = asyncio.create_task(self._run(), name="statsd-flush")
        host, port = self.address
        log.info(
            "statsd_listening",
            host=host,
            port=port,
            flush_s=self._flush_s,
            receive_buffer_bytes=receive_buffer,
        )

    async def stop(self) -> None:
        """Close the socket first (nothing arrives after), then flush everything held."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._transport is not None:
            await self._drain_socket()
            self._transport.close()
            self._transport = None
        await self.flush()
        for _ in range(STOP_RETRIES):
            if not self._pending:
                break
            await asyncio.sleep(STOP_RETRY_S)
            await self.flush()
        lost = sum(item.lines for item in self._pending)
        if lost:
            self.lines.labels("lost").inc(lost)
            self.flushes.labels("lost").inc(len(self._pending))
            log.error("statsd_lost_at_stop", lines=lost, flushes=len(self._pending))
            self._pending.clear()
            self._held = 0
            self.held_bytes.set(0)

    async def _drain_socket(self) -> None:
        """Let the event loop read what the kernel already holds for the socket (one
        datagram per readiness callback) until a round brings nothing new."""
        for _ in range(DRAIN_ROUNDS):
            before = self._datagrams
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            if self._datagrams == before:
                return

    # -- receiving ---------------------------------------------------------------------

    def received(self, data: bytes) -> None:
        self._datagrams += 1
        if self._held + len(data) > self._cap:
            self._overflow_packets += 1
            self._overflow_bytes += len(data)
            self.packets.labels("dropped").inc()
            return
        self._buffer.append(data)
        self._held += len(data)
        self.packets.labels("buffered").inc()

    # -- flushing ----------------------------------------------------------------------

    async def _run(self) -> None:
        next_at = time.monotonic() + self._flush_s
        while True:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            next_at = max(next_at + self._flush_s, time.monotonic())
            try:
                # shielded: stop() cancels this loop, never a flush halfway (its buffer
                # taken, its request not yet queued); stop's own flush waits for it
                await asyncio.shield(self.flush())
            except Exception:  # a bug must not end the flushing for good
                log.exception("statsd_flush_failed")

    async def flush(self) -> None:
        """Close the current interval and send every queued flush, oldest first."""
        async with self._lock:
            if self._overflow_packets:
                log.warning(
                    "statsd_buffer_full",
                    dropped_packets=self._overflow_packets,
                    dropped_bytes=self._overflow_bytes,
                    max_buffer_bytes=self._cap,
                )
                self._overflow_packets = self._overflow_bytes = 0
            flush_us = _now_us()
            buffer, self._buffer = self._buffer, []
            if buffer:
                body = b"\n".join(buffer)
                interval_s = max(flush_us - self._interval_start_us, 1) / 1_000_000
                if len(body) > INLINE_PREPARE_BYTES:
                    item = await asyncio.to_thread(self._prepare, body, flush_us, interval_s)
                else:
                    item = self._prepare(body, flush_us, interval_s)
                self._held += len(item.body) - sum(len(b) for b in buffer)
                self._pending.append(item)
            self._interval_start_us = flush_us
            await self._send_pending()
            self.held_bytes.set(self._held)

    def _prepare(self, body: bytes, flush_us: int, interval_s: float) -> _Flush:
        """The request of one interval; the gauges it sets are carried on at once (a
        queued flush is sent again until it is settled, so later intervals build on it)."""
        needed, updated = gauge_updates(body, self._gauges)
        params = {
            "flush_us": str(flush_us),
            "interval_s": repr(interval_s),
            "percentiles": self._percentiles,
        }
        if needed:
            params["gauges"] = encode_gauges(needed)
        self._carry(updated)
        lines = sum(1 for _ in split_lines(body))
        return _Flush(body, params, f"statsd:{self._host}:{self._port}:{flush_us}", lines)

    def _carry(self, updated: dict[GaugeKey, float]) -> None:
        for key, value in updated.items():
            self._gauges.pop(key, None)  # re-inserted last: the dict is oldest-first
            self._gauges[key] = value
        excess = len(self._gauges) - MAX_GAUGES
        if excess > 0:
            for key in list(self._gauges)[:excess]:
                del self._gauges[key]
            log.warning("statsd_gauges_forgotten", count=excess, kept=MAX_GAUGES)

    async def _send_pending(self) -> None:
        services = self._services
        while self._pending:
            item = self._pending[0]
            try:
                principal = services.auth.principal_for(services.settings.statsd_tenant)
                result = await services.pipeline.ingest(
                    principal, PROTOCOL, item.body, params=item.params, idempotency_key=item.key
                )
            except (Overloaded, Unavailable) as exc:
                item.attempts += 1
                self.flushes.labels("retry").inc()
                log.warning(
                    "statsd_flush_retry",
                    reason=type(exc).__name__,
                    detail=exc.detail[:300],
                    attempts=item.attempts,
                    queued=len(self._pending),
                )
                return
            except PayloadTooLarge as exc:
                self._pending.popleft()
                parts = _split(item)
                if parts:
                    self.flushes.labels("split").inc()
                    log.info("statsd_flush_split", lines=item.lines, parts=len(parts))
                    for part in reversed(parts):
                        self._pending.appendleft(part)
                    self._held += sum(len(p.body) for p in parts) - len(item.body)
                    continue
                self._refused(item, exc)
            except ServiceError as exc:
                self._pending.popleft()
                self._refused(item, exc)
            except Exception as exc:  # a bug: let this flush go rather than block the rest
                self._pending.popleft()
                log.exception("statsd_flush_error", lines=item.lines)
                self._refused(item, ServiceError(f"internal error: {exc!r}"))
            else:
                self._pending.popleft()
                dropped = min(result.dropped_count, item.lines)  # (aggregates may be too)
                self.flushes.labels("ok").inc()
                self.lines.labels("written").inc(item.lines - dropped)
                if dropped:
                    self.lines.labels("dropped").inc(dropped)
            self._held -= len(item.body)

    def _refused(self, item: _Flush, exc: ServiceError) -> None:
        """A flush the pipeline will never take (e.g. only malformed lines, a tenant
        limit): counted and logged with the reason, then let go."""
        self.flushes.labels("refused").inc()
        self.lines.labels("refused").inc(item.lines)
        log.warning(
            "statsd_flush_refused",
            reason=type(exc).__name__,
            detail=exc.detail[:500],
            lines=item.lines,
            flush_us=item.params["flush_us"],
        )


def _split(item: _Flush) -> list[_Flush]:
    """Two halves by the first bit (from `item.depth` on) of the hash of each line's
    metric name that tells them apart: all lines of one name stay together, so each half
    aggregates exactly as the whole did. Empty when no bit does (a single name)."""
    hashed = [
        (
            zlib.crc32(sanitize_name(line.split(b":", 1)[0].decode("utf-8", "replace")).encode()),
            line,
        )
        for _, line in split_lines(item.body)
    ]
    for depth in range(item.depth, HASH_BITS):
        halves: list[list[bytes]] = [[], []]
        for crc, line in hashed:
            halves[(crc >> depth) & 1].append(line)
        if halves[0] and halves[1]:
            break
    else:
        return []
    carried = decode_gauges(item.params.get("gauges"))
    parts = []
    for bit, lines in enumerate(halves):
        body = b"\n".join(lines)
        params = {k: v for k, v in item.params.items() if k != "gauges"}
        needed, _ = gauge_updates(body, carried)
        if needed:
            params["gauges"] = encode_gauges(needed)
        parts.append(_Flush(body, params, f"{item.key}/{bit}", len(lines), depth + 1))
    return parts


def _grow_receive_buffer(transport: asyncio.DatagramTransport) -> int:
    """Ask the kernel for a large receive buffer, so that bursts wait there while the
    event loop is busy rather than being lost (the kernel caps it at net.core.rmem_max;
    raise that for heavy StatsD traffic). Returns the size granted."""
    sock = transport.get_extra_info("socket")
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
    return int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))


def _now_us() -> int:
    return time.time_ns() // 1000
