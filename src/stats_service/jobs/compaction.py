"""The periodic compaction job: sort closed dirty days, move old days to the cold tier.

One run handles every pending partition, oldest first, one transaction each (so a run
interrupted by a shutdown or a crash has finished some partitions and left the others
dirty for the next run). A closed day older than `cold_after_days` goes straight to its
Parquet file (sorted there); other closed dirty days are rewritten sorted in place.
With a bucket configured, a day whose upload fails stays hot and is tried again next run
(the other days of the run go on).

A run that compacted or moved something then checks the database file: when its free
blocks pass both reclaim thresholds (`reclaim_min_free_mb`, `reclaim_min_free_ratio`),
the file is rewritten without them (`EmbeddedStore.reclaim`, docs/storage.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import structlog
from prometheus_client import CollectorRegistry, Counter

from ..config import Settings
from ..storage import cold, compaction, partitions
from ..storage.cold_objects import ColdObjectError, ColdObjects
from ..storage.embedded import EmbeddedStore, ReclaimReport, StoreBusy
from .scheduler import Job

log = structlog.get_logger(__name__)


class CompactionMetrics:
    """Counters of the compaction job, on the service's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.rows = Counter(
            "stats_compaction_rows", "Points rewritten sorted by compaction.", registry=registry
        )
        self.partitions = Counter(
            "stats_compaction_partitions",
            "Partitions (tenant, day) compacted, by tier written.",
            ["tier"],
            registry=registry,
        )
        self.cold_files = Counter(
            "stats_cold_files", "Parquet files written to the cold tier.", registry=registry
        )
        self.cold_bytes = Counter(
            "stats_cold_bytes",
            "Bytes of Parquet files written to the cold tier.",
            registry=registry,
        )
        self.cold_rows = Counter(
            "stats_cold_rows", "Points written to cold-tier files.", registry=registry
        )
        self.reclaim_runs = Counter(
            "stats_reclaim_runs",
            "Rewrites of the database file to give free blocks back, by result "
            "(done, skipped, aborted).",
            ["result"],
            registry=registry,
        )
        self.reclaim_bytes = Counter(
            "stats_reclaim_bytes",
            "Bytes the database file shrank by in reclaims.",
            registry=registry,
        )
        self.reclaim_seconds = Counter(
            "stats_reclaim_seconds",
            "Seconds spent in reclaims (writes and reads wait meanwhile).",
            registry=registry,
        )
        self.cold_upload_failures = Counter(
            "stats_cold_upload_failures",
            "Cold days not moved because the upload to the bucket failed (retried next run).",
            registry=registry,
        )


@dataclass
class CompactionReport:
    compacted: int = 0
    moved: int = 0
    rows: int = 0
    cold_bytes: int = 0
    days: list[str] = field(default_factory=list)
    reclaim: ReclaimReport | None = None


@dataclass
class Compactor:
    store: EmbeddedStore
    metrics: CompactionMetrics
    delay: timedelta
    cold_dir: Path
    cold_after_days: int  # 0: no cold tier
    objects: ColdObjects | None = None  # the bucket, when configured
    reclaim_min_free_mb: float = 0.0  # 0: never reclaim
    reclaim_min_free_ratio: float = 0.0  # 0: never reclaim
    reclaim_busy_timeout_s: float = 5.0

    def reconcile(self) -> dict[str, int]:
        return cold.reconcile(self.store, self.cold_dir, self.objects)

    def run(self, now: datetime | None = None) -> CompactionReport:
        now = now or datetime.now(UTC).replace(tzinfo=None)
        report = CompactionReport()
        cold_before = (now - timedelta(days=self.cold_after_days)).date()
        with self.store.reader() as cur:
            pending = partitions.closed_dirty(cur, now, self.delay)
            if self.cold_after_days > 0:
                seen = {(p.tenant_id, p.day) for p in pending}
                pending += [
                    p
                    for p in partitions.hot_before(cur, cold_before, now, self.delay)
                    if (p.tenant_id, p.day) not in seen
                ]
        pending.sort(key=lambda p: (p.day, p.tenant_id))
        for part in pending:
            if self.store.closed:
                break
            to_cold = part.tier == "cold" or (self.cold_after_days > 0 and part.day < cold_before)
            if to_cold:
                try:
                    moved = cold.export_partition(
                        self.store, self.cold_dir, part, now, self.objects
                    )
                except ColdObjectError as exc:  # rows stay hot; next run tries again
                    self.metrics.cold_upload_failures.inc()
                    log.error(
                        "cold_upload_failed",
                        tenant_id=part.tenant_id,
                        day=part.day.isoformat(),
                        error=str(exc),
                    )
                    continue
                report.moved += 1
                report.rows += moved.rows
                report.cold_bytes += moved.bytes
                if moved.rows:
                    self.metrics.cold_files.inc()
                    self.metrics.cold_bytes.inc(moved.bytes)
                    self.metrics.cold_rows.inc(moved.rows)
                self.metrics.partitions.labels("cold").inc()
            else:
                done = compaction.compact_partition(self.store, part, now)
                report.compacted += 1
                report.rows += done.rows_after
                self.metrics.rows.inc(done.rows_after)
                self.metrics.partitions.labels("hot").inc()
            report.days.append(f"{part.tenant_id}/{part.day.isoformat()}")
        if (report.compacted or report.moved) and not self.store.closed:
            report.reclaim = self.maybe_reclaim()
        return report

    def maybe_reclaim(self) -> ReclaimReport | None:
        """Rewrite the file when its free blocks pass both thresholds; None otherwise."""
        if self.reclaim_min_free_mb <= 0 or self.reclaim_min_free_ratio <= 0:
            return None
        try:
            size = self.store.database_size(
                checkpoint=True, busy_timeout_s=self.reclaim_busy_timeout_s
            )
        except (duckdb.Error, StoreBusy) as exc:  # busy, closed meanwhile, failed checkpoint
            log.warning("reclaim_size_unknown", error=str(exc))
            self.metrics.reclaim_runs.labels("skipped").inc()
            return None
        if (
            size.free_bytes < self.reclaim_min_free_mb * 1024 * 1024
            or size.free_ratio < self.reclaim_min_free_ratio
        ):
            return None
        done = self.store.reclaim(busy_timeout_s=self.reclaim_busy_timeout_s)
        self.metrics.reclaim_runs.labels(done.status.split(":")[0]).inc()
        self.metrics.reclaim_seconds.inc(done.seconds)
        self.metrics.reclaim_bytes.inc(done.reclaimed_bytes)
        return done


def compaction_job(
    store: EmbeddedStore,
    registry: CollectorRegistry,
    settings: Settings,
    objects: ColdObjects | None = None,
) -> list[Job]:
    """The job list entry for `Scheduler` (empty when disabled). Reconciles the cold
    directory first, before anything can write to it."""
    if not settings.compaction_enabled:
        return []
    compactor = Compactor(
        store,
        CompactionMetrics(registry),
        timedelta(seconds=settings.compaction_delay_s),
        settings.cold_path,
        settings.cold_after_days,
        objects,
        settings.reclaim_min_free_mb,
        settings.reclaim_min_free_ratio,
        settings.reclaim_busy_timeout_s,
    )
    compactor.reconcile()
    return [Job("compaction", settings.compaction_interval_s, compactor.run)]
