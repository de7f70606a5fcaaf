"""Prometheus metrics of one service instance (own registry, no globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from .ingest.writer import WriterMetrics


class ServiceMetrics(WriterMetrics):
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.points = Counter(
            "stats_ingest_points",
            "Points accepted, by protocol and tenant.",
            ["protocol", "tenant"],
            registry=r,
        )
        self.batches = Counter(
            "stats_ingest_batches",
            "Requests (batches) accepted, by protocol and tenant.",
            ["protocol", "tenant"],
            registry=r,
        )
        self.rejected = Counter(
            "stats_ingest_rejected",
            "Requests refused (or partly written: reason=partial), by protocol, tenant, reason.",
            ["protocol", "tenant", "reason"],
            registry=r,
        )
        self.rejected_points = Counter(
            "stats_ingest_rejected_points",
            "Points, lines or messages refused or skipped, by protocol and tenant.",
            ["protocol", "tenant"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "stats_http_request_duration_seconds",
            "HTTP request latency.",
            ["method", "route", "status"],
            registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.queue_points = Gauge(
            "stats_writer_queue_points", "Points waiting in the writer queue.", registry=r
        )
        self.commit_seconds = Histogram(
            "stats_writer_commit_duration_seconds",
            "Time of one group commit.",
            registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.committed_points = Counter(
            "stats_writer_committed_points", "Points committed by the writer.", registry=r
        )
        self.retention_deleted = Counter(
            "stats_retention_deleted_points",
            "Points deleted by retention, by tenant.",
            ["tenant"],
            registry=r,
        )
        self.archive_deleted = Counter(
            "stats_archive_deleted_objects",
            "Raw-archive objects deleted by the archive's retention.",
            registry=r,
        )

    def committed(self, items: int, points: int, seconds: float) -> None:
        self.commit_seconds.observe(seconds)
        self.committed_points.inc(points)

    def queue_depth(self, points: int) -> None:
        self.queue_points.set(points)
