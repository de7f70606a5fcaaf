"""Retention: points older than each tenant's retention, stale idempotency keys, old raw archive."""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog

from ..archive import layout
from ..archive.base import Archive
from ..metrics import ServiceMetrics
from ..storage.cold import drop_expired
from ..storage.cold_objects import ColdObjects
from ..storage.embedded import EmbeddedStore

log = structlog.get_logger(__name__)


def apply_retention(
    store: EmbeddedStore,
    metrics: ServiceMetrics,
    now: datetime,
    idempotency_ttl_h: float,
    objects: ColdObjects | None = None,
    archive: Archive | None = None,
    archive_retention_days: int = 0,
) -> dict[str, int]:
    """Delete expired points of every tenant; returns the count deleted per tenant."""
    deleted: dict[str, int] = {}
    for tenant in store.list_tenants():
        cutoff = now - timedelta(days=tenant.retention_days)
        with store.transaction() as con:
            row = con.execute(
                "DELETE FROM points WHERE ts < ? AND series_id IN "
                "(SELECT id FROM series WHERE tenant_id = ?)",
                [cutoff, tenant.id],
            ).fetchall()
            states = con.execute(
                "DELETE FROM states WHERE ts < ? AND series_id IN "
                "(SELECT id FROM series WHERE tenant_id = ?)",
                [cutoff, tenant.id],
            ).fetchall()
        count = (int(row[0][0]) if row else 0) + (int(states[0][0]) if states else 0)
        count += drop_expired(store, tenant.id, cutoff, objects)[1]  # cold days and files
        deleted[tenant.name] = count
        if count:
            metrics.retention_deleted.labels(tenant.name).inc(count)
            log.info(
                "retention_deleted", tenant_id=tenant.id, points=count, before=cutoff.isoformat()
            )
    with store.transaction() as con:
        con.execute(
            "DELETE FROM idempotency WHERE created_at < ?",
            [now - timedelta(hours=idempotency_ttl_h)],
        )
    if archive is not None and archive_retention_days > 0:
        prune_archive(archive, metrics, now, archive_retention_days)
    return deleted


def prune_archive(archive: Archive, metrics: ServiceMetrics, now: datetime, days: int) -> int:
    """Delete the raw archive's whole UTC days older than `days`; returns objects deleted."""
    before = (now - timedelta(days=days)).date()
    removed_days, removed = layout.prune(archive, before)
    if removed:
        metrics.archive_deleted.inc(removed)
        log.info("archive_pruned", days=removed_days, objects=removed, before=before.isoformat())
    return removed
