"""Versioned device contracts: the catalogue of JSON Schemas (`GET /v1/contracts`, `GET
/v1/contracts/{family}/v{n}`), the temperature/v1 endpoint (`POST
/v1/contracts/temperature`) and the temperature summary (`GET /v1/temperature/summary`).

See docs/contracts/README.md.
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ...errors import BadParameter, NotFound
from ...ingest.protocols.contract_version import SUPPORTED
from ...query.params import decode_offset, parse_limit, parse_tz, time_range
from ...query.temperature import DEFAULT_SPAN_US, MAX_DEVICES, summary
from ...storage.marks_cache import cold_catalog, marks_cache
from ..deps import IngestPrincipal, ReadPrincipal, ServicesDep
from ..problems import PROBLEM_RESPONSES
from ..read_models import READ_PROBLEMS
from ..read_params import Cursor, To, json_response, now_us
from .ingest import IngestAccepted, accepted, read_body

router = APIRouter(tags=["contracts"])

# `<family>-v<n>.schema.json`, or `<family>-v<n>-<part>.schema.json` for a contract sent in
# several kinds of request (epidemic-run: start, steps, finish)
_FILE = re.compile(
    r"^(?P<family>[a-z][a-z0-9-]*?)-v(?P<version>[1-9][0-9]*)(?:-(?P<part>[a-z]+))?"
    r"\.schema\.json$"
)
PART_ORDER = ("start", "steps", "finish")
BASE_ID = "https://statistics-service.local/contracts/"
# where each family is sent; a family without an entry is listed without one
ENDPOINTS: dict[str, str] = {
    "ingest": "POST /v1/ingest",
    "temperature": "POST /v1/contracts/temperature",
    "epidemic-run": "POST /v1/runs, POST /v1/runs/{run}/steps, POST /v1/runs/{run}/finish",
}
DOCS = "docs/contracts/{family}-v{version}.md"


class ContractOut(BaseModel):
    name: str = Field(description="`<family>/v<n>`, the value of a payload's `schema` field.")
    family: str
    version: int
    status: str = Field(
        description="`current` (the newest version), `supported` (older, still accepted) or "
        "`unsupported` (documented, no longer accepted)."
    )
    endpoint: str | None
    schema_url: str = Field(description="Where this server serves the JSON Schema.")
    docs: str = Field(description="The page in the project's docs.")
    title: str | None = None
    description: str | None = None
    parts: list[str] = Field(
        default_factory=list,
        description="For a contract sent in several requests (epidemic-run: start, steps, "
        "finish), its parts: `schema_url?part=<part>` serves one part's schema.",
    )


class ContractsOut(BaseModel):
    items: list[ContractOut]


@cache
def _files() -> dict[tuple[str, int], dict[str, dict[str, Any]]]:
    """Every packaged contract schema: (family, version) -> part ("" if whole) -> schema."""
    found: dict[tuple[str, int], dict[str, dict[str, Any]]] = {}
    for entry in resources.files("stats_service").joinpath("contracts").iterdir():
        match = _FILE.match(entry.name)
        if match is not None:
            schema: dict[str, Any] = json.loads(entry.read_text(encoding="utf-8"))
            key = (match["family"], int(match["version"]))
            found.setdefault(key, {})[match["part"] or ""] = schema
    return found


def _part_names(parts: dict[str, dict[str, Any]]) -> list[str]:
    """The named parts, in the order they are sent (start, steps, finish), others after."""
    names = [p for p in parts if p]
    return [p for p in PART_ORDER if p in names] + sorted(set(names) - set(PART_ORDER))


@cache
def _schemas() -> dict[tuple[str, int], dict[str, Any]]:
    """One JSON Schema per contract version: the file itself, or for a contract of several
    parts a bundle that holds each part (with its own `$id`) under `$defs` and accepts a
    payload of any of them."""
    out: dict[tuple[str, int], dict[str, Any]] = {}
    for (family, version), parts in _files().items():
        if "" in parts:
            out[(family, version)] = parts[""]
            continue
        names = _part_names(parts)
        out[(family, version)] = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"{BASE_ID}{family}-v{version}.schema.json",
            "title": f"{family}/v{version}",
            "description": f"The parts of {family}/v{version}: {', '.join(names)}; each "
            "under `$defs`, one part alone with `?part=`.",
            "anyOf": [{"$ref": f"#/$defs/{name}"} for name in names],
            "$defs": {name: parts[name] for name in names},
        }
    return out


def _entry(family: str, version: int, schema: dict[str, Any]) -> dict[str, Any]:
    newest = max(v for f, v in _schemas() if f == family)
    accepted = SUPPORTED.get(family, (version,))
    status = "current" if version == newest else "supported"
    if version not in accepted:
        status = "unsupported"
    return {
        "name": f"{family}/v{version}",
        "family": family,
        "version": version,
        "status": status,
        "endpoint": ENDPOINTS.get(family),
        "schema_url": f"/v1/contracts/{family}/v{version}",
        "docs": DOCS.format(family=family, version=version),
        "title": schema.get("title"),
        "description": schema.get("description"),
        "parts": _part_names(_files()[(family, version)]),
    }


@router.get("/v1/contracts", response_model=ContractsOut, responses=READ_PROBLEMS)
def list_contracts(principal: ReadPrincipal) -> dict[str, Any]:
    """The device contracts this server accepts, with their versions and status."""
    return {"items": [_entry(f, v, s) for (f, v), s in sorted(_schemas().items())]}


@router.get(
    "/v1/contracts/{family}/{version}",
    responses={
        **READ_PROBLEMS,
        200: {
            "description": "The JSON Schema (draft 2020-12)",
            "content": {"application/schema+json": {"schema": {"type": "object"}}},
        },
    },
)
def get_contract(
    family: str,
    version: Annotated[str, Path(description="`v1`, `v2`, ...")],
    principal: ReadPrincipal,
    part: Annotated[
        str | None, Query(description="One part of a contract of several (`start`, ...).")
    ] = None,
) -> Response:
    """The JSON Schema of one contract version, e.g. `/v1/contracts/temperature/v1`."""
    match = re.fullmatch(r"v([1-9][0-9]{0,5})", version)
    key = (family, int(match[1])) if match else None
    schema = _schemas().get(key) if key else None
    if schema is None or key is None:
        known = ", ".join(f"{f}/v{v}" for f, v in sorted(_schemas()))
        raise NotFound(f"no contract {family}/{version}; this server has {known}")
    if part is not None:
        parts = _files()[key]
        if part not in parts or not part:
            names = ", ".join(_part_names(parts)) or "none (it is one schema)"
            raise BadParameter("part", f"{family}/{version} has no part {part!r}; parts: {names}")
        schema = parts[part]
    return Response(
        json.dumps(schema, ensure_ascii=False).encode(), media_type="application/schema+json"
    )


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with its `$defs` references replaced by their targets (for the OpenAPI
    document, where `#/$defs/...` would point at the document's root)."""
    defs = schema.get("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {k: resolve(v) for k, v in node.items() if k not in ("$defs", "$schema", "$id")}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    out: dict[str, Any] = resolve(schema)
    return out


TEMPERATURE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": _inline(_schemas()[("temperature", 1)])}},
    }
}


