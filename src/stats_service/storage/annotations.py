"""Chart annotations: marks and bands on charts, in `annotations` (schema migration 7).

An annotation is a *mark* (a moment: `end_us` is None) or a *band* (a time range,
`start_us` .. `end_us`), of one of three kinds: a user's `note` ("firmware 1.2
deployed"), an `anomaly` written by a detector, an `alert` written by alerting. It may
belong to a device, to one series (its device is then the series' device), or to
neither (tenant-wide: drawn on every chart that asks for those).

Other features add annotations with `add_annotation` (validated like the API's POST):

    from stats_service.storage.annotations import add_annotation

    add_annotation(
        services.store, tenant_id,
        kind="anomaly", title="temperature spike", start_us=t0, end_us=t1,
        series_id=series, severity="warning", source="detector:zscore",
        meta={"score": 4.2},
    )

Reads are scoped to the tenant: another tenant's annotation, device or series is not
found, like one that never was.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb
import orjson

from ..errors import BadParameter, FieldError, NotFound, ServiceError
from ..ingest.timestamps import MAX_US, MIN_US, format_us, us_to_datetime
from .embedded import EmbeddedStore, utcnow

KINDS = ("note", "anomaly", "alert")
SEVERITIES = ("info", "warning", "critical")
ORDERS = ("newest", "start")  # latest start first; earliest start first
SOURCE_RE = re.compile(r"[a-z][a-z0-9_.-]{0,31}(:[\x21-\x7e]{1,96})?")
MAX_TITLE = 200
MAX_TEXT = 4000
MAX_TAGS = 20
MAX_TAG = 64
MAX_META_BYTES = 8192
MAX_LIMIT = 1000

_COLUMNS = (
    "id, tenant_id, kind, device, series_id, epoch_us(start_ts), epoch_us(end_ts), title, "
    "text, severity, source, tags, meta, epoch_us(created_at), created_by"
)


class InvalidAnnotation(ServiceError):
    """422: an annotation that breaks the rules above; lists every field error."""

    status = 422
    title = "Invalid annotation"

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.loc}: {e.msg}" for e in errors[:5]), errors=errors)


@dataclass(frozen=True, slots=True)
class Annotation:
    id: int
    tenant_id: int
    kind: str
    device: str | None
    series_id: int | None
    start_us: int
    end_us: int | None
    title: str
    text: str | None
    severity: str
    source: str
    tags: list[str]
    meta: dict[str, Any]
    created_us: int
    created_by: str | None

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> Annotation:
        return cls(
            id=int(row[0]),
            tenant_id=int(row[1]),
            kind=str(row[2]),
            device=row[3],
            series_id=None if row[4] is None else int(row[4]),
            start_us=int(row[5]),
            end_us=None if row[6] is None else int(row[6]),
            title=str(row[7]),
            text=row[8],
            severity=str(row[9]),
            source=str(row[10]),
            tags=orjson.loads(row[11]),
            meta=orjson.loads(row[12]),
            created_us=int(row[13]),
            created_by=row[14],
        )

    @property
    def band(self) -> bool:
        return self.end_us is not None

    def as_dict(self) -> dict[str, Any]:
        """The API's JSON form: RFC 3339 times, the series id as a decimal string."""
        return {
            "id": self.id,
            "kind": self.kind,
            "device": self.device,
            "series_id": None if self.series_id is None else str(self.series_id),
            "start": format_us(self.start_us),
            "end": None if self.end_us is None else format_us(self.end_us),
            "title": self.title,
            "text": self.text,
            "severity": self.severity,
            "source": self.source,
            "tags": self.tags,
            "meta": self.meta,
            "created_at": format_us(self.created_us),
            "created_by": self.created_by,
        }


