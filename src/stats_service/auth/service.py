"""Tenants, keys and the check of a presented key."""

from __future__ import annotations

import hmac
import threading
import time
from datetime import UTC, datetime

from ..config import Settings
from ..errors import BadRequest, Forbidden, NotFound, Unauthorized
from ..model import Principal, Role
from ..storage.embedded import EmbeddedStore
from ..storage.records import ApiKeyRecord, Tenant
from .keys import display_prefix, hash_key, new_key, new_key_id

DEFAULT_TENANT = "default"
ANONYMOUS_KEY_ID = "anonymous"
CACHE_TTL_S = 5.0


class AuthService:
    def __init__(self, store: EmbeddedStore, settings: Settings) -> None:
        self._store = store
        self._settings = settings
        self._cache: dict[str, tuple[float, Principal]] = {}
        self._tenants: dict[str, tuple[float, Tenant]] = {}
        self._lock = threading.Lock()
        self.control_token: str | None = None  # set by a serving process for the local CLI
        # set by `stats-service demo`: anonymous reads and writes of the `default` tenant
        # for the life of this process (not stored)
        self.anonymous_default = False

    # -- bootstrap ---------------------------------------------------------------------

    def bootstrap(self) -> str | None:
        """Create tenant `default` and its first admin key. Returns a key to print once."""
        tenant = self._store.get_tenant(DEFAULT_TENANT) or self.create_tenant(DEFAULT_TENANT)
        if self._settings.admin_key is not None:
            if self._store.find_key(hash_key(self._settings.admin_key)) is None:
                self._add_key(tenant, Role.ADMIN, self._settings.admin_key, "STATS_ADMIN_KEY")
            return None
        if self._store.count_keys(tenant.id) == 0:
            raw = new_key()
            self._add_key(tenant, Role.ADMIN, raw, "initial admin key")
            return raw
        return None

    # -- checking keys -----------------------------------------------------------------

    def authenticate(self, raw: str | None) -> Principal:
        if not raw:
            raise Unauthorized(
                "an API key is required: send it as `X-API-Key: <key>` or "
                "`Authorization: Bearer <key>`"
            )
        # compared as bytes: compare_digest refuses a str that is not ASCII
        token = self.control_token
        if token is not None and hmac.compare_digest(raw.encode(), token.encode()):
            tenant = self.tenant(DEFAULT_TENANT)
            return Principal(tenant.id, tenant.name, Role.ADMIN, system=True)
        digest = hash_key(raw)
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        found = self._store.find_key(digest)
        if found is None or not hmac.compare_digest(found[2], digest):
            raise Unauthorized("unknown API key")
        record, tenant, _ = found
        if record.revoked:
            raise Unauthorized("this API key has been revoked")
        principal = Principal(
            tenant.id, tenant.name, Role(record.role), record.id, device=record.device
        )
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now + CACHE_TTL_S, principal)
        return principal

    @staticmethod
    def require(principal: Principal, role: Role) -> Principal:
        if not principal.may(role):
            raise Forbidden(
                f"this key has role {principal.role.value!r}; {role.value!r} is needed here"
            )
        return principal

    # -- tenants and keys --------------------------------------------------------------

    def create_tenant(self, name: str, retention_days: int | None = None) -> Tenant:
        s = self._settings
        return self._store.create_tenant(
            name,
            retention_days=retention_days or s.retention_days,
            max_series=s.max_series,
            max_batch_points=s.max_batch_points,
        )

    def tenant(self, name: str) -> Tenant:
        tenant = self._store.get_tenant(name)
        if tenant is None:
            raise NotFound(f"tenant {name!r} does not exist")
        return tenant

    def principal_for(self, tenant_name: str, role: Role = Role.INGEST) -> Principal:
        """A principal acting for a tenant: what a configured listener (MQTT, StatsD, Home
        Assistant) writes as."""
        tenant = self.tenant(tenant_name)
        return Principal(tenant.id, tenant.name, role, system=True)

    def anonymous_writer(self, tenant_name: str | None) -> Principal | None:
        """The principal of a keyless write to a tenant that allows anonymous writes: the
        tenant named `tenant_name` when there is one, else `default`; None when refused."""
        return self.anonymous(tenant_name, Role.INGEST)

    def anonymous(self, tenant_name: str | None, role: Role) -> Principal | None:
        """The principal of a keyless request to a tenant (`tenant_name` when there is one,
        else `default`) that allows it: writes (role ingest) when its `anonymous_write`
        flag is on, reads (role read) when `anonymous_read` is. Only the routes that
        accept anonymous callers ask (InfluxDB writes, the stats API); None when refused.
        `anonymous_default` (set by `stats-service demo`, for that process only) allows
        both for the `default` tenant."""
        tenant = self._cached_tenant(tenant_name) if tenant_name else None
        tenant = tenant or self._cached_tenant(DEFAULT_TENANT)
        if tenant is None:
            return None
        if role is Role.INGEST:
            allowed = tenant.anonymous_write
        elif role is Role.READ:
            allowed = tenant.anonymous_read
        else:
            return None
        if not allowed and not (self.anonymous_default and tenant.name == DEFAULT_TENANT):
            return None
        return Principal(tenant.id, tenant.name, role, key_id=ANONYMOUS_KEY_ID)

    def _cached_tenant(self, name: str) -> Tenant | None:
        """A tenant's record, kept CACHE_TTL_S (a flag changed over the admin API takes
        effect within that time; `forget_tenants` makes it immediate)."""
        now = time.monotonic()
        with self._lock:
            cached = self._tenants.get(name)
        if cached is not None and cached[0] > now:
            return cached[1]
        tenant = self._store.get_tenant(name)
        if tenant is not None:
            with self._lock:
                if len(self._tenants) > 10_000:
                    self._tenants.clear()
                self._tenants[name] = (now + CACHE_TTL_S, tenant)
        return tenant

    def forget_tenants(self) -> None:
        with self._lock:
            self._tenants.clear()

    def create_key(
        self,
        tenant_name: str,
        role: str,
        name: str | None = None,
        device: str | None = None,
    ) -> tuple[ApiKeyRecord, str]:
        try:
            parsed = Role(role)
        except ValueError:
            raise BadRequest(f"role must be one of ingest, read, admin (got {role!r})") from None
        if device is not None and parsed is not Role.INGEST:
            raise BadRequest("a device key (with `device`) must have role 'ingest'")
        raw = new_key()
        record = self._add_key(self.tenant(tenant_name), parsed, raw, name, device)
        return record, raw

    def _add_key(
        self, tenant: Tenant, role: Role, raw: str, name: str | None, device: str | None = None
    ) -> ApiKeyRecord:
        record = ApiKeyRecord(
            id=new_key_id(),
            tenant_id=tenant.id,
            tenant=tenant.name,
            role=role.value,
            prefix=display_prefix(raw),
            name=name,
            created_at=datetime.now(UTC).replace(tzinfo=None),
            device=device,
        )
        self._store.add_key(record, hash_key(raw))
        return record

    def revoke_key(self, key_id: str, tenant_id: int | None) -> ApiKeyRecord:
        record = self._store.revoke_key(key_id, tenant_id)
        with self._lock:
            self._cache.clear()
        return record
