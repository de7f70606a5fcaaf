"""Tenants, API keys and replay (admin role)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

import anyio
from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field, model_validator

from ...errors import Forbidden
from ...ingest.protocols.json_v1 import DEVICE_RE
from ...ingest.replay import replay
from ...model import Principal, Role
from ...services import Services
from ...storage import rollups
from ...storage.models import set_tenant_interval
from ...storage.records import ApiKeyRecord, Tenant
from ...storage.rollup_policy import TenantPolicy, parse_tenant_policy, parse_text
from ..deps import AdminPrincipal, ServicesDep
from ..problems import PROBLEM_RESPONSES

router = APIRouter(prefix="/v1/admin", tags=["admin"], responses=PROBLEM_RESPONSES)
TENANT_NAME = r"^[a-z0-9][a-z0-9_-]{0,62}$"
MAX_LIMIT = 2**31 - 1
DEVICE_PATTERN = DEVICE_RE.pattern
SCORING_INTERVAL_MAX_S = 31 * 86400


def _utc(moment: datetime | None) -> datetime | None:
    """Stored times are naive UTC; answers say so (RFC 3339 with an offset)."""
    return None if moment is None else moment.replace(tzinfo=UTC)


class TenantIn(BaseModel):
    name: str = Field(pattern=TENANT_NAME, description="Lower-case letters, digits, _ and -.")
    retention_days: int | None = Field(None, ge=1, le=36500)


class TenantPatch(BaseModel):
    retention_days: int | None = Field(None, ge=1, le=36500)
    max_series: int | None = Field(None, ge=1, le=MAX_LIMIT)
    max_batch_points: int | None = Field(None, ge=1, le=MAX_LIMIT)
    anonymous_write: bool | None = Field(
        None,
        description="Accept InfluxDB-style writes without a key (or with any unknown "
        "credentials, such as Home Assistant's default root:root) into this tenant, and "
        "keyless POSTs of the stats API routes (docs/stats-api.md; `default` only).",
    )
    anonymous_read: bool | None = Field(
        None,
        description="Accept keyless GETs of the stats API routes (`/users/`, `/devices/...`, "
        "`/stats/...`, `/tasks/...`; docs/stats-api.md) for this tenant (`default` only). "
        "The /v1 API always needs a key.",
    )
    scoring_interval_s: float | None = Field(
        None,
        ge=0,
        le=SCORING_INTERVAL_MAX_S,
        description="Seconds between scheduled anomaly scoring runs for this tenant "
        "(docs/anomaly-scoring.md); 0: back to the server's STATS_SCORING_INTERVAL_S.",
    )


class TenantOut(BaseModel):
    id: int
    name: str
    created_at: datetime
    retention_days: int
    max_series: int
    max_batch_points: int
    anonymous_write: bool
    anonymous_read: bool = False
    scoring_interval_s: float | None = Field(
        None, description="Its own scheduled-scoring interval; null: the server's setting."
    )

    @classmethod
    def of(cls, t: Tenant, scoring_interval_s: float | None = None) -> TenantOut:
        return cls(
            id=t.id,
            name=t.name,
            created_at=t.created_at.replace(tzinfo=UTC),
            retention_days=t.retention_days,
            max_series=t.max_series,
            max_batch_points=t.max_batch_points,
            anonymous_write=t.anonymous_write,
            anonymous_read=t.anonymous_read,
            scoring_interval_s=scoring_interval_s,
        )


class KeyIn(BaseModel):
    tenant: str | None = Field(None, description="Defaults to the caller's tenant.")
    role: Role
    name: str | None = Field(None, max_length=200)
    device: str | None = Field(
        None,
        pattern=DEVICE_PATTERN,
        description="Makes a device key (device token): role ingest, writes only as this "
        "device, usable in the URL of `POST /api/v1/{token}/telemetry`.",
    )


class KeyOut(BaseModel):
    id: str
    tenant: str
    role: str
    prefix: str
    name: str | None
    created_at: datetime
    revoked_at: datetime | None
    device: str | None = None

    @classmethod
    def of(cls, r: ApiKeyRecord) -> KeyOut:
        return cls(
            id=r.id,
            tenant=r.tenant,
            role=r.role,
            prefix=r.prefix,
            name=r.name,
            created_at=r.created_at.replace(tzinfo=UTC),
            revoked_at=_utc(r.revoked_at),
            device=r.device,
        )


class KeyCreated(KeyOut):
    key: str = Field(description="The secret; shown only in this answer.")


class ReplayIn(BaseModel):
    from_: date = Field(alias="from", description="First day (UTC), YYYY-MM-DD.")
    to: date = Field(description="Last day (UTC), inclusive.")
    tenant: str | None = Field(None, pattern=TENANT_NAME)

    @model_validator(mode="after")
    def _ordered(self) -> ReplayIn:
        if self.from_ > self.to:
            raise ValueError("`from` must not be after `to`")
        return self


class ReplayOut(BaseModel):
    batches: int
    points: int
    failed: list[str]


def _superuser(principal: Principal) -> None:
    if not principal.superuser:
        raise Forbidden("only an admin of the `default` tenant may manage tenants")


def _scope(principal: Principal, tenant: str | None) -> str:
    name = tenant or principal.tenant
    if name != principal.tenant and not principal.superuser:
        raise Forbidden(f"an admin of {principal.tenant!r} may not manage tenant {name!r}")
    return name


@router.post("/tenants", status_code=201, response_model=TenantOut)
def create_tenant(body: TenantIn, principal: AdminPrincipal, services: ServicesDep) -> TenantOut:
    """Create a tenant (admins of `default` only)."""
    _superuser(principal)
    return TenantOut.of(services.auth.create_tenant(body.name, body.retention_days))


@router.get("/tenants", response_model=list[TenantOut])
def list_tenants(principal: AdminPrincipal, services: ServicesDep) -> list[TenantOut]:
    """Every tenant for admins of `default`, otherwise the caller's own."""
    tenants = services.store.list_tenants()
    intervals = _scoring_intervals(services)
    return [
        TenantOut.of(t, intervals.get(t.id))
        for t in tenants
        if principal.superuser or t.id == principal.tenant_id
    ]


