"""Simulation runs (contract epidemic-run/v1): start, steps, finish, and the UI reads.

Steps go through the ingest pipeline like any write (parsed whole, archived, group
committed; answered once durable; Idempotency-Key honoured) as points of the series
tagged `run=<id>`; start and finish are rows of the runs table (`storage/runs.py`),
committed before the answer. See docs/contracts/epidemic-run-v1.md.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel

from ...errors import BadParameter, Conflict, Forbidden, NotFound
from ...ingest.pipeline import keyed_batch_id
from ...ingest.protocols import epidemic_run as contract
from ...model import Principal
from ...query import runs as run_reads
from ...query.export import ExportPlan, ExportRequest, export_chunks, plan_export
from ...query.params import decode_offset, encode_cursor, parse_time
from ...services import Services
from ...storage import runs as run_store
from ...storage.embedded import EmbeddedStore
from ..deps import IngestPrincipal, ReadPrincipal, ServicesDep
from ..problems import PROBLEM_RESPONSES
from ..read_models import READ_PROBLEMS
from .export import EXPORTED
from .ingest import accepted, read_body

router = APIRouter(tags=["runs"])
RUN_NS = uuid.UUID("0b6f4a8e-3c2d-4f7a-9a51-6e2f1d8c4b73")

RunId = Annotated[
    str,
    Path(
        pattern=contract.ID_RE.pattern,
        description="Run id: 1-128 letters, digits and . _ : @ -",
    ),
]
WRITE_PROBLEMS: dict[int | str, dict[str, Any]] = {
    c: PROBLEM_RESPONSES[c] for c in (400, 401, 403, 404, 409, 413, 422, 503)
}


class RunOut(BaseModel):
    id: str
    kind: str
    model: str | None
    name: str | None
    device: str | None
    status: str
    message: str | None
    parameters: dict[str, Any]
    started_at: str
    finished_at: str | None
    time_origin: str
    tick_seconds: float
    steps: int
    last_t: float | None
    series: dict[str, str] | None = None


class RunPage(BaseModel):
    items: list[RunOut]
    next_cursor: str | None


class StepsAccepted(BaseModel):
    batch_id: str
    points: int
    run: str
    steps: int


class Timeline(BaseModel):
    model_config = {"extra": "allow"}
    run: str
    bucket: float | None
    fields: list[str]
    t: list[float | None]


class Summary(BaseModel):
    model_config = {"extra": "allow"}
    run: str
    kind: str
    model: str | None
    status: str
    steps: int
    t_first: float | None
    t_last: float | None
    duration: float | None
    tick_seconds: float
    fields: dict[str, dict[str, Any]]
    epidemic: dict[str, Any] | None = None


class Comparison(BaseModel):
    ids: list[str]
    bucket: float | None
    t: list[float | None]
    runs: dict[str, dict[str, list[float | None]]]
    summaries: dict[str, Summary]


def _now_us() -> int:
    return time.time_ns() // 1000


def _max_future(services: Services, now_us: int) -> int:
    return now_us + int(services.settings.future_skew_s * 1_000_000)


def _body_schema(name: str) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "description": f"epidemic-run/v1 {name}: docs/contracts/epidemic-run-v1.md",
                    }
                }
            },
        }
    }


def _own_device(principal: Principal, device: str | None) -> None:
    if principal.device is not None and device != principal.device:
        raise Forbidden(
            f"this key is the device token of {principal.device!r}; it may only write runs "
            f"of that device, not of {device or 'no device'!r}"
        )


def _get_run(store: EmbeddedStore, tenant_id: int, run_id: str) -> run_store.RunRecord:
    with store.reader() as cur:
        return run_store.get(cur, tenant_id, run_id)


class RunGate:
    """Per run: the step batches in flight. A finish waits for them to commit and holds
    new ones back until it is done, so no batch lands after the finish (in this process:
    the embedded deployment has one API process)."""

    def __init__(self) -> None:
        self._cond = asyncio.Condition()
        self._active: dict[tuple[int, str], int] = {}
        self._closing: set[tuple[int, str]] = set()

    @asynccontextmanager
    async def step(self, key: tuple[int, str]) -> AsyncIterator[None]:
        async with self._cond:
            await self._cond.wait_for(lambda: key not in self._closing)
            self._active[key] = self._active.get(key, 0) + 1
        try:
            yield
        finally:
            async with self._cond:
                left = self._active.pop(key) - 1
                if left:
                    self._active[key] = left
                self._cond.notify_all()

    @asynccontextmanager
    async def finish(self, key: tuple[int, str]) -> AsyncIterator[None]:
        async with self._cond:
            await self._cond.wait_for(lambda: key not in self._closing)
            self._closing.add(key)
            await self._cond.wait_for(lambda: not self._active.get(key))
        try:
            yield
        finally:
            async with self._cond:
                self._closing.discard(key)
                self._cond.notify_all()


def _gate(request: Request) -> RunGate:
    """The app's gate (made on first use, inside the app's event loop)."""
    gate: RunGate | None = getattr(request.app.state, "run_gate", None)
    if gate is None:
        gate = request.app.state.run_gate = RunGate()
    return gate


# -- writes -------------------------------------------------------------------------------


@router.post(
    "/v1/runs",
    status_code=201,
    response_model=RunOut,
    responses={**WRITE_PROBLEMS, 200: {"model": RunOut, "description": "A retry of this start"}},
    openapi_extra=_body_schema("start"),
)
async def start_run(
    request: Request,
    principal: IngestPrincipal,
    services: ServicesDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> JSONResponse:
    """Start a run. The id is the client's (`id`), or one derived from the
    Idempotency-Key, or a new UUID; the same id with the same start is a retry (200)."""
    body = await read_body(request, services.settings.max_body_bytes)
    now = _now_us()
    start = contract.start(body, now, _max_future(services, now))
    device = start.device if start.device is not None else principal.device
    _own_device(principal, device)
    run_id = start.id
    if run_id is None:
        if idempotency_key is not None:
            run_id = str(uuid.uuid5(RUN_NS, f"{principal.tenant_id}:{idempotency_key}"))
        else:
            run_id = str(uuid.uuid4())
    record = run_store.RunRecord(
        principal.tenant_id,
        run_id,
        contract.KIND,
        start.model,
        start.name,
        device,
        start.parameters,
        start.start_hash,
        run_store.RUNNING,
        None,
        start.started_us,
        None,
        start.origin_us,
        start.tick_us,
        0,
        None,
    )
    run, created = await anyio.to_thread.run_sync(run_store.create, services.store, record)
    return JSONResponse(run_reads.run_dict(run), status_code=201 if created else 200)


@router.post(
    "/v1/runs/{run}/steps",
    status_code=202,
    response_model=StepsAccepted,
    responses={**WRITE_PROBLEMS, 200: {"model": StepsAccepted, "description": "A retry"}},
    openapi_extra=_body_schema("steps"),
)
async def post_steps(
    request: Request,
    run: RunId,
    principal: IngestPrincipal,
    services: ServicesDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> JSONResponse:
    """A batch of steps; answered once durable. A repeated t replaces the earlier step."""
    body = await read_body(request, services.settings.max_body_bytes)
    async with _gate(request).step((principal.tenant_id, run)):
        record = await anyio.to_thread.run_sync(_get_run, services.store, principal.tenant_id, run)
        _own_device(principal, record.device)
        if record.finished and not _committed_retry(services, principal, idempotency_key):
            raise Conflict(f"run {run!r} ended as {record.status!r}; it takes no more steps")
        params = contract.step_params(
            record.id,
            record.model or "custom",
            record.device,
            record.origin_us,
            record.tick_us,
            int(record.params.get("population", 0)),
        )
        result = await services.pipeline.ingest(
            principal, contract.PROTOCOL, body, params=params, idempotency_key=idempotency_key
        )
        steps = await anyio.to_thread.run_sync(_note_steps, services.store, record)
    return accepted(result, {**result.body, "run": record.id, "steps": steps})


def _committed_retry(services: Services, principal: Principal, key: str | None) -> bool:
    """A retry (same Idempotency-Key) of a batch committed before the run ended."""
    if key is None or not 0 < len(key) <= 255:
        return False
    batch_id = keyed_batch_id(principal.tenant_id, key)
    return services.store.idempotent_response(batch_id) is not None


def _note_steps(store: EmbeddedStore, record: run_store.RunRecord) -> int:
    with store.reader() as cur:
        steps, last_t = run_reads.step_stats(cur, record)
    if last_t is not None:
        run_store.note_steps(store, record.tenant_id, record.id, steps, last_t)
    return steps


@router.post(
    "/v1/runs/{run}/finish",
    response_model=RunOut,
    responses=WRITE_PROBLEMS,
    openapi_extra=_body_schema("finish"),
)
async def finish_run(
    request: Request, run: RunId, principal: IngestPrincipal, services: ServicesDep
) -> JSONResponse:
    """End a run: finished, failed or cancelled, with an optional message."""
    body = await read_body(request, services.settings.max_body_bytes)
    now = _now_us()
    done = contract.finish(body, now, _max_future(services, now))
    async with _gate(request).finish((principal.tenant_id, run)):
        record = await anyio.to_thread.run_sync(_get_run, services.store, principal.tenant_id, run)
        _own_device(principal, record.device)
        await anyio.to_thread.run_sync(_note_steps, services.store, record)
        finished, _ = await anyio.to_thread.run_sync(
            run_store.finish,
            services.store,
            principal.tenant_id,
            run,
            done.status,
            done.message,
            done.finished_us,
        )
    return JSONResponse(run_reads.run_dict(finished))


# -- reads ----------------------------------------------------------------------------------


@router.get("/v1/runs", response_model=RunPage, responses=READ_PROBLEMS)
def list_runs(
    principal: ReadPrincipal,
    services: ServicesDep,
    kind: Annotated[str | None, Query(description="Kind of run: epidemic.")] = None,
    model: Annotated[str | None, Query(description="sir, seir, sird, seird, custom.")] = None,
    device: str | None = None,
    status: Annotated[str | None, Query(pattern="^(running|finished|failed|cancelled)$")] = None,
    from_: Annotated[str | None, Query(alias="from", description="Started at or after.")] = None,
    to: Annotated[str | None, Query(description="Started before.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the page before.")] = None,
) -> dict[str, Any]:
    """Runs of the tenant, newest start first, paged."""
    now = _now_us()
    where = run_store.RunFilter(
        kind,
        device,
        status,
        model,
        parse_time("from", from_, now) if from_ else None,
        parse_time("to", to, now) if to else None,
    )
    offset = decode_offset("cursor", cursor)
    with services.store.reader() as cur:
        found, more = run_store.list_runs(cur, principal.tenant_id, where, limit, offset)
    return {
        "items": [run_reads.run_dict(r) for r in found],
        "next_cursor": encode_cursor(offset + limit) if more else None,
    }


@router.get("/v1/runs/compare", response_model=Comparison, responses=READ_PROBLEMS)
def compare_runs(
    principal: ReadPrincipal,
    services: ServicesDep,
    ids: Annotated[str, Query(description="Comma-separated run ids (2-10).")],
    fields: Annotated[str | None, Query(description="Fields to align; default all.")] = None,
    bucket: Annotated[str | None, Query(description="Bucket width in t units.")] = None,
) -> dict[str, Any]:
    """Timelines aligned on t and the summaries of up to 10 runs side by side."""
    wanted = list(dict.fromkeys(i.strip() for i in ids.split(",") if i.strip()))
    if not wanted:
        raise BadParameter("ids", "give run ids: ids=a,b")
    if len(wanted) > run_reads.MAX_COMPARE:
        raise BadParameter("ids", f"at most {run_reads.MAX_COMPARE} runs at once")
    bad = [i for i in wanted if not contract.ID_RE.fullmatch(i)]
    if bad:
        raise NotFound(f"no such run{'s' if len(bad) > 1 else ''}: {', '.join(bad)}")
    with services.store.reader() as cur:
        found = run_store.get_many(cur, principal.tenant_id, wanted)
        return run_reads.compare(cur, found, fields, bucket)


@router.get("/v1/runs/{run}", response_model=RunOut, responses=READ_PROBLEMS)
def get_run(run: RunId, principal: ReadPrincipal, services: ServicesDep) -> dict[str, Any]:
    """One run: parameters, status, times, step count and its series."""
    with services.store.reader() as cur:
        record = run_store.get(cur, principal.tenant_id, run)
        steps, last_t = run_reads.step_stats(cur, record)
        infos = run_reads.run_series(cur, record)
    out = run_reads.run_dict(record, infos)
    out["steps"], out["last_t"] = steps, last_t
    return out


@router.get("/v1/runs/{run}/timeline", response_model=Timeline, responses=READ_PROBLEMS)
def get_timeline(
    run: RunId,
    principal: ReadPrincipal,
    services: ServicesDep,
    fields: Annotated[str | None, Query(description="Comma-separated fields; default all.")] = None,
    bucket: Annotated[
        str | None, Query(description="Bucket width in t units (mean per bucket).")
    ] = None,
) -> dict[str, Any]:
    """Chart-ready arrays: {"t": [...], "susceptible": [...], ...}."""
    with services.store.reader() as cur:
        record = run_store.get(cur, principal.tenant_id, run)
        return run_reads.timeline(cur, record, fields, bucket)


@router.get("/v1/runs/{run}/summary", response_model=Summary, responses=READ_PROBLEMS)
def get_summary(run: RunId, principal: ReadPrincipal, services: ServicesDep) -> dict[str, Any]:
    """Peak, attack rate, duration, final sizes, R0 (estimated and implied) and per-field
    statistics."""
    with services.store.reader() as cur:
        record = run_store.get(cur, principal.tenant_id, run)
        return run_reads.summary(cur, record)


def _stream(store: EmbeddedStore, plan: ExportPlan) -> Iterator[bytes]:
    with store.reader() as cur:
        yield from export_chunks(cur, plan)


@router.get("/v1/runs/{run}/export", response_class=StreamingResponse, responses=EXPORTED)
def export_run(
    run: RunId,
    principal: ReadPrincipal,
    services: ServicesDep,
    format: Annotated[str, Query(pattern="^(csv|json|ndjson|parquet)$")] = "csv",
    layout: Annotated[str, Query(pattern="^(long|wide)$")] = "long",
    bucket: Annotated[str | None, Query(description="Export aggregates in time buckets.")] = None,
    fn: Annotated[str | None, Query(description="Functions of the buckets; default mean.")] = None,
) -> StreamingResponse:
    """Every stored step of the run (its series, selected by tag run=<id>), streamed
    like `GET /v1/export?tag.run=<id>`."""
    ask = ExportRequest(
        tags=((contract.RUN_TAG, run),), format=format, layout=layout, bucket=bucket, fn=fn
    )
    now, rows = _now_us(), services.settings.export_batch_rows
    with services.store.reader() as cur:
        record = run_store.get(cur, principal.tenant_id, run)
        if not run_reads.run_series(cur, record):
            raise NotFound(f"run {run!r} has no steps yet")
        plan = plan_export(cur, principal.tenant_id, ask, now, rows)
    name = f"run-{run}.{plan.filename.rsplit('.', 1)[-1]}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    return StreamingResponse(
        _stream(services.store, plan), media_type=plan.media_type, headers=headers
    )
