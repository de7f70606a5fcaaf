"""`stats-service export` when no server runs on the data dir: stream from the file."""

from __future__ import annotations

import time
from collections.abc import Iterator

from .query.export import ExportRequest, export_chunks, plan_export
from .services import Services


def local_export(services: Services, tenant: str, params: dict[str, str]) -> Iterator[bytes]:
    """The same bytes GET /v1/export answers, for `tenant`, read from the store directly."""
    tenant_id = services.auth.tenant(tenant).id
    ask = ExportRequest.from_query(params)
    now_us = time.time_ns() // 1000
    with services.store.reader() as cur:
        plan = plan_export(cur, tenant_id, ask, now_us, services.settings.export_batch_rows)
    with services.store.reader() as cur:
        yield from export_chunks(cur, plan)
