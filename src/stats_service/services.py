"""The parts of one running service, built by `create_app` and shared by the routers."""

from __future__ import annotations

from dataclasses import dataclass

from .analytics.realtime import CommitFanout, RealtimeScorer
from .archive.local import LocalArchive
from .auth.service import AuthService
from .config import Settings
from .ingest.pipeline import Pipeline
from .ingest.usage import UsageCounter
from .ingest.writer import Writer
from .jobs import anomaly_scoring, device_analytics  # noqa: F401  (register task kinds)
from .jobs.tasks import InProcessTaskRunner, TaskRunner
from .live.hub import LiveHub
from .metrics import ServiceMetrics
from .storage.embedded import EmbeddedStore
from .storage.stats_api import StatsApiStore


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
    stats_api: StatsApiStore
    tasks: TaskRunner
    live: LiveHub
    scorer: RealtimeScorer | None = None  # real-time anomaly scoring (None: off)

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
        scorer = RealtimeScorer(store, metrics.registry) if settings.realtime_scoring else None
        live = LiveHub(
            metrics.registry,
            queue_bytes=settings.live_queue_bytes,
            max_subscribers=settings.live_max_subscribers,
        )
        writer = Writer(
            store,
            usage,
            archive if settings.archive_enabled else None,
            max_queue_points=settings.queue_max_points,
            commit_max_points=settings.commit_max_points,
            linger_s=settings.commit_linger_ms / 1000,
            metrics=metrics,
            listener=live if scorer is None else CommitFanout(live, scorer),
        )
        pipeline = Pipeline(store, writer, usage, metrics, settings)
        auth = AuthService(store, settings)
        stats_api = StatsApiStore(store)
        tasks = InProcessTaskRunner(
            store, workers=settings.task_workers, max_pending=settings.task_queue_max
        )
        return cls(
            settings,
            store,
            archive,
            auth,
            usage,
            metrics,
            writer,
            pipeline,
            stats_api,
            tasks,
            live,
            scorer,
        )

    def start(self) -> None:
        self.writer.start()
        if self.scorer is not None:
            self.scorer.start()
        self.stats_api.ensure_schema()
        self.tasks.start()  # queues again the tasks a stop or crash left unfinished

    def stop(self) -> None:
        """Let running tasks finish, drain the writer, then close the store (in that
        order: nothing acked is lost)."""
        self.tasks.stop()
        self.writer.stop()
        if self.scorer is not None:
            self.scorer.stop()  # after the writer: the last commits are scored too
        self.store.close()
