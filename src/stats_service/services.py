"""The parts of one running service, built by `create_app` and shared by the routers."""

from __future__ import annotations

from dataclasses import dataclass

from .archive.local import LocalArchive
from .auth.service import AuthService
from .config import Settings
from .ingest.pipeline import Pipeline
from .ingest.usage import UsageCounter
from .ingest.writer import Writer
from .metrics import ServiceMetrics
from .storage.embedded import EmbeddedStore


@dataclass(slots=True)
class Services:
    settings: Settings
    store: EmbeddedStore
    archive: LocalArchive
    auth: AuthService
    usage: UsageCounter
    metrics: ServiceMetrics
    writer: Writer
    pipeline: Pipeline

    @classmethod
    def build(cls, settings: Settings) -> Services:
        store = EmbeddedStore(
            settings.db_path,
            memory_limit=settings.duckdb_memory_limit,
            threads=settings.duckdb_threads,
        )
        archive = LocalArchive(settings.data_dir)
        usage = UsageCounter()
        metrics = ServiceMetrics()
        writer = Writer(
            store,
            usage,
            archive if settings.archive_enabled else None,
            max_queue_points=settings.queue_max_points,
            commit_max_points=settings.commit_max_points,
            linger_s=settings.commit_linger_ms / 1000,
            metrics=metrics,
        )
        pipeline = Pipeline(store, writer, usage, metrics, settings)
        auth = AuthService(store, settings)
        return cls(settings, store, archive, auth, usage, metrics, writer, pipeline)

    def start(self) -> None:
        self.writer.start()

    def stop(self) -> None:
        """Drain the writer, then close the store (in that order: nothing acked is lost)."""
        self.writer.stop()
        self.store.close()
