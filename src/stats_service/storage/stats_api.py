"""Users and devices of the stats_service API (docs/stats-api.md), scoped per tenant.

A stats API device is a UUID owned by a user; its readings are ordinary points of series
whose `device` tag is that UUID (one series per field: x, y, z, ...), written through the
ingest pipeline. Users are numbered 1, 2, ... per tenant, so a tenant's first user is 1
whatever other tenants hold. E-mail addresses are unique per tenant, compared without
regard to case.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

from ..errors import BadRequest, NotFound
from .embedded import EmbeddedStore, utcnow
from .schema import MIGRATIONS
from .sources import points_source

STATS_API_MIGRATION = 6  # storage/schema.py
_KNOWN_MAX = 100_000  # device ids remembered as existing (devices are never deleted)


@dataclass(frozen=True, slots=True)
class StatsUser:
    id: int
    name: str
    email: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class StatsDevice:
    id: str
    user_id: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Reading:
    device_id: str
    user_id: int
    ts_us: int
    values: dict[str, float]


class StatsApiStore:
    def __init__(self, store: EmbeddedStore) -> None:
        self._store = store
        self._known: set[tuple[int, str]] = set()
        self._lock = threading.Lock()

    def ensure_schema(self) -> None:
        """Migration 6 again (it is idempotent): a data dir created while that migration
        was still a placeholder has its number but not its tables."""
        with self._store.transaction() as con:
            con.execute(MIGRATIONS[STATS_API_MIGRATION - 1])

    # -- users -------------------------------------------------------------------------

    def create_user(self, tenant_id: int, name: str, email: str) -> StatsUser:
        key = email.strip().lower()
        with self._store.transaction() as con:
            taken = con.execute(
                "SELECT id FROM stats_users WHERE tenant_id = ? AND email_key = ?",
                [tenant_id, key],
            ).fetchone()
            if taken is not None:
                raise BadRequest(
                    f"a user with the email {email!r} already exists (user {taken[0]}); "
                    "emails are unique, compared without regard to case"
                )
            row = con.execute(
                "INSERT INTO stats_users (tenant_id, id, name, email, email_key, created_at) "
                "SELECT ?, coalesce(max(id), 0) + 1, ?, ?, ?, ? FROM stats_users "
                "WHERE tenant_id = ? RETURNING id, name, email, created_at",
                [tenant_id, name, email, key, utcnow(), tenant_id],
            ).fetchone()
        assert row is not None
        return StatsUser(int(row[0]), str(row[1]), str(row[2]), row[3])

    def list_users(self, tenant_id: int, limit: int, offset: int) -> list[StatsUser]:
        with self._store.reader() as cur:
            rows = cur.execute(
                "SELECT id, name, email, created_at FROM stats_users WHERE tenant_id = ? "
                "ORDER BY id LIMIT ? OFFSET ?",
                [tenant_id, limit, offset],
            ).fetchall()
        return [StatsUser(int(r[0]), str(r[1]), str(r[2]), r[3]) for r in rows]

    # -- devices -----------------------------------------------------------------------

    def create_device(self, tenant_id: int, user_id: int) -> StatsDevice:
        device_id = str(uuid.uuid4())
        with self._store.transaction() as con:
            owner = con.execute(
                "SELECT 1 FROM stats_users WHERE tenant_id = ? AND id = ?", [tenant_id, user_id]
            ).fetchone()
            if owner is None:
                raise NotFound(f"user {user_id} does not exist; create it with POST /users/")
            row = con.execute(
                "INSERT INTO stats_devices (tenant_id, id, user_id, created_at) "
                "VALUES (?, ?, ?, ?) RETURNING id, user_id, created_at",
                [tenant_id, device_id, user_id, utcnow()],
            ).fetchone()
        assert row is not None
        self._remember(tenant_id, device_id)
        return StatsDevice(str(row[0]), int(row[1]), row[2])

    def get_device(self, tenant_id: int, device_id: str) -> StatsDevice:
        with self._store.reader() as cur:
            row = cur.execute(
                "SELECT id, user_id, created_at FROM stats_devices WHERE tenant_id = ? AND id = ?",
                [tenant_id, device_id],
            ).fetchone()
        if row is None:
            raise _no_device(device_id)
        self._remember(tenant_id, device_id)
        return StatsDevice(str(row[0]), int(row[1]), row[2])

    def require_device(self, tenant_id: int, device_id: str) -> None:
        """NotFound unless the tenant has the device; known ones are remembered, so the
        stats path asks the store once per device."""
        with self._lock:
            if (tenant_id, device_id) in self._known:
                return
        self.get_device(tenant_id, device_id)

    def _remember(self, tenant_id: int, device_id: str) -> None:
        with self._lock:
            if len(self._known) >= _KNOWN_MAX:
                self._known.clear()
            self._known.add((tenant_id, device_id))

    # -- readings ----------------------------------------------------------------------

    def readings(
        self, tenant_id: int, device_id: str | None, limit: int, offset: int
    ) -> list[Reading]:
        """Stored readings of the tenant's stats API devices (or of one), oldest first:
        the fields a device sent at one time, gathered from its series."""
        with self._store.reader() as cur:
            return _readings(cur, tenant_id, device_id, limit, offset)


def _readings(
    cur: duckdb.DuckDBPyConnection,
    tenant_id: int,
    device_id: str | None,
    limit: int,
    offset: int,
) -> list[Reading]:
    source = points_source(cur, tenant_id, -(2**62), 2**62)
    params: list[Any] = [tenant_id, tenant_id]
    only = ""
    if device_id is not None:
        only = " AND d.id = ?"
        params.append(device_id)
    rows = cur.execute(
        f"""
        SELECT s.device, d.user_id, epoch_us(p.ts) AS t,
               list(s.metric ORDER BY s.metric), list(p.value ORDER BY s.metric)
        FROM {source} p
        JOIN series s ON s.id = p.series_id
        JOIN stats_devices d ON d.tenant_id = s.tenant_id AND d.id = s.device
        WHERE s.tenant_id = ? AND d.tenant_id = ?{only}
        GROUP BY s.device, d.user_id, p.ts
        ORDER BY p.ts, s.device
        LIMIT ? OFFSET ?
        """,
        [*params, limit, offset],
    ).fetchall()
    return [
        Reading(str(r[0]), int(r[1]), int(r[2]), dict(zip(r[3], r[4], strict=True))) for r in rows
    ]


def _no_device(device_id: str) -> NotFound:
    return NotFound(f"device {device_id} does not exist; register it with POST /devices/")
