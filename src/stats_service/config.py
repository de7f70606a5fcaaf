"""The one settings object. Built once at the edge (CLI) and passed in explicitly.

Every field has a description; `.env.example` and `docs/configuration.md` list them all
(a test checks that), and each is settable as an environment variable `STATS_<NAME>`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import ValidationFailed
from .storage.rollup_policy import parse_text


class Settings(BaseSettings):
    """Configuration of one StatisticsService process."""

    model_config = SettingsConfigDict(
        env_prefix="STATS_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    host: str = Field("127.0.0.1", description="Address the HTTP server listens on.")
    port: int = Field(8000, ge=0, le=65535, description="TCP port of the HTTP server.")
    public_url: str | None = Field(
        None,
        pattern=r"^https?://[^\s\"'<>]+$",
        description="Base URL at which clients reach the API (e.g. https://stats.example.org); "
        "the dashboard calls the API there and shows it in its examples. Default: the "
        "address the dashboard was loaded from.",
    )
    data_dir: Path = Field(
        Path("./data"),
        description="Directory holding the embedded database, the raw archive and run files.",
    )
    admin_key: str | None = Field(
        None,
        description=(
            "Admin API key of the `default` tenant, installed on first start. When unset a "
            "random key is generated and printed once."
        ),
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Lowest level of log lines written."
    )
    log_format: Literal["json", "console"] = Field(
        "json", description="`json` for one JSON object per line, `console` for humans."
    )
    max_body_bytes: int = Field(
        10 * 1024 * 1024, ge=1024, description="Largest accepted request body in bytes (413 above)."
    )
    max_batch_points: int = Field(
        100_000,
        ge=1,
        description="Default per-tenant limit on points in one ingest request (413 above).",
    )
    max_series: int = Field(
        100_000, ge=1, description="Default per-tenant limit on the number of series (422 above)."
    )
    retention_days: int = Field(
        30, ge=1, description="Default per-tenant retention of points, in days."
    )
    retention_interval_s: float = Field(
        3600.0, gt=0, description="Seconds between two runs of the retention job."
    )
    future_skew_s: float = Field(
        600.0,
        ge=0,
        description="How far in the future (seconds) a timestamp may lie before it is refused.",
    )
    queue_max_points: int = Field(
        2_000_000,
        ge=1000,
        description="Points the writer queue holds at most; above this ingest answers 429.",
    )
    commit_max_points: int = Field(
        250_000, ge=1, description="Most points the writer commits in one transaction."
    )
    commit_linger_ms: float = Field(
        2.0,
        ge=0,
        description="How long the writer waits for more batches before committing a group.",
    )
    ingest_timeout_s: float = Field(
        30.0, gt=0, description="How long an ingest request waits for its commit (503 after)."
    )
    idempotency_ttl_h: float = Field(
        24.0, gt=0, description="Hours an Idempotency-Key and its response are remembered."
    )
    archive_enabled: bool = Field(
        True, description="Keep every accepted payload, compressed, in the raw archive."
    )
    archive_level: int = Field(3, ge=1, le=22, description="zstd level of the raw archive.")
    archive_retention_days: int = Field(
        7,
        ge=0,
        description="Days of raw payloads the archive keeps for `replay` (0: keep forever). "
        "Whole UTC days older than this are deleted by the retention job.",
    )
    duckdb_memory_limit: str = Field(
        "1GB", description="Memory limit of the embedded DuckDB database (e.g. `512MB`, `2GB`)."
    )
    duckdb_threads: int = Field(
        2, ge=1, description="Threads the embedded DuckDB database uses for one query."
    )
    metrics_public: bool = Field(
        True,
        description=(
            "Serve /metrics without a key. It shows tenant names and counts; set false to "
            "require an admin key of the `default` tenant (Prometheus: `authorization`)."
        ),
    )
    export_batch_rows: int = Field(
        50_000, ge=1000, description="Rows per chunk when streaming an export."
    )
    task_workers: int = Field(
        2,
        ge=1,
        le=64,
        description="Threads running asynchronous tasks (analytics of the stats API, "
        "docs/stats-api.md).",
    )
    task_queue_max: int = Field(
        1000,
        ge=1,
        description="Asynchronous tasks queued or running at most; more are refused with 429.",
    )
    demo_devices: int = Field(3, ge=1, le=100, description="Virtual boards run by `demo`.")
    demo_interval_s: float = Field(
        1.0, gt=0, description="Seconds between two readings of a demo board."
    )
    demo_history_h: float = Field(
        24.0,
        ge=0,
        le=24 * 31,
        description="Hours of past readings (one a minute) each demo board sends the first "
        "time it runs, as a board that buffered while offline, so charts have history at "
        "once; 0: none.",
    )

    # -- InfluxDB line protocol (docs/protocols/influxdb.md) ---------------------------
    influx_auto_create: bool = Field(
        True,
        description="Create an InfluxDB database/bucket name on its first write; when false, "
        "writes to an unknown name get 404 `database not found`.",
    )

    # -- StatsD (docs/protocols/statsd.md) ---------------------------------------------
    statsd_enabled: bool = Field(False, description="Run the StatsD UDP listener.")
    statsd_host: str = Field("127.0.0.1", description="Address of the StatsD UDP listener.")
    statsd_port: int = Field(8125, ge=0, le=65535, description="UDP port of StatsD.")
    statsd_flush_s: float = Field(
        10.0, gt=0, description="Seconds between two StatsD flushes into series."
    )
    statsd_tenant: str = Field("default", description="Tenant that StatsD metrics go to.")
    statsd_percentiles: str = Field(
        "50,90,95,99",
        description="Percentiles of StatsD timers and histograms, comma-separated "
        "(`99.9` becomes the series `<name>.p99_9`); empty for none.",
    )
    statsd_max_buffer_bytes: int = Field(
        64 * 1024 * 1024,
        ge=65536,
        description="StatsD datagrams held in memory at most (received and not yet written); "
        "datagrams above this are dropped and counted.",
    )

    @field_validator("statsd_percentiles")
    @classmethod
    def _statsd_percentiles_valid(cls, value: str) -> str:
        from .ingest.protocols.statsd import parse_percentiles

        parse_percentiles(value)  # a ValueError names the bad percentile
        return value

    # -- MQTT subscriber (docs/protocols/mqtt.md) --------------------------------------
    mqtt_config: Path | None = Field(
        None,
        description="TOML file with MQTT brokers and topic rules; see docs/protocols/mqtt.md.",
    )
    mqtt_url: str | None = Field(
        None,
        description="One broker to subscribe to without a config file, e.g. "
        "mqtt://user:pass@127.0.0.1:1883 or mqtts://... (uses `mqtt_presets`).",
    )
    mqtt_presets: str = Field(
        "stats,tasmota,esphome,homeassistant_statestream,homeassistant_discovery,thingsboard",
        description="Built-in topic rules used with `mqtt_url`, comma-separated.",
    )
    mqtt_tenant: str = Field("default", description="Tenant that `mqtt_url` messages go to.")

    # -- Home Assistant WebSocket (docs/protocols/homeassistant.md) --------------------
    homeassistant_url: str | None = Field(
        None,
        description="Home Assistant base URL (http://homeassistant.local:8123) to follow "
        "`state_changed` events over its WebSocket API.",
    )
    homeassistant_token: str | None = Field(
        None, description="Long-lived access token of the Home Assistant user."
    )
    homeassistant_tenant: str = Field(
        "default", description="Tenant that Home Assistant states go to."
    )
    homeassistant_entities: str = Field(
        "",
        description="Entities to follow, comma-separated glob patterns such as "
        "`sensor.*,climate.living_room`; empty follows every entity.",
    )
    homeassistant_backfill_max_h: float = Field(
        24.0,
        ge=0,
        description="After a reconnect, fill the gap from Home Assistant's history, reaching "
        "back at most this many hours (0: no backfill).",
    )
    homeassistant_ping_s: float = Field(
        30.0, gt=0, description="Seconds between two pings; no pong by the next one reconnects."
    )
    homeassistant_reconnect_min_s: float = Field(
        1.0, gt=0, description="First wait before reconnecting to Home Assistant (then doubled)."
    )
    homeassistant_reconnect_max_s: float = Field(
        60.0, gt=0, description="Longest wait between two reconnection attempts."
    )
    homeassistant_linger_ms: float = Field(
        100.0, ge=0, description="Home Assistant events are grouped this long into one write."
    )

    # -- partitions, compaction and the cold tier (docs/storage.md) ----------------------
    compaction_enabled: bool = Field(
        True, description="Run the compaction job (sorts closed days, moves old days to cold)."
    )
    compaction_delay_s: float = Field(
        3600.0,
        ge=0,
        description="A UTC day is compacted once its end is this many seconds in the past.",
    )
    compaction_interval_s: float = Field(
        600.0, gt=0, description="Seconds between two runs of the compaction job."
    )
    reclaim_min_free_mb: float = Field(
        32.0,
        ge=0,
        description="After a compaction run, rewrite the database file to give its free "
        "blocks back to the disk once they are at least this many MiB (0: never).",
    )
    reclaim_min_free_ratio: float = Field(
        0.5,
        ge=0,
        le=1,
        description="The free blocks must also be at least this share of all blocks of "
        "the file for that rewrite (0: never).",
    )
    reclaim_busy_timeout_s: float = Field(
        5.0,
        gt=0,
        description="How long a reclaim waits for open reads before it gives up until the "
        "next compaction run (reads and writes wait meanwhile).",
    )
    cold_after_days: int = Field(
        0,
        ge=0,
        description="Days older than this move to Parquet files in `cold_dir` (0: never).",
    )
    cold_dir: Path | None = Field(
        None, description="Directory of the cold tier's Parquet files (default: <data_dir>/cold)."
    )
    cold_s3_bucket: str | None = Field(
        None,
        description="S3-compatible bucket for cold files (unset: cold files stay in `cold_dir`).",
    )
    cold_s3_endpoint_url: str | None = Field(
        None, description="Endpoint URL of the S3-compatible server (unset: AWS S3)."
    )
    cold_s3_prefix: str = Field("stats", description="Key prefix of cold files in the bucket.")
    cold_s3_region: str = Field("us-east-1", description="Region of the bucket.")
    cold_s3_access_key_id: str | None = Field(
        None, description="Access key id (unset: the usual AWS credential chain)."
    )
    cold_s3_secret_access_key: SecretStr | None = Field(
        None, description="Secret access key belonging to `cold_s3_access_key_id`."
    )
    cold_s3_cache_dir: Path | None = Field(
        None,
        description="Local cache of cold objects read back (default: <data_dir>/cold-cache).",
    )
    cold_s3_cache_mb: float = Field(
        1024.0, gt=0, description="Size bound of the cold object cache, in MiB (LRU eviction)."
    )

    # -- rollup tiers (docs/storage-rollups.md) ------------------------------------------
    rollup_policy: str = Field(
        "raw 30d -> 1m 90d -> 1h forever",
        description="Default rollup policy of tenants without their own: `raw <keep>` then "
        "`<resolution> <keep>` tiers, each a multiple of the one before; keep `forever` or "
        "a duration. `raw forever` with no tiers turns rollups off.",
    )
    rollup_interval_s: float = Field(
        300.0, gt=0, description="Seconds between two runs of the rollup job."
    )
    rollup_lag_s: float = Field(
        60.0,
        ge=0,
        description="A bucket is rolled up once its end is this many seconds in the past "
        "(later writes into it are re-aggregated, but cost more).",
    )
    # -- live feed, WS /v1/live (docs/live.md) -------------------------------------------
    live_max_subscribers: int = Field(
        1000,
        ge=0,
        description="Live-feed subscribers one process serves at once; more are closed with "
        "code 1013 (try again later). 0 turns the live feed off.",
    )
    live_queue_bytes: int = Field(
        4 * 1024 * 1024,
        ge=64 * 1024,
        description="Bytes of messages one live subscriber may have waiting; past that it is "
        "closed with code 4008 (too slow) and its messages are dropped.",
    )
    live_keepalive_s: float = Field(
        20.0,
        gt=0,
        description="A live subscriber that was sent nothing for this many seconds gets a "
        '`{"type": "ping"}` message (a client may ask for another interval).',
    )

    # -- analytics (docs/analytics.md) ----------------------------------------------------
    model_dir: Path | None = Field(
        None, description="Directory of trained detector models (default: <data_dir>/models)."
    )
    scoring_interval_s: float = Field(
        3600.0,
        gt=0,
        description="Seconds between two runs of scheduled anomaly scoring (a tenant may set "
        "its own interval).",
    )
    realtime_scoring: bool = Field(
        True,
        description="Score new points of series with a trained model as they are committed "
        "(streaming detectors), so a fresh anomaly shows within seconds.",
    )
    analysis_max_points: int = Field(
        1_000_000,
        ge=1000,
        description="Points an analysis request (forecast, patterns, scoring) may read; more "
        "are refused with 400 naming the limit.",
    )

    @field_validator("admin_key")
    @classmethod
    def _admin_key_strong(cls, value: str | None) -> str | None:
        if value is not None and len(value) < 16:
            raise ValueError("STATS_ADMIN_KEY must be at least 16 characters long")
        return value

    @field_validator("rollup_policy")
    @classmethod
    def _rollup_policy_valid(cls, value: str) -> str:
        try:
            parse_text(value)
        except ValidationFailed as exc:
            raise ValueError("; ".join(f"{e.loc}: {e.msg}" for e in exc.errors)) from None
        return value

    @property
    def db_path(self) -> Path:
        return self.data_dir / "stats.duckdb"

    @property
    def cold_path(self) -> Path:
        return self.cold_dir if self.cold_dir is not None else self.data_dir / "cold"

    @property
    def cold_s3_cache_path(self) -> Path:
        if self.cold_s3_cache_dir is not None:
            return self.cold_s3_cache_dir
        return self.data_dir / "cold-cache"

    @property
    def model_path(self) -> Path:
        return self.model_dir if self.model_dir is not None else self.data_dir / "models"

    @property
    def archive_dir(self) -> Path:
        return self.data_dir / "raw"

    @property
    def server_file(self) -> Path:
        """Where a running server says where it listens (used by the CLI)."""
        return self.data_dir / "server.json"