@dataclass(frozen=True, slots=True)
class NewAnnotation:
    """What a caller gives; `check` names every problem (locations prefixed by `loc`)."""

    kind: str
    title: str
    start_us: int
    end_us: int | None = None
    device: str | None = None
    series_id: int | None = None
    text: str | None = None
    severity: str = "info"
    source: str = "user"
    tags: Sequence[str] = ()
    meta: dict[str, Any] = field(default_factory=dict)
    created_by: str | None = None

    def problems(self, loc: str = "") -> list[FieldError]:
        out: list[FieldError] = []

        def bad(name: str, msg: str) -> None:
            out.append(FieldError(f"{loc}{name}", msg))

        if self.kind not in KINDS:
            bad("kind", f"{self.kind!r} is not one of {', '.join(KINDS)}")
        if self.severity not in SEVERITIES:
            bad("severity", f"{self.severity!r} is not one of {', '.join(SEVERITIES)}")
        if not self.title.strip():
            bad("title", "give a title (1-200 characters)")
        elif len(self.title) > MAX_TITLE:
            bad("title", f"at most {MAX_TITLE} characters")
        if self.text is not None and len(self.text) > MAX_TEXT:
            bad("text", f"at most {MAX_TEXT} characters")
        if not SOURCE_RE.fullmatch(self.source):
            bad("source", "a lowercase name, optionally `:detail`: user, detector:zscore")
        for name, us in (("start", self.start_us), ("end", self.end_us)):
            if us is not None and not MIN_US <= us <= MAX_US:
                bad(name, "time is outside 1900-01-01 .. 9999-12-31")
        if self.end_us is not None and self.end_us < self.start_us:
            bad("end", "the end of a band must not come before its start")
        if len(self.tags) > MAX_TAGS:
            bad("tags", f"at most {MAX_TAGS} tags")
        for i, tag in enumerate(self.tags):
            if not 1 <= len(tag) <= MAX_TAG:
                bad(f"tags[{i}]", f"a tag has 1-{MAX_TAG} characters")
        if self.device is not None and not 1 <= len(self.device) <= 256:
            bad("device", "a device name has 1-256 characters")
        try:
            meta = orjson.dumps(self.meta)
            if len(meta) > MAX_META_BYTES:
                bad("meta", f"at most {MAX_META_BYTES} bytes of JSON")
        except TypeError as exc:
            bad("meta", f"not JSON: {exc}")
        for name in ("title", "text", "device", "source"):
            if not _text_ok(getattr(self, name)):
                bad(name, "control characters and unpaired surrogates are not allowed")
        if not all(_text_ok(t) for t in self.tags):
            bad("tags", "control characters and unpaired surrogates are not allowed")
        return out


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _text_ok(value: str | None) -> bool:
    if value is None:
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return _CONTROL.search(value) is None


def _naive(us: int) -> datetime:
    return us_to_datetime(us).replace(tzinfo=None)


def _resolve_target(
    con: duckdb.DuckDBPyConnection, tenant_id: int, new: NewAnnotation, loc: str
) -> str | None:
    """The device of the annotation: the one given, or the series' device. An unknown
    device or series (or one of another tenant) is an InvalidAnnotation."""
    device = new.device
    if new.series_id is not None:
        row = con.execute(
            "SELECT device FROM series WHERE id = ? AND tenant_id = ?", [new.series_id, tenant_id]
        ).fetchone()
        if row is None:
            raise InvalidAnnotation(
                [FieldError(f"{loc}series_id", f"series {new.series_id} does not exist")]
            )
        if device is None:
            device = row[0]
        elif row[0] != device:
            raise InvalidAnnotation(
                [
                    FieldError(
                        f"{loc}series_id",
                        f"series {new.series_id} belongs to device {row[0]!r}, not {device!r}",
                    )
                ]
            )
    elif device is not None:
        found = con.execute(
            "SELECT 1 FROM devices WHERE tenant_id = ? AND name = ?", [tenant_id, device]
        ).fetchone()
        if found is None:
            raise InvalidAnnotation(
                [FieldError(f"{loc}device", f"device {device!r} does not exist")]
            )
    return device


def add_annotation(
    store: EmbeddedStore,
    tenant_id: int,
    *,
    kind: str,
    title: str,
    start_us: int,
    end_us: int | None = None,
    device: str | None = None,
    series_id: int | None = None,
    text: str | None = None,
    severity: str = "info",
    source: str = "user",
    tags: Sequence[str] = (),
    meta: dict[str, Any] | None = None,
    created_by: str | None = None,
) -> Annotation:
    """Store one annotation of `tenant_id` and return it (with its id).

    For features that write annotations themselves (a detector's anomaly, an alert):
    times are UTC microseconds; `end_us` makes it a band; `series_id` ties it to one
    series (its device is filled in), `device` to every chart of a device, neither to
    the whole tenant. `source` names the writer (`detector:<name>`, `alert:<rule>`).
    Raises InvalidAnnotation (422) naming every problem, including a device or series
    the tenant does not have."""
    new = NewAnnotation(
        kind=kind,
        title=title,
        start_us=start_us,
        end_us=end_us,
        device=device,
        series_id=series_id,
        text=text,
        severity=severity,
        source=source,
        tags=tuple(tags),
        meta=meta or {},
        created_by=created_by,
    )
    return create(store, tenant_id, new)


def create(store: EmbeddedStore, tenant_id: int, new: NewAnnotation, loc: str = "") -> Annotation:
    """Validate and insert `new`; field errors are located as `{loc}{field}`."""
    problems = new.problems(loc)
    if problems:
        raise InvalidAnnotation(problems)
    with store.transaction() as con:
        device = _resolve_target(con, tenant_id, new, loc)
        row = con.execute(
            "INSERT INTO annotations (id, tenant_id, kind, device, series_id, start_ts, end_ts, "
            "title, text, severity, source, tags, meta, created_at, created_by) VALUES "
            "(nextval('annotation_ids'), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            f"RETURNING {_COLUMNS}",
            [
                tenant_id,
                new.kind,
                device,
                new.series_id,
                _naive(new.start_us),
                None if new.end_us is None else _naive(new.end_us),
                new.title,
                new.text,
                new.severity,
                new.source,
                orjson.dumps(list(new.tags)).decode(),
                orjson.dumps(new.meta).decode(),
                utcnow(),
                new.created_by,
            ],
        ).fetchone()
    assert row is not None
    return Annotation.from_row(row)


