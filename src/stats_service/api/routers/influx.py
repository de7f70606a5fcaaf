"""InfluxDB-compatible HTTP endpoints: 1.x `/write`, `/query`, `/ping`; 2.x `/api/v2/write`,
`/api/v2/query` (`buckets()` only), `/health`.

Thin handlers: find the key, check the database name, read (and inflate) the body, hand
it to the pipeline as protocol `influx`, and answer as InfluxDB does. Every database or
bucket of a tenant writes into the tenant's one store; the names are only recorded. The
endpoints are left out of the OpenAPI document: their contract is InfluxDB's (see
docs/protocols/influxdb.md), and their answers are InfluxDB's JSON, not problem+json.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

import anyio
import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from ...errors import BadRequest, Forbidden, NotFound, ServiceError
from ...model import Principal, Role
from ...query import influxql
from ...query.flux_buckets import buckets_csv, is_buckets_query
from ...services import Services
from ..deps import ServicesDep
from ..gzip_body import read_payload
from ..influx_answers import (
    INFLUX_VERSION,
    VERSION_HEADERS,
    Dialect,
    InfluxError,
    error,
    from_service_error,
    json_answer,
    no_content,
    partial_write,
)
from ..influx_auth import influx_principal, is_anonymous
from .ingest import read_body

router = APIRouter(tags=["influxdb"], include_in_schema=False)

# the `precision` values each API accepts, and what the parser is given for them
V1_PRECISIONS = {
    "n": "ns",
    "ns": "ns",
    "u": "us",
    "us": "us",
    "ms": "ms",
    "s": "s",
    "m": "m",
    "h": "h",
}
V2_PRECISIONS = {"ns": "ns", "us": "us", "ms": "ms", "s": "s"}
MAX_DATABASE_NAME = 256


def _precision(dialect: Dialect, value: str | None) -> str:
    if not value:
        return "ns"
    table = V1_PRECISIONS if dialect is Dialect.V1 else V2_PRECISIONS
    precision = table.get(value)
    if precision is None:
        units = ", ".join(table)
        raise InfluxError(400, f"invalid precision {value!r}; valid precision units are {units}")
    return precision


def _name_problem(name: str, what: str = "database") -> str | None:
    """Why a database/bucket name is refused, or None: names are free text, bounded."""
    if len(name) > MAX_DATABASE_NAME or not name.isprintable():
        return (
            f"invalid {what} name {name[:64]!r}: at most {MAX_DATABASE_NAME} characters, "
            "no control characters"
        )
    return None


async def _database(services: Services, principal: Principal, name: str, dialect: Dialect) -> None:
    """Record `name` for the tenant (or refuse it with 404 when auto-create is off)."""
    problem = _name_problem(name, "database" if dialect is Dialect.V1 else "bucket")
    if problem is not None:
        raise InfluxError(400, problem)
    create = services.settings.influx_auto_create
    known = await anyio.to_thread.run_sync(
        lambda: services.store.ensure_database(principal.tenant_id, name, create=create)
    )
    if not known:
        if dialect is Dialect.V1:
            raise InfluxError(404, f'database not found: "{name}"')
        raise InfluxError(404, f'bucket "{name}" not found')


async def _write(
    request: Request, services: Services, dialect: Dialect, database: str | None
) -> Response:
    principal = influx_principal(request, services, database)
    precision = _precision(dialect, request.query_params.get("precision"))
    if not database:
        raise InfluxError(
            400, "database is required" if dialect is Dialect.V1 else "bucket is required"
        )
    if not principal.may(Role.INGEST):
        raise Forbidden(
            f"this key has role {principal.role.value!r} and is not authorized to write to "
            f'database "{database}"'
        )
    await _database(services, principal, database, dialect)
    body = await read_payload(request, services.settings.max_body_bytes)
    if not body.strip():  # Home Assistant's connection test: nothing to write
        return no_content()
    result = await services.pipeline.ingest(
        principal, "influx", body, params={"precision": precision, "db": database}
    )
    if result.dropped_count:
        return partial_write(dialect, [e.msg for e in result.dropped], result.dropped_count)
    return no_content()


def _answer(dialect: Dialect, exc: Exception) -> Response:
    if isinstance(exc, InfluxError):
        return error(dialect, exc.status, exc.message)
    assert isinstance(exc, ServiceError)
    return from_service_error(dialect, exc)


@router.post("/write", status_code=204)
async def write_v1(request: Request, services: ServicesDep) -> Response:
    """InfluxDB 1.x write: line protocol into the key's tenant; `db` names the database."""
    try:
        return await _write(request, services, Dialect.V1, request.query_params.get("db"))
    except (InfluxError, ServiceError) as exc:
        return _answer(Dialect.V1, exc)


