"""Plain records read from the store's metadata tables."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar


@dataclass(frozen=True, slots=True)
class Tenant:
    id: int
    name: str
    created_at: datetime
    retention_days: int
    max_series: int
    max_batch_points: int
    anonymous_write: bool = False  # InfluxDB-style writes without a key land here
    anonymous_read: bool = False  # keyless GETs of the stats API routes (docs/stats-api.md)

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> Tenant:
        return cls(
            int(row[0]),
            str(row[1]),
            row[2],
            int(row[3]),
            int(row[4]),
            int(row[5]),
            bool(row[6]),
            bool(row[7]) if len(row) > 7 else False,
        )


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    COLUMNS: ClassVar[str] = (
        "k.id, k.tenant_id, t.name, k.role, k.prefix, k.name, k.created_at, k.revoked_at, "
        "k.device"
    )
    NCOLS: ClassVar[int] = 9

    id: str
    tenant_id: int
    tenant: str
    role: str
    prefix: str
    name: str | None
    created_at: datetime
    revoked_at: datetime | None = None
    device: str | None = None  # a device key (device token) writes only as this device

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> ApiKeyRecord:
        return cls(
            str(row[0]),
            int(row[1]),
            str(row[2]),
            str(row[3]),
            str(row[4]),
            row[5],
            row[6],
            row[7],
            row[8],
        )

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None
