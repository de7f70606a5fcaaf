"""DuckDB schema of the embedded store, applied as numbered migrations."""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: the core tables
    """
    CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL);
    CREATE SEQUENCE IF NOT EXISTS tenant_ids START 1;
    CREATE TABLE IF NOT EXISTS tenants (
        id INTEGER PRIMARY KEY,
        name VARCHAR NOT NULL UNIQUE,
        created_at TIMESTAMP NOT NULL,
        retention_days INTEGER NOT NULL,
        max_series INTEGER NOT NULL,
        max_batch_points INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS api_keys (
        id VARCHAR PRIMARY KEY,
        tenant_id INTEGER NOT NULL,
        role VARCHAR NOT NULL,
        key_hash VARCHAR NOT NULL UNIQUE,
        prefix VARCHAR NOT NULL,
        name VARCHAR,
        created_at TIMESTAMP NOT NULL,
        revoked_at TIMESTAMP
    );
    CREATE TABLE IF NOT EXISTS devices (
        tenant_id INTEGER NOT NULL,
        name VARCHAR NOT NULL,
        first_seen TIMESTAMP NOT NULL,
        last_seen TIMESTAMP NOT NULL,
        PRIMARY KEY (tenant_id, name)
    );
    CREATE TABLE IF NOT EXISTS series (
        id BIGINT PRIMARY KEY,
        tenant_id INTEGER NOT NULL,
        metric VARCHAR NOT NULL,
        device VARCHAR,
        tags VARCHAR NOT NULL,
        canonical VARCHAR NOT NULL,
        unit VARCHAR,
        created_at TIMESTAMP NOT NULL,
        last_ts TIMESTAMP,
        last_value DOUBLE
    );
    CREATE TABLE IF NOT EXISTS points (
        series_id BIGINT NOT NULL,
        ts TIMESTAMP NOT NULL,
        value DOUBLE NOT NULL
    );
    CREATE TABLE IF NOT EXISTS idempotency (
        batch_id VARCHAR PRIMARY KEY,
        tenant_id INTEGER NOT NULL,
        key VARCHAR NOT NULL,
        body_hash VARCHAR NOT NULL,
        created_at TIMESTAMP NOT NULL,
        response VARCHAR NOT NULL
    );
    CREATE TABLE IF NOT EXISTS usage (
        tenant_id INTEGER NOT NULL,
        day DATE NOT NULL,
        points BIGINT NOT NULL DEFAULT 0,
        bytes BIGINT NOT NULL DEFAULT 0,
        requests BIGINT NOT NULL DEFAULT 0,
        rejected BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (tenant_id, day)
    );
    """,
    # 2: text values (states), device keys, anonymous writes, named databases (InfluxDB)
    """
    CREATE TABLE IF NOT EXISTS states (
        series_id BIGINT NOT NULL,
        ts TIMESTAMP NOT NULL,
        value VARCHAR NOT NULL
    );
    ALTER TABLE series ADD COLUMN IF NOT EXISTS last_state_ts TIMESTAMP;
    ALTER TABLE series ADD COLUMN IF NOT EXISTS last_state VARCHAR;
    ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS device VARCHAR;
    ALTER TABLE tenants ADD COLUMN IF NOT EXISTS anonymous_write BOOLEAN DEFAULT false;
    CREATE TABLE IF NOT EXISTS databases (
        tenant_id INTEGER NOT NULL,
        name VARCHAR NOT NULL,
        created_at TIMESTAMP NOT NULL,
        PRIMARY KEY (tenant_id, name)
    );
    """,
    # 3: time partitions (tenant, UTC day), compaction and the cold tier (storage/partitions.py)
    """
    CREATE TABLE IF NOT EXISTS partitions (
        tenant_id INTEGER NOT NULL,
        day DATE NOT NULL,
        dirty BOOLEAN NOT NULL DEFAULT true,
        tier VARCHAR NOT NULL DEFAULT 'hot',
        compacted_at TIMESTAMP,
        PRIMARY KEY (tenant_id, day)
    );
    CREATE TABLE IF NOT EXISTS cold_files (
        tenant_id INTEGER NOT NULL,
        day DATE NOT NULL,
        path VARCHAR NOT NULL,
        rows BIGINT NOT NULL,
        bytes BIGINT NOT NULL,
        written_at TIMESTAMP NOT NULL,
        PRIMARY KEY (tenant_id, day)
    );
    INSERT INTO partitions (tenant_id, day)
        SELECT DISTINCT s.tenant_id, p.ts::DATE FROM points p JOIN series s ON s.id = p.series_id
        ON CONFLICT DO NOTHING;
    """,
    # 4: rollup tiers: per-tenant policies, rollup rows (count, sum, min, max, first, last
    # per series and bucket), per series and tier watermarks, and the ranges that late
    # writes touched below a watermark (see storage/rollups.py)
    """
    CREATE TABLE IF NOT EXISTS rollup_policies (
        tenant_id INTEGER PRIMARY KEY,
        policy VARCHAR NOT NULL,
        updated_at TIMESTAMP NOT NULL
    );
    CREATE TABLE IF NOT EXISTS rollups (
        tier_us BIGINT NOT NULL,
        series_id BIGINT NOT NULL,
        bucket TIMESTAMP NOT NULL,
        n BIGINT NOT NULL,
        sum DOUBLE NOT NULL,
        min DOUBLE NOT NULL,
        max DOUBLE NOT NULL,
        first_ts TIMESTAMP NOT NULL,
        first DOUBLE NOT NULL,
        last_ts TIMESTAMP NOT NULL,
        last DOUBLE NOT NULL
    );
    CREATE TABLE IF NOT EXISTS rollup_marks (
        series_id BIGINT NOT NULL,
        tier_us BIGINT NOT NULL,
        since TIMESTAMP,
        done_until TIMESTAMP,
        deleted_until TIMESTAMP,
        PRIMARY KEY (series_id, tier_us)
    );
    CREATE TABLE IF NOT EXISTS rollup_dirty (
        series_id BIGINT NOT NULL,
        lo TIMESTAMP NOT NULL,
        hi TIMESTAMP NOT NULL
    );
    """,
    # 5: simulation runs (storage/runs.py): one row per run; its steps are points of
    # series tagged run=<id>, so this row holds what is not a point
    """
    CREATE TABLE IF NOT EXISTS runs (
        tenant_id INTEGER NOT NULL,
        id VARCHAR NOT NULL,
        kind VARCHAR NOT NULL,
        model VARCHAR,
        name VARCHAR,
        device VARCHAR,
        params VARCHAR NOT NULL,
        start_hash VARCHAR NOT NULL,
        status VARCHAR NOT NULL,
        message VARCHAR,
        started_at TIMESTAMP NOT NULL,
        finished_at TIMESTAMP,
        origin_us BIGINT NOT NULL,
        tick_us BIGINT NOT NULL,
        steps BIGINT NOT NULL DEFAULT 0,
        last_t DOUBLE,
        created_at TIMESTAMP NOT NULL,
        PRIMARY KEY (tenant_id, id)
    );
    """,
    # 6: the stats_service API's users and devices (storage/stats_api.py), asynchronous
    # tasks (storage/tasks.py, jobs/tasks.py) and anonymous reads of the stats API routes
    """
    CREATE TABLE IF NOT EXISTS stats_users (
        tenant_id INTEGER NOT NULL,
        id INTEGER NOT NULL,
        name VARCHAR NOT NULL,
        email VARCHAR NOT NULL,
        email_key VARCHAR NOT NULL,
        created_at TIMESTAMP NOT NULL,
        PRIMARY KEY (tenant_id, id),
        UNIQUE (tenant_id, email_key)
    );
    CREATE TABLE IF NOT EXISTS stats_devices (
        tenant_id INTEGER NOT NULL,
        id VARCHAR NOT NULL,
        user_id INTEGER NOT NULL,
        created_at TIMESTAMP NOT NULL,
        PRIMARY KEY (tenant_id, id)
    );
    CREATE TABLE IF NOT EXISTS tasks (
        id VARCHAR PRIMARY KEY,
        tenant_id INTEGER NOT NULL,
        kind VARCHAR NOT NULL,
        params VARCHAR NOT NULL,
        state VARCHAR NOT NULL,
        progress DOUBLE NOT NULL DEFAULT 0,
        result VARCHAR,
        error VARCHAR,
        created_at TIMESTAMP NOT NULL,
        started_at TIMESTAMP,
        finished_at TIMESTAMP,
        attempts INTEGER NOT NULL DEFAULT 0
    );
    ALTER TABLE tenants ADD COLUMN IF NOT EXISTS anonymous_read BOOLEAN DEFAULT false;
    """,
    # 7: chart annotations (storage/annotations.py): marks (a moment: end_ts NULL) and
    # bands (start_ts .. end_ts) on charts, written by users, detectors and alerts; read
    # by tenant and time range (the index), newest first
    """
    CREATE SEQUENCE IF NOT EXISTS annotation_ids START 1;
    CREATE TABLE IF NOT EXISTS annotations (
        id BIGINT PRIMARY KEY,
        tenant_id INTEGER NOT NULL,
        kind VARCHAR NOT NULL,
        device VARCHAR,
        series_id BIGINT,
        start_ts TIMESTAMP NOT NULL,
        end_ts TIMESTAMP,
        title VARCHAR NOT NULL,
        text VARCHAR,
        severity VARCHAR NOT NULL,
        source VARCHAR NOT NULL,
        tags VARCHAR NOT NULL DEFAULT '[]',
        meta VARCHAR NOT NULL DEFAULT '{}',
        created_at TIMESTAMP NOT NULL,
        created_by VARCHAR
    );
    CREATE INDEX IF NOT EXISTS annotations_tenant_start ON annotations (tenant_id, start_ts);
    """,
    # 8: anomaly scoring (analytics/pipeline.py): trained detector models per series
    # (storage/models.py), scores per window (storage/anomaly_scores.py), a tenant's own
    # scoring interval (no row or NULL: the setting) and the windows scored per tenant and
    # day. Both live in tables of their own beside `tenants` and `usage`: rows of those
    # are inserted by position (a new column would break those inserts)
    """
    CREATE SEQUENCE IF NOT EXISTS model_ids START 1;
    CREATE TABLE IF NOT EXISTS models (
        tenant_id INTEGER NOT NULL,
        id BIGINT NOT NULL,
        series_id BIGINT NOT NULL,
        detector VARCHAR NOT NULL,
        params VARCHAR NOT NULL DEFAULT '{}',
        train_from TIMESTAMP NOT NULL,
        train_to TIMESTAMP NOT NULL,
        path VARCHAR NOT NULL,
        metrics VARCHAR NOT NULL DEFAULT '{}',
        created_at TIMESTAMP NOT NULL,
        updated_at TIMESTAMP NOT NULL,
        PRIMARY KEY (tenant_id, id),
        UNIQUE (tenant_id, series_id, detector)
    );
    CREATE TABLE IF NOT EXISTS anomaly_scores (
        tenant_id INTEGER NOT NULL,
        series_id BIGINT NOT NULL,
        window_end TIMESTAMP NOT NULL,
        window_start TIMESTAMP NOT NULL,
        score DOUBLE NOT NULL,
        detector VARCHAR NOT NULL,
        explanation VARCHAR NOT NULL DEFAULT '{}',
        scored_at TIMESTAMP NOT NULL,
        PRIMARY KEY (tenant_id, series_id, window_end)
    );
    CREATE TABLE IF NOT EXISTS tenant_scoring (
        tenant_id INTEGER PRIMARY KEY,
        scoring_interval_s DOUBLE
    );
    CREATE TABLE IF NOT EXISTS usage_analytics (
        tenant_id INTEGER NOT NULL,
        day DATE NOT NULL,
        windows_scored BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (tenant_id, day)
    );
    """,
)
