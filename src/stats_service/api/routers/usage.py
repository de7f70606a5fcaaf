"""GET /v1/usage: the caller's usage per day (admins of `default`: any tenant's)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query

from ...errors import Forbidden
from ...query.params import parse_date
from ...query.usage import usage_days
from ..deps import ReadPrincipal, ServicesDep
from ..read_models import READ_PROBLEMS, UsageOut

router = APIRouter(tags=["usage"])


@router.get("/v1/usage", response_model=UsageOut, responses=READ_PROBLEMS)
def get_usage(
    principal: ReadPrincipal,
    services: ServicesDep,
    from_: Annotated[
        str | None, Query(alias="from", description="First day, YYYY-MM-DD; default to-30d.")
    ] = None,
    to: Annotated[str | None, Query(description="Last day (included); default today.")] = None,
    tenant: Annotated[
        str | None,
        Query(
            max_length=63,
            description="Another tenant's usage: admins of `default` only (403 for others); "
            "default the caller's tenant.",
        ),
    ] = None,
) -> dict[str, Any]:
    """Points, bytes, requests and rejected points per UTC day, unflushed counts included."""
    tenant_id = principal.tenant_id
    if tenant is not None and tenant != principal.tenant:
        if not principal.superuser:
            raise Forbidden(f"only an admin of `default` may read the usage of tenant {tenant!r}")
        tenant_id = services.auth.tenant(tenant).id  # 404 for an unknown tenant
    end = parse_date("to", to, datetime.now(UTC).date())
    start = parse_date("from", from_, end - timedelta(days=30))
    with services.store.reader() as cur:
        return usage_days(cur, tenant_id, start, end, services.usage.peek())