@router.post("/api/v2/write", status_code=204)
async def write_v2(request: Request, services: ServicesDep) -> Response:
    """InfluxDB 2.x write; `org`/`orgID` are ignored (the key names the tenant)."""
    query = request.query_params
    bucket = query.get("bucket")
    if bucket and "/" in bucket:  # InfluxDB 1.8's "database/retention-policy" form
        bucket = bucket.split("/", 1)[0]
    try:
        return await _write(request, services, Dialect.V2, bucket)
    except (InfluxError, ServiceError) as exc:
        return _answer(Dialect.V2, exc)


@router.api_route("/ping", methods=["GET", "HEAD"], status_code=204)
async def ping(request: Request) -> Response:
    """InfluxDB 1.x liveness, no key needed: 204 with the version headers."""
    if request.query_params.get("verbose", "").lower() in ("true", "1"):
        return json_answer({"version": INFLUX_VERSION})
    return no_content()


@router.get("/health")
async def health() -> Response:
    """InfluxDB 2.x (and 1.8) health check."""
    return json_answer(
        {
            "name": "influxdb",
            "message": "ready for queries and writes",
            "status": "pass",
            "checks": [],
            "version": INFLUX_VERSION,
        }
    )


# -- queries ----------------------------------------------------------------------------


async def _form(request: Request, limit: int) -> dict[str, str]:
    """Query parameters, plus those of a form body (`POST /query` sends `q` there)."""
    params = dict(request.query_params)
    content_type = request.headers.get("content-type", "")
    if request.method == "POST" and content_type.startswith("application/x-www-form-urlencoded"):
        body = await read_body(request, limit)
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        params.update({k: v[-1] for k, v in form.items()})
    return params


def _authorize(statement: influxql.Statement, principal: Principal, services: Services) -> None:
    """Which keys may run which statement (InfluxDB checks the whole query first)."""
    kind = statement.kind
    if kind is influxql.Kind.CREATE_DATABASE:
        if principal.role is Role.ADMIN or (
            principal.may(Role.INGEST) and services.settings.influx_auto_create
        ):
            return
        raise Forbidden(
            "error authorizing query: CREATE DATABASE needs an admin key (or an ingest key "
            "while STATS_INFLUX_AUTO_CREATE is on)"
        )
    if is_anonymous(principal):
        raise InfluxError(401, "authorization failed")
    if kind is influxql.Kind.SHOW_MEASUREMENTS and not principal.may(Role.READ):
        raise Forbidden(
            f"error authorizing query: this key has role {principal.role.value!r}; "
            "SHOW MEASUREMENTS needs a read or admin key"
        )


