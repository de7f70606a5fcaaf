"""Chart annotations: marks (a moment) and bands (a time range) on charts.

Users add notes ("firmware 1.2 deployed"); detectors and alerting add anomalies and
alerts (through `storage.annotations.add_annotation`, or this API). The dashboard's
charts list them for the device, series and range they show. See docs/annotations.md.

Invalid bodies answer 422 with every field error located (`body.end`, ...), as do a
device or series the tenant does not have; invalid query parameters answer 400 like
the other read routes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from ...errors import BadParameter, BadRequest, FieldError, Forbidden, NotFound
from ...model import Principal, Role
from ...query.params import parse_series_ids, parse_time
from ...storage import annotations as store
from ..deps import IngestPrincipal, ReadPrincipal, ServicesDep
from ..errors import loc
from ..problems import PROBLEM_RESPONSES, _problem
from ..read_models import READ_PROBLEMS

INVALID = _problem(
    "Invalid annotation (every field error is listed with its location), or a device or "
    "series the tenant does not have"
)
WRITE_PROBLEMS: dict[int | str, dict[str, Any]] = {
    **{c: PROBLEM_RESPONSES[c] for c in (400, 401, 403, 404, 413, 503)},
    422: INVALID,
}
DELETE_PROBLEMS: dict[int | str, dict[str, Any]] = {
    c: PROBLEM_RESPONSES[c] for c in (400, 401, 403, 404, 503)
}


class BodyErrorsAre422(APIRoute):
    """Validation errors of the body answer 422 (InvalidAnnotation); of the query or
    path, 400 like every other route."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                found = list(exc.errors())
                if found and all(tuple(e.get("loc", ()))[:1] == ("body",) for e in found):
                    raise store.InvalidAnnotation(
                        [FieldError(loc(e.get("loc", ())), str(e.get("msg", ""))) for e in found]
                    ) from None
                raise

        return route


router = APIRouter(tags=["annotations"], route_class=BodyErrorsAre422)

Time = StrictStr | StrictInt | float
AnnotationId = Annotated[int, Path(ge=1, le=2**63 - 1, description="Annotation id.")]


class AnnotationIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "kind": "note",
                    "device": "esp32-01",
                    "start": "2026-12-06T10:00:00Z",
                    "title": "firmware 1.2 deployed",
                },
                {
                    "kind": "anomaly",
                    "series_id": "-4011223344556677",
                    "start": "now-15m",
                    "end": "now-5m",
                    "title": "temperature spike",
                    "severity": "warning",
                    "source": "detector:zscore",
                    "meta": {"score": 4.2},
                },
            ]
        },
    )

    kind: Literal["note", "anomaly", "alert"] = Field("note", description="What it is.")
    title: str = Field(min_length=1, max_length=store.MAX_TITLE, description="Label on the chart.")
    text: str | None = Field(None, max_length=store.MAX_TEXT, description="Longer text (hover).")
    start: Time = Field(
        description="A moment: RFC 3339, epoch seconds/ms/us/ns, `now` or `now-1h`."
    )
    end: Time | None = Field(
        None, description="Makes it a band from `start` to `end` (same syntax; not before start)."
    )
    device: str | None = Field(
        None, min_length=1, max_length=256, description="A device of the tenant."
    )
    series_id: StrictStr | StrictInt | None = Field(
        None,
        description="A series of the tenant (decimal string); its device is filled in.",
    )
    severity: Literal["info", "warning", "critical"] = "info"
    source: str = Field(
        "user",
        max_length=129,
        description="Who wrote it: `user` (the default), `detector:<name>`, `alert:<rule>`.",
    )
    tags: list[str] = Field(default_factory=list, max_length=store.MAX_TAGS)
    meta: dict[str, Any] = Field(
        default_factory=dict, description="Any JSON object (at most 8 KiB), e.g. a score."
    )


class AnnotationOut(BaseModel):
    id: int
    kind: str = Field(description="note, anomaly or alert.")
    device: str | None
    series_id: str | None = Field(description="Series id as a decimal string, or null.")
    start: str = Field(description="RFC 3339.")
    end: str | None = Field(description="RFC 3339 for a band; null for a mark (a moment).")
    title: str
    text: str | None
    severity: str = Field(description="info, warning or critical.")
    source: str
    tags: list[str]
    meta: dict[str, Any]
    created_at: str
    created_by: str | None = Field(description="Id of the API key that created it.")