@router.patch("/tenants/{name}", response_model=TenantOut)
def update_tenant(
    name: str, body: TenantPatch, principal: AdminPrincipal, services: ServicesDep
) -> TenantOut:
    """Change a tenant's retention and limits."""
    _superuser(principal)
    changes = {k: v for k, v in body.model_dump().items() if v is not None}
    interval = changes.pop("scoring_interval_s", None)
    tenant = services.store.update_tenant(name, **changes)
    if interval is not None:
        set_tenant_interval(services.store, tenant.id, interval or None)
    services.pipeline.forget_tenant(tenant.id)
    services.auth.forget_tenants()
    return TenantOut.of(tenant, _scoring_intervals(services).get(tenant.id))


def _scoring_intervals(services: Services) -> dict[int, float]:
    with services.store.reader() as cur:
        rows = cur.execute(
            "SELECT tenant_id, scoring_interval_s FROM tenant_scoring "
            "WHERE scoring_interval_s IS NOT NULL"
        ).fetchall()
    return {int(tenant_id): float(seconds) for tenant_id, seconds in rows}


@router.post("/keys", status_code=201, response_model=KeyCreated)
def create_key(body: KeyIn, principal: AdminPrincipal, services: ServicesDep) -> KeyCreated:
    """Create an API key; its secret is in this answer only."""
    record, raw = services.auth.create_key(
        _scope(principal, body.tenant), body.role, body.name, body.device
    )
    return KeyCreated(**KeyOut.of(record).model_dump(), key=raw)


