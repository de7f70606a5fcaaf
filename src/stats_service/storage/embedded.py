"""The embedded store: one DuckDB file under the data dir.

DuckDB allows one writing process per file. Inside this process every write goes
through the single writer thread (`ingest/writer.py`) or the short metadata calls here,
which serialise on `_write_lock`; reads take their own cursor and run concurrently.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from ..errors import Conflict, NotFound
from .records import ApiKeyRecord, Tenant
from .schema import MIGRATIONS


class StoreLocked(RuntimeError):
    """Another process holds the database file (a running server, usually)."""


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class EmbeddedStore:
    """DuckDB-backed store of tenants, keys, devices, series and points."""

    def __init__(self, path: Path, *, memory_limit: str = "1GB", threads: int = 2) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        try:
            self._con = duckdb.connect(
                str(path), config={"memory_limit": memory_limit, "threads": threads}
            )
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise StoreLocked(
                    f"{path} is in use by another process (is `stats-service serve` running "
                    "on this data dir?)"
                ) from exc
            raise
        self._write_lock = threading.RLock()
        self._closed = False
        self._migrate()

    # -- lifecycle ---------------------------------------------------------------------

    def _migrate(self) -> None:
        con = self._con
        con.execute("CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
        row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        version = int(row[0]) if row else 0
        for number, sql in enumerate(MIGRATIONS[version:], start=version + 1):
            con.execute("BEGIN")
            con.execute(sql)
            con.execute(
                "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [str(number)]
            )
            con.execute("COMMIT")

    def close(self) -> None:
        with self._write_lock:
            if not self._closed:
                self._con.execute("CHECKPOINT")
                self._con.close()
                self._closed = True

    @property
    def closed(self) -> bool:
        return self._closed

    def writable(self) -> bool:
        """True when a write transaction can be opened and committed right now."""
        if self._closed:
            return False
        try:
            with self._write_lock:
                self._con.execute("BEGIN")
                self._con.execute("UPDATE meta SET value = value WHERE key = 'schema_version'")
                self._con.execute("COMMIT")
            return True
        except duckdb.Error:
            return False

    # -- connections -------------------------------------------------------------------

    @contextmanager
    def reader(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor of its own for one read; safe to use from any thread."""
        cur = self._con.cursor()
        try:
            yield cur
        finally:
            cur.close()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The write connection inside BEGIN ... COMMIT (rolled back on error)."""
        with self._write_lock:
            con = self._con
            con.execute("BEGIN")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    # -- tenants -----------------------------------------------------------------------

    def create_tenant(
        self, name: str, *, retention_days: int, max_series: int, max_batch_points: int
    ) -> Tenant:
        with self.transaction() as con:
            if con.execute("SELECT 1 FROM tenants WHERE name = ?", [name]).fetchone():
                raise Conflict(f"tenant {name!r} already exists")
            row = con.execute(
                "INSERT INTO tenants (id, name, created_at, retention_days, max_series, "
                "max_batch_points) VALUES (nextval('tenant_ids'), ?, ?, ?, ?, ?) RETURNING *",
                [name, utcnow(), retention_days, max_series, max_batch_points],
            ).fetchone()
        assert row is not None
        return Tenant.from_row(row)

    def update_tenant(self, name: str, **changes: int | bool) -> Tenant:
        allowed = {"retention_days", "max_series", "max_batch_points", "anonymous_write"}
        sets = [k for k in changes if k in allowed]
        with self.transaction() as con:
            if sets:
                con.execute(
                    f"UPDATE tenants SET {', '.join(f'{k} = ?' for k in sets)} WHERE name = ?",
                    [changes[k] for k in sets] + [name],
                )
            row = con.execute("SELECT * FROM tenants WHERE name = ?", [name]).fetchone()
        if row is None:
            raise NotFound(f"tenant {name!r} does not exist")
        return Tenant.from_row(row)

    def get_tenant(self, name: str) -> Tenant | None:
        with self.reader() as cur:
            row = cur.execute("SELECT * FROM tenants WHERE name = ?", [name]).fetchone()
        return Tenant.from_row(row) if row else None

    def get_tenant_by_id(self, tenant_id: int) -> Tenant | None:
        with self.reader() as cur:
            row = cur.execute("SELECT * FROM tenants WHERE id = ?", [tenant_id]).fetchone()
        return Tenant.from_row(row) if row else None

    def list_tenants(self) -> list[Tenant]:
        with self.reader() as cur:
            rows = cur.execute("SELECT * FROM tenants ORDER BY id").fetchall()
        return [Tenant.from_row(r) for r in rows]

    # -- API keys (only hashes are stored) -----------------------------------------------

    def add_key(self, record: ApiKeyRecord, key_hash: str) -> None:
        with self.transaction() as con:
            con.execute(
                "INSERT INTO api_keys (id, tenant_id, role, key_hash, prefix, name, created_at, "
                "device) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    record.id,
                    record.tenant_id,
                    record.role,
                    key_hash,
                    record.prefix,
                    record.name,
                    record.created_at,
                    record.device,
                ],
            )

    def find_key(self, key_hash: str) -> tuple[ApiKeyRecord, Tenant, str] | None:
        """The key record, its tenant and the stored hash, for a hash of a presented key."""
        with self.reader() as cur:
            row = cur.execute(
                f"SELECT {ApiKeyRecord.COLUMNS}, k.key_hash, t.* FROM api_keys k "
                "JOIN tenants t ON t.id = k.tenant_id WHERE k.key_hash = ?",
                [key_hash],
            ).fetchone()
        if row is None:
            return None
        n = ApiKeyRecord.NCOLS
        return ApiKeyRecord.from_row(row[:n]), Tenant.from_row(row[n + 1 :]), str(row[n])

    def list_keys(self, tenant_id: int | None) -> list[ApiKeyRecord]:
        sql = f"SELECT {ApiKeyRecord.COLUMNS} FROM api_keys k JOIN tenants t ON t.id = k.tenant_id"
        params: list[Any] = []
        if tenant_id is not None:
            sql += " WHERE k.tenant_id = ?"
            params.append(tenant_id)
        with self.reader() as cur:
            rows = cur.execute(sql + " ORDER BY k.created_at, k.id", params).fetchall()
        return [ApiKeyRecord.from_row(r) for r in rows]

    def revoke_key(self, key_id: str, tenant_id: int | None) -> ApiKeyRecord:
        with self.transaction() as con:
            params: list[Any] = [key_id]
            scope = ""
            if tenant_id is not None:
                scope = " AND k.tenant_id = ?"
                params.append(tenant_id)
            row = con.execute(
                f"SELECT {ApiKeyRecord.COLUMNS} FROM api_keys k JOIN tenants t "
                f"ON t.id = k.tenant_id WHERE k.id = ?{scope}",
                params,
            ).fetchone()
            if row is None:
                raise NotFound(f"API key {key_id!r} does not exist")
            con.execute(
                "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?",
                [utcnow(), key_id],
            )
            row = con.execute(
                f"SELECT {ApiKeyRecord.COLUMNS} FROM api_keys k JOIN tenants t "
                "ON t.id = k.tenant_id WHERE k.id = ?",
                [key_id],
            ).fetchone()
        assert row is not None
        return ApiKeyRecord.from_row(row)

    def count_keys(self, tenant_id: int) -> int:
        with self.reader() as cur:
            row = cur.execute(
                "SELECT count(*) FROM api_keys WHERE tenant_id = ?", [tenant_id]
            ).fetchone()
        return int(row[0]) if row else 0

    # -- series bookkeeping used by the pipeline -----------------------------------------

    def series_count(self, tenant_id: int) -> int:
        with self.reader() as cur:
            row = cur.execute(
                "SELECT count(*) FROM series WHERE tenant_id = ?", [tenant_id]
            ).fetchone()
        return int(row[0]) if row else 0

    def known_series(self, ids: list[int]) -> dict[int, str]:
        """Canonical keys of those of `ids` that already exist."""
        if not ids:
            return {}
        with self.reader() as cur:
            rows = cur.execute(
                "SELECT id, canonical FROM series WHERE id IN (SELECT unnest(?::BIGINT[]))",
                [ids],
            ).fetchall()
        return {int(r[0]): str(r[1]) for r in rows}

    def ensure_database(self, tenant_id: int, name: str, *, create: bool) -> bool:
        """Whether the tenant has the named (InfluxDB) database; creates it when asked."""
        with self.reader() as cur:
            found = cur.execute(
                "SELECT 1 FROM databases WHERE tenant_id = ? AND name = ?", [tenant_id, name]
            ).fetchall()
        if found:
            return True
        if not create:
            return False
        with self.transaction() as con:
            con.execute(
                "INSERT INTO databases VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                [tenant_id, name, utcnow()],
            )
        return True

    def list_databases(self, tenant_id: int) -> list[str]:
        with self.reader() as cur:
            rows = cur.execute(
                "SELECT name FROM databases WHERE tenant_id = ? ORDER BY name", [tenant_id]
            ).fetchall()
        return [str(r[0]) for r in rows]

    def idempotent_response(self, batch_id: str) -> tuple[str, str] | None:
        """(body hash, stored response JSON) of an already committed keyed batch."""
        with self.reader() as cur:
            row = cur.execute(
                "SELECT body_hash, response FROM idempotency WHERE batch_id = ?", [batch_id]
            ).fetchone()
        return (str(row[0]), str(row[1])) if row else None