def _run(
    statement: influxql.Statement, principal: Principal, services: Services, db: str | None
) -> dict[str, Any]:
    """One statement's result (without its statement_id)."""
    store = services.store
    kind = statement.kind
    if kind is influxql.Kind.SHOW_DATABASES:
        names = store.list_databases(principal.tenant_id)
        return {"series": [influxql.names_series("databases", names)]}
    if kind is influxql.Kind.SHOW_MEASUREMENTS:
        with store.reader() as cur:
            names = influxql.measurements(cur, principal.tenant_id)
        return {"series": [influxql.names_series("measurements", names)]} if names else {}
    if kind is influxql.Kind.SHOW_RETENTION_POLICIES:
        database = statement.database or db
        if not database:
            return {"error": "database name required"}
        if not store.ensure_database(principal.tenant_id, database, create=False):
            return {"error": f"database not found: {database}"}
        tenant = store.get_tenant_by_id(principal.tenant_id)
        days = tenant.retention_days if tenant is not None else 0
        return {"series": [influxql.retention_policies(days)]}
    if kind is influxql.Kind.CREATE_DATABASE:
        assert statement.database is not None
        problem = _name_problem(statement.database)
        if problem is not None:
            return {"error": problem}
        store.ensure_database(principal.tenant_id, statement.database, create=True)
        return {}
    return {"error": statement.unsupported_message}


def _execute(
    statements: list[influxql.Statement], principal: Principal, services: Services, db: str | None
) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    for index, statement in enumerate(statements):
        result = {"statement_id": index, **_run(statement, principal, services, db)}
        results.append(result)
        if "error" in result:  # InfluxDB stops at the first failing statement
            break
    return results


@router.api_route("/query", methods=["GET", "POST"])
async def query_v1(request: Request, services: ServicesDep) -> Response:
    """InfluxDB 1.x query: answers only the statements clients use to check a connection."""
    try:
        params = await _form(request, services.settings.max_body_bytes)
        text = params.get("q", "")
        if not text.strip():
            raise InfluxError(400, 'missing required parameter "q"')
        statements = influxql.parse_query(text)
        db = params.get("db") or None
        target = next((s.database for s in statements if s.database), None) or db
        principal = influx_principal(request, services, target)
        for statement in statements:
            _authorize(statement, principal, services)
        results = await anyio.to_thread.run_sync(_execute, statements, principal, services, db)
    except (InfluxError, ServiceError) as exc:
        return _answer(Dialect.V1, exc)
    return Response(
        orjson.dumps({"results": results}), media_type="application/json", headers=VERSION_HEADERS
    )


def _flux_text(body: bytes, content_type: str) -> str:
    if content_type.startswith("application/vnd.flux"):
        return body.decode("utf-8", "replace")
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InfluxError(400, f"failed to decode request body: {exc}") from None
    if not isinstance(parsed, dict) or not isinstance(parsed.get("query"), str):
        raise InfluxError(
            400, 'failed to decode request body: a JSON object with "query" is needed'
        )
    return str(parsed["query"])


@router.post("/api/v2/query")
async def query_v2(request: Request, services: ServicesDep) -> Response:
    """InfluxDB 2.x Flux query: only `buckets()` (Home Assistant's connection check)."""
    try:
        principal = influx_principal(request, services, None)
        if is_anonymous(principal):
            raise InfluxError(401, "unauthorized access")
        body = await read_body(request, services.settings.max_body_bytes)
        flux = _flux_text(body, request.headers.get("content-type", ""))
        if not is_buckets_query(flux):
            raise BadRequest(
                f"query not supported: {flux.strip()[:200]!r}. StatisticsService answers only "
                "the Flux query buckets(); read data with GET /v1/series and "
                "/v1/series/{id}/points (see docs/protocols/influxdb.md)"
            )
        names = await anyio.to_thread.run_sync(services.store.list_databases, principal.tenant_id)
        tenant = services.store.get_tenant_by_id(principal.tenant_id)
        if tenant is None:
            raise NotFound("the key's tenant no longer exists")
    except (InfluxError, ServiceError) as exc:
        return _answer(Dialect.V2, exc)
    csv = buckets_csv(principal.tenant_id, names, tenant.retention_days)
    return Response(csv, media_type="text/csv; charset=utf-8", headers=VERSION_HEADERS)