@router.get("/keys", response_model=list[KeyOut])
def list_keys(
    principal: AdminPrincipal,
    services: ServicesDep,
    tenant: Annotated[str | None, Query(description="Only this tenant's keys.")] = None,
) -> list[KeyOut]:
    """Keys (never their secrets): all for admins of `default`, else the tenant's."""
    if tenant is not None:
        tenant_id: int | None = services.auth.tenant(_scope(principal, tenant)).id
    else:
        tenant_id = None if principal.superuser else principal.tenant_id
    return [KeyOut.of(r) for r in services.store.list_keys(tenant_id)]


@router.delete("/keys/{key_id}", response_model=KeyOut)
def revoke_key(
    key_id: Annotated[str, Path(max_length=64)], principal: AdminPrincipal, services: ServicesDep
) -> KeyOut:
    """Revoke a key; it stops working at once."""
    tenant_id = None if principal.superuser else principal.tenant_id
    return KeyOut.of(services.auth.revoke_key(key_id, tenant_id))


@router.post("/replay", response_model=ReplayOut)
async def replay_archive(
    body: ReplayIn, principal: AdminPrincipal, services: ServicesDep
) -> ReplayOut:
    """Rebuild points from the raw archive for days from..to (never overwrites)."""
    tenant = _scope(principal, body.tenant) if body.tenant or not principal.superuser else None
    if tenant is not None:
        services.auth.tenant(tenant)  # 404 for an unknown tenant
    report = await anyio.to_thread.run_sync(
        replay, services.archive, services.pipeline, services.writer, body.from_, body.to, tenant
    )
    return ReplayOut(batches=report.batches, points=report.points, failed=report.failed)


class RollupTierIn(BaseModel):
    resolution: str = Field(description="`raw` for the first tier, then e.g. `1m`, `1h`, `1d`.")
    keep: str = Field("forever", description="How long rows are kept: `7d`, `90d` or `forever`.")


class RollupOverrideIn(BaseModel):
    metric: str | None = Field(None, description="Glob of metric names, e.g. `cpu_*`.")
    tags: dict[str, str] = Field(default_factory=dict, description="Exact tag values to match.")
    tiers: list[RollupTierIn]


class RollupPolicyIn(BaseModel):
    tiers: list[RollupTierIn] = Field(description="The tenant's default: raw first, then tiers.")
    overrides: list[RollupOverrideIn] = Field(
        default_factory=list, description="Selectors with their own tiers; the first match wins."
    )


class RollupPolicyOut(RollupPolicyIn):
    source: str = Field(description="`tenant` (set by PUT) or `settings` (the default).")


@router.get("/tenants/{name}/rollups", response_model=RollupPolicyOut)
def get_rollups(name: str, principal: AdminPrincipal, services: ServicesDep) -> RollupPolicyOut:
    """The tenant's rollup tiers and per-selector overrides (docs/storage-rollups.md)."""
    tenant = services.auth.tenant(_scope(principal, name))
    with services.store.reader() as cur:
        policy = rollups.load_policy(cur, tenant.id)
    source = "tenant" if policy is not None else "settings"
    if policy is None:
        policy = TenantPolicy(parse_text(services.settings.rollup_policy))
    return RollupPolicyOut.model_validate({**policy.to_json(), "source": source})


@router.put("/tenants/{name}/rollups", response_model=RollupPolicyOut)
def put_rollups(
    name: str, body: RollupPolicyIn, principal: AdminPrincipal, services: ServicesDep
) -> RollupPolicyOut:
    """Replace the tenant's rollup policy; the rollup job applies it on its next run."""
    tenant = services.auth.tenant(_scope(principal, name))
    policy = parse_tenant_policy(body.model_dump(exclude_unset=True))
    with services.store.transaction() as con:
        rollups.save_policy(con, tenant.id, policy, datetime.now(UTC).replace(tzinfo=None))
    return RollupPolicyOut.model_validate({**policy.to_json(), "source": "tenant"})