@router.post(
    "/v1/contracts/temperature",
    status_code=202,
    response_model=IngestAccepted,
    responses={
        **PROBLEM_RESPONSES,
        200: {"model": IngestAccepted, "description": "A retry"},
    },
    openapi_extra=TEMPERATURE_BODY,
    tags=["temperature"],
)
async def post_temperature(
    request: Request,
    principal: IngestPrincipal,
    services: ServicesDep,
    precision: Annotated[str | None, Query(pattern="^(s|ms|us|ns)$")] = None,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> JSONResponse:
    """Store a temperature/v1 reading or a board's buffered readings; answers once they
    are durable (see docs/contracts/temperature-v1.md)."""
    body = await read_body(request, services.settings.max_body_bytes)
    params = {"precision": precision} if precision else {}
    result = await services.pipeline.ingest(
        principal, "temperature", body, params=params, idempotency_key=idempotency_key
    )
    return accepted(result)


class MetricSummary(BaseModel):
    unit: str | None
    count: int
    min: float | None
    max: float | None
    mean: float | None
    last: float | None
    last_ts: str | None


class DaySummary(BaseModel):
    day: str = Field(description="The local date (in `tz`).")
    start: str = Field(description="The first instant of that day.")
    readings: int = Field(description="Temperature readings that day.")
    temperature_min: float | None = None
    temperature_max: float | None = None
    humidity_min: float | None = None
    humidity_max: float | None = None


class DeviceSummary(BaseModel):
    device: str
    firmware: str | None = Field(description="The latest firmware version reported (any time).")
    last_ts: str | None = Field(description="Time of the last temperature reading in range.")
    last_temperature: float | None
    metrics: dict[str, MetricSummary] = Field(
        description="temperature, humidity, pressure, battery, rssi (those the device has)."
    )
    daily: list[DaySummary]


class TemperatureSummaryOut(BaseModel):
    from_: str | None = Field(alias="from")
    to: str | None
    tz: str
    devices: list[DeviceSummary]
    next_cursor: str | None


@router.get(
    "/v1/temperature/summary",
    response_model=TemperatureSummaryOut,
    responses=READ_PROBLEMS,
    tags=["temperature"],
)
def temperature_summary(
    principal: ReadPrincipal,
    services: ServicesDep,
    from_: Annotated[
        str | None, Query(alias="from", description="Start (included); default to-7d.")
    ] = None,
    to: To = None,
    device: Annotated[str | None, Query(description="Only this device.")] = None,
    tz: Annotated[str, Query(description="IANA zone of the daily rows; default UTC.")] = "UTC",
    limit: Annotated[str | None, Query(description=f"Devices per page, 1-{MAX_DEVICES}.")] = None,
    cursor: Cursor = None,
) -> Response:
    """Per device with temperature/v1 series: last reading and when, min/max/mean over
    [from, to) and daily min/max, humidity (and pressure, battery, rssi) alongside."""
    span = time_range(from_, to, now_us(), default_span_us=DEFAULT_SPAN_US)
    zone = parse_tz(tz)
    page = parse_limit("limit", limit, 100, MAX_DEVICES)
    offset = decode_offset("cursor", cursor)
    with services.store.reader() as cur:
        marks, cold = marks_cache(services.store), cold_catalog(services.store)
        body = summary(
            cur,
            principal.tenant_id,
            span,
            device=device,
            tz=zone,
            limit=page,
            offset=offset,
            marks=marks,
            cold=cold,
        )
    return json_response(body)