class AnnotationPage(BaseModel):
    items: list[AnnotationOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: last.")


def _now_us() -> int:
    return time.time_ns() // 1000


def _body_time(
    name: str, value: str | int | float | None, now_us: int
) -> tuple[int | None, list[FieldError]]:
    if value is None:
        return None, []
    try:
        return parse_time(name, str(value), now_us), []
    except BadRequest as exc:
        return None, [FieldError(f"body.{name}", exc.errors[0].msg if exc.errors else exc.detail)]


def _body_series(value: str | int | None) -> tuple[int | None, list[FieldError]]:
    if value is None:
        return None, []
    try:
        number = int(value) if isinstance(value, int) else int(value.strip(), 10)
    except ValueError:
        return None, [FieldError("body.series_id", f"{value!r} is not a series id")]
    if not -(2**63) <= number <= 2**63 - 1:
        return None, [FieldError("body.series_id", f"{value!r} is outside signed 64-bit")]
    return number, []


@router.post(
    "/v1/annotations",
    status_code=201,
    response_model=AnnotationOut,
    responses=WRITE_PROBLEMS,
)
async def create_annotation(
    body: AnnotationIn, principal: IngestPrincipal, services: ServicesDep
) -> dict[str, Any]:
    """Add a mark (`start` only) or a band (`start` and `end`) to the charts of a device,
    of one series, or of the whole tenant (neither). Needs the ingest or admin role; a
    device token annotates only its own device."""
    now = _now_us()
    start, errors = _body_time("start", body.start, now)
    end, end_errors = _body_time("end", body.end, now)
    series_id, series_errors = _body_series(body.series_id)
    errors += end_errors + series_errors
    if errors:
        raise store.InvalidAnnotation(errors)
    assert start is not None
    if principal.device is not None and body.device not in (None, principal.device):
        raise Forbidden(
            f"this key is the device token of {principal.device!r}; it may only annotate "
            f"that device, not {body.device!r}"
        )
    new = store.NewAnnotation(
        kind=body.kind,
        title=body.title,
        start_us=start,
        end_us=end,
        device=body.device if principal.device is None else principal.device,
        series_id=series_id,
        text=body.text,
        severity=body.severity,
        source=body.source,
        tags=tuple(body.tags),
        meta=body.meta,
        created_by=principal.key_id,
    )
    made = await anyio.to_thread.run_sync(
        store.create, services.store, principal.tenant_id, new, "body."
    )
    return made.as_dict()


def _split(text: str | None) -> list[str]:
    return [p for p in (s.strip() for s in (text or "").split(",")) if p]


@router.get("/v1/annotations", response_model=AnnotationPage, responses=READ_PROBLEMS)
def list_annotations(
    principal: ReadPrincipal,
    services: ServicesDep,
    device: Annotated[
        str | None,
        Query(description="Annotations of this device (with `series`: its device-wide ones)."),
    ] = None,
    series: Annotated[
        str | None, Query(description="Comma-separated series ids: annotations of these series.")
    ] = None,
    kind: Annotated[
        str | None, Query(description="Comma-separated kinds: note, anomaly, alert.")
    ] = None,
    include_global: Annotated[
        bool, Query(description="Also the tenant-wide annotations (no device, no series).")
    ] = False,
    from_: Annotated[
        str | None,
        Query(alias="from", description="Overlapping [from, to): RFC 3339, epoch, now-1h."),
    ] = None,
    to: Annotated[str | None, Query(description="End of the range (excluded).")] = None,
    order: Annotated[
        Literal["newest", "start"],
        Query(description="newest: latest start first (default); start: earliest first."),
    ] = "newest",
    limit: Annotated[int, Query(ge=1, le=store.MAX_LIMIT, description="Page size.")] = 100,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the page before.")] = None,
) -> dict[str, Any]:
    """Annotations of the tenant overlapping a time range, paged. Without `device` and
    `series` every annotation of the tenant; with them, those of the device or series
    (what a chart of them shows; add `include_global=true` for the tenant-wide ones)."""
    now = _now_us()
    kinds = _split(kind)
    unknown = [k for k in kinds if k not in store.KINDS]
    if unknown:
        raise BadParameter("kind", f"{', '.join(unknown)}: kinds are {', '.join(store.KINDS)}")
    from_us = parse_time("from", from_, now) if from_ else None
    to_us = parse_time("to", to, now) if to else None
    if from_us is not None and to_us is not None and to_us <= from_us:
        raise BadParameter("to", "the end of the range must come after its start")
    where = store.AnnotationFilter(
        device=device,
        series=tuple(parse_series_ids("series", series)) if series else (),
        kinds=tuple(dict.fromkeys(kinds)),
        include_global=include_global,
        from_us=from_us,
        to_us=to_us,
        order=order,
    )
    with services.store.reader() as cur:
        found, next_cursor = store.list_annotations(cur, principal.tenant_id, where, limit, cursor)
    return {"items": [a.as_dict() for a in found], "next_cursor": next_cursor}


@router.get(
    "/v1/annotations/{annotation_id}", response_model=AnnotationOut, responses=READ_PROBLEMS
)
def get_annotation(
    annotation_id: AnnotationId, principal: ReadPrincipal, services: ServicesDep
) -> dict[str, Any]:
    """One annotation of the tenant."""
    with services.store.reader() as cur:
        return store.get(cur, principal.tenant_id, annotation_id).as_dict()


def _may_delete(principal: Principal, found: store.Annotation) -> None:
    if principal.may(Role.ADMIN):
        return
    if principal.key_id is None or found.created_by != principal.key_id:
        raise Forbidden(
            f"this key has role {principal.role.value!r}: it may delete only the annotations "
            "it created; 'admin' deletes any"
        )


@router.delete(
    "/v1/annotations/{annotation_id}",
    status_code=204,
    response_class=Response,
    responses=DELETE_PROBLEMS,
)
async def delete_annotation(
    annotation_id: AnnotationId, principal: IngestPrincipal, services: ServicesDep
) -> Response:
    """Remove an annotation: an admin any of the tenant's, an ingest key those it
    created."""

    def remove() -> None:
        with services.store.reader() as cur:
            found = store.get(cur, principal.tenant_id, annotation_id)
        _may_delete(principal, found)
        if not store.delete(services.store, principal.tenant_id, annotation_id):
            raise NotFound(f"annotation {annotation_id} does not exist")

    await anyio.to_thread.run_sync(remove)
    return Response(status_code=204)
