"""The rollup job: for every tenant, roll closed buckets up into its tiers, re-aggregate
late writes and trim each tier to its keep (storage/rollups.py does the work).

One transaction per tenant and policy group, so a commit of the writer waits at most for
one group, and a failure leaves every watermark where it was (the next run redoes it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram

from ..config import Settings
from ..storage import rollups
from ..storage.embedded import EmbeddedStore
from ..storage.marks_cache import marks_cache
from ..storage.rollup_policy import Policy, TenantPolicy, parse_text
from .scheduler import Job

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class RollupMetrics:
    rows: Counter
    deleted: Counter
    reaggregated: Counter
    seconds: Histogram

    @classmethod
    def register(cls, registry: CollectorRegistry) -> RollupMetrics:
        return cls(
            Counter(
                "stats_rollup_rows",
                "Rollup rows written by the rollup job, per tier.",
                ["tier"],
                registry=registry,
            ),
            Counter(
                "stats_rollup_deleted_rows",
                "Rows deleted by the rollup policy's keep, per tier (`raw` = points).",
                ["tier"],
                registry=registry,
            ),
            Counter(
                "stats_rollup_reaggregated_rows",
                "Rollup rows rebuilt or merged because late writes touched them, per tier.",
                ["tier"],
                registry=registry,
            ),
            Histogram(
                "stats_rollup_run_seconds",
                "Duration of one run of the rollup job.",
                registry=registry,
            ),
        )


def run_rollups(
    store: EmbeddedStore,
    default: Policy,
    metrics: RollupMetrics | None,
    now_us: int,
    lag_us: int,
) -> rollups.RunCounts:
    """One pass over every tenant; returns (and counts in /metrics) what it did."""
    started = time.perf_counter()
    counts = rollups.RunCounts.empty()
    for tenant in store.list_tenants():
        with store.reader() as cur:
            policy = rollups.load_policy(cur, tenant.id) or TenantPolicy(default)
            groups = rollups.series_policies(cur, tenant.id, policy)
        for group_policy, ids in groups.items():
            try:
                with store.transaction() as con:
                    rollups.maintain(con, ids, group_policy, now_us, lag_us, counts)
            finally:  # committed (or rolled back): reads take the watermarks afresh
                marks_cache(store).changed()
    if metrics is not None:
        for which, counter in (
            (counts.rolled, metrics.rows),
            (counts.deleted, metrics.deleted),
            (counts.reaggregated, metrics.reaggregated),
        ):
            for tier, n in which.items():
                counter.labels(tier).inc(n)
        metrics.seconds.observe(time.perf_counter() - started)
    if counts.rolled or counts.deleted or counts.reaggregated:
        log.info(
            "rollups",
            rolled=counts.rolled,
            deleted=counts.deleted,
            reaggregated=counts.reaggregated,
        )
    return counts


def rollup_job(store: EmbeddedStore, registry: CollectorRegistry, settings: Settings) -> list[Job]:
    """The periodic job, with its counters registered on the service's registry."""
    metrics = RollupMetrics.register(registry)
    default = parse_text(settings.rollup_policy)
    lag_us = int(settings.rollup_lag_s * 1_000_000)

    def run() -> None:
        now_us = int(datetime.now(UTC).timestamp() * 1_000_000)
        run_rollups(store, default, metrics, now_us, lag_us)

    return [Job("rollups", settings.rollup_interval_s, run)]