def get(cur: duckdb.DuckDBPyConnection, tenant_id: int, annotation_id: int) -> Annotation:
    row = cur.execute(
        f"SELECT {_COLUMNS} FROM annotations WHERE tenant_id = ? AND id = ?",
        [tenant_id, annotation_id],
    ).fetchone()
    if row is None:
        raise NotFound(f"annotation {annotation_id} does not exist")
    return Annotation.from_row(row)


def delete(store: EmbeddedStore, tenant_id: int, annotation_id: int) -> bool:
    """Remove one annotation of the tenant; False when there was none."""
    with store.transaction() as con:
        row = con.execute(
            "DELETE FROM annotations WHERE tenant_id = ? AND id = ? RETURNING id",
            [tenant_id, annotation_id],
        ).fetchone()
    return row is not None


@dataclass(frozen=True, slots=True)
class AnnotationFilter:
    """Which annotations to list. `device` and `series` are alternatives (OR): with
    `series`, `device` adds the device's device-wide annotations (no series) — what a
    chart of those series shows; without `series`, every annotation of the device.
    `include_global` adds the tenant-wide ones (neither device nor series). Time:
    those overlapping [from_us, to_us) (a mark: from_us <= start < to_us)."""

    device: str | None = None
    series: tuple[int, ...] = ()
    kinds: tuple[str, ...] = ()
    include_global: bool = False
    from_us: int | None = None
    to_us: int | None = None
    order: str = "newest"


def encode_cursor(order: str, start_us: int, annotation_id: int) -> str:
    raw = f"{order[0]}:{start_us}:{annotation_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(order: str, text: str) -> tuple[int, int]:
    """(start_us, id) of the last annotation of the page before."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii")
        found = re.fullmatch(r"([ns]):(-?\d{1,20}):(\d{1,19})", raw)
        if found is None:
            raise ValueError(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadParameter(
            "cursor", "not a cursor returned by this API; pass `next_cursor` unchanged"
        ) from None
    if found[1] != order[0]:
        raise BadParameter("cursor", "this cursor belongs to a list of another `order`")
    start_us, annotation_id = int(found[2]), int(found[3])
    if not MIN_US <= start_us <= MAX_US or annotation_id > 2**63 - 1:
        raise BadParameter("cursor", "not a cursor returned by this API")
    return start_us, annotation_id


def list_annotations(
    cur: duckdb.DuckDBPyConnection,
    tenant_id: int,
    where: AnnotationFilter,
    limit: int,
    cursor: str | None = None,
) -> tuple[list[Annotation], str | None]:
    """One page in `where.order` and the cursor of the next (None: the last page)."""
    clauses: list[str] = ["tenant_id = ?"]
    params: list[Any] = [tenant_id]
    targets: list[str] = []
    if where.series:
        targets.append("series_id IN (SELECT unnest(?::BIGINT[]))")
        params.append(list(where.series))
        if where.device is not None:
            targets.append("(device = ? AND series_id IS NULL)")
            params.append(where.device)
    elif where.device is not None:
        targets.append("device = ?")
        params.append(where.device)
    if where.include_global:
        targets.append("(device IS NULL AND series_id IS NULL)")
    if targets:
        clauses.append("(" + " OR ".join(targets) + ")")
    if where.kinds:
        clauses.append("kind IN (SELECT unnest(?::VARCHAR[]))")
        params.append(list(where.kinds))
    if where.to_us is not None:
        clauses.append("start_ts < ?")
        params.append(_naive(where.to_us))
    if where.from_us is not None:
        clauses.append("coalesce(end_ts, start_ts) >= ?")
        params.append(_naive(where.from_us))
    newest = where.order == "newest"
    if cursor:
        start_us, last_id = decode_cursor(where.order, cursor)
        sign = "<" if newest else ">"
        clauses.append(f"(start_ts {sign} ? OR (start_ts = ? AND id {sign} ?))")
        params += [_naive(start_us), _naive(start_us), last_id]
    direction = "DESC" if newest else "ASC"
    rows = cur.execute(
        f"SELECT {_COLUMNS} FROM annotations WHERE {' AND '.join(clauses)} "
        f"ORDER BY start_ts {direction}, id {direction} LIMIT ?",
        [*params, limit + 1],
    ).fetchall()
    found = [Annotation.from_row(r) for r in rows[:limit]]
    more = len(rows) > limit
    next_cursor = encode_cursor(where.order, found[-1].start_us, found[-1].id) if more else None
    return found, next_cursor
