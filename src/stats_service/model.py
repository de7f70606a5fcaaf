"""Core types shared by every layer: series keys, batches of points, principals."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from .errors import FieldError

DEVICE_TAG = "device"

Int64Array = npt.NDArray[np.int64]
Float64Array = npt.NDArray[np.float64]


class Role(StrEnum):
    INGEST = "ingest"
    READ = "read"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a tenant and a role. `system` is the local CLI over the control token."""

    tenant_id: int
    tenant: str
    role: Role
    key_id: str | None = None
    system: bool = False
    device: str | None = None  # a device key (device token) writes only as this device

    def may(self, needed: Role) -> bool:
        if self.role is Role.ADMIN:
            return True
        return self.role is needed

    @property
    def superuser(self) -> bool:
        """May manage every tenant: the local CLI and admins of the `default` tenant."""
        return self.system or (self.role is Role.ADMIN and self.tenant == "default")


@dataclass(frozen=True, slots=True)
class SeriesKey:
    """Canonical identity of a series: tenant, metric name and sorted tags (device is a tag)."""

    tenant_id: int
    metric: str
    tags: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, tenant_id: int, metric: str, tags: dict[str, str]) -> SeriesKey:
        return cls(tenant_id, metric, tuple(sorted(tags.items())))

    def canonical(self) -> bytes:
        return json.dumps(
            [self.tenant_id, self.metric, [list(t) for t in self.tags]],
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode()

    @property
    def series_id(self) -> int:
        """Stable signed 64-bit hash of the canonical key; any process computes the same."""
        digest = hashlib.blake2b(self.canonical(), digest_size=8).digest()
        return int.from_bytes(digest, "little", signed=True)

    @property
    def device(self) -> str | None:
        return dict(self.tags).get(DEVICE_TAG)

    def tags_dict(self) -> dict[str, str]:
        return dict(self.tags)


@dataclass(slots=True)
class SeriesMeta:
    key: SeriesKey
    unit: str | None = None


@dataclass(slots=True)
class States:
    """Text values (states such as "on", "heat", firmware strings): parallel columns."""

    series_id: Int64Array
    ts: Int64Array
    text: list[str]

    def __len__(self) -> int:
        return int(self.series_id.shape[0])


@dataclass(slots=True)
class Batch:
    """Columnar points of one tenant plus the series they mention.

    `series_id`, `ts` (UTC microseconds) and `value` are parallel arrays; text values
    (states) are in `states`. `dropped` lists what a lenient parser skipped.
    """

    tenant_id: int
    series_id: Int64Array
    ts: Int64Array
    value: Float64Array
    series: dict[int, SeriesMeta] = field(default_factory=dict)
    states: States | None = None
    dropped: list[FieldError] = field(default_factory=list)  # the first ones, for messages
    dropped_count: int = 0  # all of them
    points_sorted: bool = False  # numeric points in (series, time) order (commit.presort)
    device_names: frozenset[str] | None = None  # `devices`, computed once (commit.presort)

    def __len__(self) -> int:
        return int(self.series_id.shape[0]) + (len(self.states) if self.states else 0)

    @property
    def numeric(self) -> int:
        return int(self.series_id.shape[0])

    @property
    def devices(self) -> frozenset[str]:
        if self.device_names is not None:
            return self.device_names
        return frozenset(d for m in self.series.values() if (d := m.key.device) is not None)


@dataclass(slots=True)
class WriteItem:
    """One accepted request on its way to the writer."""

    batch: Batch
    batch_id: str
    received_at: datetime
    protocol: str
    nbytes: int
    response: dict[str, object]
    idempotency_key: str | None = None
    body_hash: str | None = None
    only_missing: bool = False  # replay: never overwrite a point that exists
    tenant: str = ""
    archive_frame: bytes | None = None  # the compressed raw payload, archived before commit


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    """What the writer did with one item: its response, and whether it was a retry."""

    response: dict[str, object]
    replayed: bool = False
    points_written: int = 0
