"""GET /v1/export: points or aggregates as CSV, JSON, NDJSON or Parquet, streamed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from ...query.export import ExportPlan, ExportRequest, export_chunks, plan_export
from ...storage.embedded import EmbeddedStore
from ..deps import ReadPrincipal, ServicesDep
from ..read_models import READ_PROBLEMS

router = APIRouter(tags=["export"])

TEXT: dict[str, Any] = {"schema": {"type": "string"}}
EXPORTED: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The rows, streamed; `Content-Disposition` names a file.",
        "content": {
            "text/csv": TEXT,
            "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
            "application/x-ndjson": TEXT,
            "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
        },
    },
    **READ_PROBLEMS,
}


def _stream(store: EmbeddedStore, plan: ExportPlan) -> Iterator[bytes]:
    with store.reader() as cur:
        yield from export_chunks(cur, plan)


@router.get("/v1/export", response_class=StreamingResponse, responses=EXPORTED)
def export(
    request: Request,
    principal: ReadPrincipal,
    services: ServicesDep,
    series: Annotated[str | None, Query(description="Comma-separated series ids.")] = None,
    device: Annotated[str | None, Query(description="Every series of this device.")] = None,
    metric: str | None = None,
    from_: Annotated[str | None, Query(alias="from", description="Start; default: all.")] = None,
    to: Annotated[str | None, Query(description="End (excluded); default: all.")] = None,
    format: Annotated[str, Query(pattern="^(csv|json|ndjson|parquet)$")] = "csv",
    layout: Annotated[str, Query(pattern="^(long|wide)$")] = "long",
    bucket: Annotated[str | None, Query(description="Export aggregates in buckets.")] = None,
    fn: Annotated[str | None, Query(description="Functions of the buckets; default mean.")] = None,
    tz: Annotated[str | None, Query(description="Time zone of day/week buckets.")] = None,
) -> StreamingResponse:
    """Export points in [from, to) of series (by id, device or metric), streamed."""
    # The parameters above document and check the query; tag.<key>=<value> filters are
    # read from the query string too.
    ask = ExportRequest.from_query(request.query_params)
    now_us, rows = time.time_ns() // 1000, services.settings.export_batch_rows
    with services.store.reader() as cur:
        plan = plan_export(cur, principal.tenant_id, ask, now_us, rows)
    headers = {"Content-Disposition": f'attachment; filename="{plan.filename}"'}
    return StreamingResponse(
        _stream(services.store, plan), media_type=plan.media_type, headers=headers
    )
