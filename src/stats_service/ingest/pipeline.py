"""accept -> parse -> validate -> limits -> archive frame -> writer queue -> ack.

Nothing after the parser knows the wire format. A request is refused whole or
committed whole; the answer comes only after the commit.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio
import orjson
import structlog

from ..archive.envelope import Envelope
from ..config import Settings
from ..errors import (
    BadRequest,
    Conflict,
    FieldError,
    Forbidden,
    LimitExceeded,
    PayloadTooLarge,
    ServiceError,
    Unavailable,
)
from ..metrics import ServiceMetrics
from ..model import Batch, Principal, WriteItem, WriteOutcome
from ..storage.commit import presort
from ..storage.embedded import EmbeddedStore
from ..storage.records import Tenant
from .protocols import PARSERS, ParseContext
from .timestamps import us_to_datetime
from .usage import UsageCounter
from .writer import Writer

log = structlog.get_logger(__name__)
IDEMPOTENCY_NS = uuid.UUID("6f1d2c4e-5b1a-4e1f-9f43-2d0c7a1b9e55")
INLINE_PARSE_BYTES = 16 * 1024
TENANT_TTL_S = 5.0


@dataclass(frozen=True, slots=True)
class IngestResult:
    body: dict[str, object]
    replayed: bool
    points: int = 0
    dropped: list[FieldError] = field(default_factory=list)  # the first lines skipped
    dropped_count: int = 0  # every line or message skipped (lenient formats)


def new_batch_id(now_us: int) -> str:
    """A time-ordered UUID (version 7 layout), so archive listings sort by arrival."""
    ms = now_us // 1000
    raw = bytearray(ms.to_bytes(6, "big") + os.urandom(10))
    raw[6] = (raw[6] & 0x0F) | 0x70
    raw[8] = (raw[8] & 0x3F) | 0x80
    return str(uuid.UUID(bytes=bytes(raw)))


def keyed_batch_id(tenant_id: int, key: str) -> str:
    return str(uuid.uuid5(IDEMPOTENCY_NS, f"{tenant_id}:{key}"))


class Pipeline:
    def __init__(
        self,
        store: EmbeddedStore,
        writer: Writer,
        usage: UsageCounter,
        metrics: ServiceMetrics,
        settings: Settings,
        clock: Callable[[], int] = lambda: time.time_ns() // 1000,
    ) -> None:
        self._store = store
        self._writer = writer
        self._usage = usage
        self._metrics = metrics
        self._settings = settings
        self._clock = clock
        self._known: set[int] = set()
        self._series_counts: dict[int, int] = {}
        self._tenants: dict[int, tuple[float, Tenant]] = {}
        self._inflight: dict[str, str] = {}  # batch id -> body hash of keyed requests
        self._lock = threading.Lock()

    # -- the request path --------------------------------------------------------------

    async def ingest(
        self,
        principal: Principal,
        protocol: str,
        body: bytes,
        *,
        params: dict[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> IngestResult:
        params = params or {}
        if principal.device is not None:
            params = {**params, "device": principal.device}
        tenant = self._tenant(principal.tenant_id)
        try:
            return await self._ingest(tenant, protocol, body, params, idempotency_key)
        except ServiceError as exc:
            refused = max(1, len(exc.errors))
            self._usage.rejected(tenant.id, refused)
            reason = type(exc).__name__
            self._metrics.rejected.labels(protocol, tenant.name, reason).inc()
            self._metrics.rejected_points.labels(protocol, tenant.name).inc(refused)
            log.info(
                "ingest_rejected",
                tenant_id=tenant.id,
                protocol=protocol,
                reason=reason,
                detail=exc.detail[:500],
                batch_id=None,
            )
            raise

    async def _ingest(
        self,
        tenant: Tenant,
        protocol: str,
        body: bytes,
        params: dict[str, str],
        idempotency_key: str | None,
    ) -> IngestResult:
        now_us = self._clock()
        if idempotency_key is None:
            batch_id = new_batch_id(now_us)
            return await self._accept(tenant, protocol, body, params, now_us, batch_id, None, None)
        if not 0 < len(idempotency_key) <= 255:
            raise BadRequest("Idempotency-Key must be 1-255 characters")
        batch_id = keyed_batch_id(tenant.id, idempotency_key)
        body_hash = hashlib.sha256(body).hexdigest()
        # claimed before the store is asked: a first attempt is either still in flight
        # here or already committed there (it leaves only after its commit)
        owner = self._claim(batch_id, body_hash, idempotency_key)
        try:
            stored = self._store.idempotent_response(batch_id)
            if stored is not None:
                return self._replayed(stored, body_hash, idempotency_key)
            return await self._accept(
                tenant, protocol, body, params, now_us, batch_id, idempotency_key, body_hash
            )
        finally:
            if owner:
                with self._lock:
                    self._inflight.pop(batch_id, None)

    def _claim(self, batch_id: str, body_hash: str, key: str) -> bool:
        """Note a keyed request in flight; True when this one is the first. A different
        body under a key still in flight is refused at once (it would be acked as a retry)."""
        with self._lock:
            first = self._inflight.get(batch_id)
            if first is None:
                self._inflight[batch_id] = body_hash
                return True
        if first != body_hash:
            raise self._key_reused(key)
        return False

    async def _accept(
        self,
        tenant: Tenant,
        protocol: str,
        body: bytes,
        params: dict[str, str],
        now_us: int,
        batch_id: str,
        idempotency_key: str | None,
        body_hash: str | None,
    ) -> IngestResult:
        received_at = us_to_datetime(now_us).replace(tzinfo=None)
        envelope = Envelope(
            batch_id, tenant.name, tenant.id, protocol, received_at, params, body, idempotency_key
        )
        if len(body) > INLINE_PARSE_BYTES:
            batch, frame = await anyio.to_thread.run_sync(self._prepare, envelope, now_us)
        else:
            batch, frame = self._prepare(envelope, now_us)
        self._check_device(params.get("device"), batch)
        if not len(batch):  # e.g. only comments: nothing to write, nothing to refuse
            return IngestResult({"batch_id": batch_id, "points": 0}, replayed=False)
        reserved = self._check_limits(tenant, batch)
        response: dict[str, object] = {"batch_id": batch_id, "points": len(batch)}
        item = WriteItem(
            batch=batch,
            batch_id=batch_id,
            received_at=received_at,
            protocol=protocol,
            nbytes=len(body),
            response=response,
            idempotency_key=idempotency_key,
            body_hash=body_hash,
            tenant=tenant.name,
            archive_frame=frame,
        )
        try:
            outcome = await self._wait(item)
        except ServiceError:
            self._unreserve(tenant.id, reserved)
            raise
        if outcome.replayed:
            return IngestResult(dict(outcome.response), replayed=True)
        self._metrics.points.labels(protocol, tenant.name).inc(len(batch))
        self._metrics.batches.labels(protocol, tenant.name).inc()
        log.debug("ingest_committed", batch_id=batch_id, tenant_id=tenant.id, points=len(batch))
        if batch.dropped_count:
            self._count_dropped(tenant, protocol, batch_id, batch)
        return IngestResult(
            response,
            replayed=False,
            points=len(batch),
            dropped=batch.dropped,
            dropped_count=batch.dropped_count,
        )

    def _count_dropped(self, tenant: Tenant, protocol: str, batch_id: str, batch: Batch) -> None:
        """Lines or messages a lenient format skipped while the rest was written."""
        self._usage.rejected(tenant.id, batch.dropped_count)
        self._metrics.rejected.labels(protocol, tenant.name, "partial").inc()
        self._metrics.rejected_points.labels(protocol, tenant.name).inc(batch.dropped_count)
        for error in batch.dropped[:10]:
            log.info(
                "ingest_dropped",
                tenant_id=tenant.id,
                protocol=protocol,
                batch_id=batch_id,
                loc=error.loc,
                reason=error.msg[:300],
            )
        if batch.dropped_count > 10:
            log.info(
                "ingest_dropped_more",
                tenant_id=tenant.id,
                protocol=protocol,
                batch_id=batch_id,
                count=batch.dropped_count - 10,
            )

    @staticmethod
    def _check_device(device: str | None, batch: Batch) -> None:
        """A device key (device token) may write only its own device's series."""
        if device is None:
            return
        for meta in batch.series.values():
            if meta.key.device != device:
                raise Forbidden(
                    f"this key is the device token of {device!r}; it may not write series "
                    f"of {meta.key.device or 'no device'!r}"
                )

    def _prepare(self, envelope: Envelope, now_us: int) -> tuple[Batch, bytes | None]:
        batch = self.parse(envelope, now_us)
        presort(batch)  # here, on the request's thread, so the writer only merges
        frame = (
            envelope.to_frame(self._settings.archive_level)
            if self._settings.archive_enabled
            else None
        )
        return batch, frame

    def parse(self, envelope: Envelope, now_us: int) -> Batch:
        parser = PARSERS.get(envelope.protocol)
        if parser is None:
            raise BadRequest(f"unknown protocol {envelope.protocol!r}")
        params = envelope.params
        precision = params.get("precision")
        ctx = ParseContext(
            tenant_id=envelope.tenant_id,
            now_us=now_us,
            max_future_us=now_us + int(self._settings.future_skew_s * 1_000_000),
            precision=precision,
            params=params,
            device=params.get("device"),
        )
        return parser(envelope.body, ctx)

    def _replayed(self, stored: tuple[str, str], body_hash: str, key: str) -> IngestResult:
        stored_hash, response = stored
        if stored_hash and stored_hash != body_hash:
            raise self._key_reused(key)
        return IngestResult(orjson.loads(response), replayed=True)

    @staticmethod
    def _key_reused(key: str) -> Conflict:
        return Conflict(
            f"Idempotency-Key {key!r} was already used for a different body; "
            "use a new key for new data"
        )

    async def _wait(self, item: WriteItem) -> WriteOutcome:
        future = self._writer.submit(item)
        try:
            return await asyncio.wait_for(
                asyncio.wrap_future(future), timeout=self._settings.ingest_timeout_s
            )
        except TimeoutError:
            raise Unavailable(
                "the write did not complete in time; it may still be committed. Retry with "
                "the same Idempotency-Key to be safe",
                retry_after=5.0,
            ) from None

    # -- limits ------------------------------------------------------------------------

    def _tenant(self, tenant_id: int) -> Tenant:
        now = time.monotonic()
        cached = self._tenants.get(tenant_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        tenant = self._store.get_tenant_by_id(tenant_id)
        if tenant is None:
            raise Unavailable(f"tenant {tenant_id} vanished")
        self._tenants[tenant_id] = (now + TENANT_TTL_S, tenant)
        return tenant

    def forget_tenant(self, tenant_id: int) -> None:
        self._tenants.pop(tenant_id, None)

    def _check_limits(self, tenant: Tenant, batch: Batch) -> list[int]:
        """Refuse a batch over the tenant's limits; returns the new series it reserved."""
        if len(batch) > tenant.max_batch_points:
            raise PayloadTooLarge(
                f"the batch holds {len(batch)} points; tenant {tenant.name!r} accepts at most "
                f"{tenant.max_batch_points} per request: split it"
            )
        with self._lock:
            unknown = [sid for sid in batch.series if sid not in self._known]
        if not unknown:
            return []
        existing = self._store.known_series(unknown)
        for sid, canonical in existing.items():
            mine = batch.series[sid].key.canonical().decode()
            if canonical != mine:
                raise Conflict(
                    f"series {mine} collides with the existing series {canonical} "
                    "(same 64-bit id); rename the metric or a tag"
                )
        new = [sid for sid in unknown if sid not in existing]
        with self._lock:
            count = self._series_counts.get(tenant.id)
            if count is None:
                count = self._store.series_count(tenant.id)
            if count + len(new) > tenant.max_series:
                raise LimitExceeded(
                    f"tenant {tenant.name!r} has {count} series and may have at most "
                    f"{tenant.max_series}; this batch would add {len(new)} new series"
                )
            self._series_counts[tenant.id] = count + len(new)
            self._known.update(unknown)
        return new

    def _unreserve(self, tenant_id: int, reserved: list[int]) -> None:
        """A refused or failed write created no series: count them again from the store."""
        if reserved:
            with self._lock:
                self._known.difference_update(reserved)
                self._series_counts.pop(tenant_id, None)
