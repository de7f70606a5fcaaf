"""The series of a tenant: list with filters and pages, get one, resolve a selection.

Every query is scoped to `series.tenant_id = ?`: a series of another tenant is not
found, exactly like one that does not exist.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import duckdb

from ..errors import BadParameter, NotFound
from .columns import number, series_id, time_or_none
from .params import MAX_SERIES_IDS, encode_cursor

SERIES_COLUMNS = (
    "s.id, s.metric, s.device, s.tags, s.unit, epoch_us(s.created_at), epoch_us(s.last_ts), "
    "s.last_value, epoch_us(s.last_state_ts), s.last_state"
)
TAG_PREFIX = "tag."
# Ids of a list (parameter 2) that are series of the tenant (parameter 1).
SCOPED_IDS = "(SELECT id FROM series WHERE tenant_id = ? AND id IN (SELECT unnest(?::BIGINT[])))"


@dataclass(frozen=True, slots=True)
class SeriesInfo:
    id: int
    metric: str
    device: str | None
    tags: dict[str, str]
    unit: str | None
    created_us: int
    last_us: int | None
    last_value: float | None
    last_state_us: int | None = None
    last_state: str | None = None

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> SeriesInfo:
        tags: dict[str, str] = json.loads(row[3])
        return cls(
            int(row[0]), row[1], row[2], tags, row[4], int(row[5]), row[6], row[7], row[8], row[9]
        )

    @property
    def label(self) -> str:
        """`device.metric`, or `metric{k=v,...}` when the series has more tags than its device."""
        if self.device is not None and set(self.tags) == {"device"}:
            return f"{self.device}.{self.metric}"
        if not self.tags:
            return self.metric
        return self.metric + "{" + ",".join(f"{k}={v}" for k, v in sorted(self.tags.items())) + "}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": series_id(self.id),
            "metric": self.metric,
            "device": self.device,
            "tags": self.tags,
            "unit": self.unit,
            "created_at": time_or_none(self.created_us),
            "last_ts": time_or_none(self.last_us),
            "last_value": number(self.last_value),
            "last_state_ts": time_or_none(self.last_state_us),
            "last_state": self.last_state,
        }


@dataclass(frozen=True, slots=True)
class SeriesFilter:
    device: str | None = None
    metric: str | None = None
    tags: tuple[tuple[str, str], ...] = ()

    @property
    def empty(self) -> bool:
        return self.device is None and self.metric is None and not self.tags

    def where(self, tenant_id: int) -> tuple[str, list[Any]]:
        """The WHERE clause (over alias `s`) and its parameters."""
        clauses: list[str] = ["s.tenant_id = ?"]
        params: list[Any] = [tenant_id]
        if self.device is not None:
            clauses.append("s.device = ?")
            params.append(self.device)
        if self.metric is not None:
            clauses.append("s.metric = ?")
            params.append(self.metric)
        for key, value in self.tags:
            clauses.append("json_extract_string(s.tags, ?) = ?")
            # a JSON pointer (RFC 6901): no wildcards, any key can be written
            params += ["/" + key.replace("~", "~0").replace("/", "~1"), value]
        return " AND ".join(clauses), params


def tag_filters(query: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """`tag.<key>=<value>` pairs of a query string."""
    pairs = []
    for name, value in query.items():
        if name.startswith(TAG_PREFIX):
            key = name[len(TAG_PREFIX) :]
            if not key:
                raise BadParameter(name, "give the tag key after `tag.`, e.g. tag.room=kitchen")
            pairs.append((key, value))
    return tuple(sorted(pairs))


def list_series(
    cur: duckdb.DuckDBPyConnection, tenant_id: int, where: SeriesFilter, limit: int, offset: int
) -> dict[str, Any]:
    """One page of series ordered by metric, device and id; `next_cursor` or None."""
    clause, params = where.where(tenant_id)
    rows = cur.execute(
        f"SELECT {SERIES_COLUMNS} FROM series s WHERE {clause} "
        "ORDER BY s.metric, s.device NULLS FIRST, s.id LIMIT ? OFFSET ?",
        [*params, limit + 1, offset],
    ).fetchall()
    more = len(rows) > limit
    return {
        "items": [SeriesInfo.from_row(r).as_dict() for r in rows[:limit]],
        "next_cursor": encode_cursor(offset + limit) if more else None,
    }


def get_series(cur: duckdb.DuckDBPyConnection, tenant_id: int, sid: int) -> SeriesInfo:
    rows = cur.execute(
        f"SELECT {SERIES_COLUMNS} FROM series s WHERE s.tenant_id = ? AND s.id = ?",
        [tenant_id, sid],
    ).fetchall()
    if not rows:
        raise NotFound(f"series {sid} does not exist")
    return SeriesInfo.from_row(rows[0])


def series_by_ids(
    cur: duckdb.DuckDBPyConnection, tenant_id: int, ids: list[int]
) -> list[SeriesInfo]:
    """The series of `ids`, in that order; NotFound names the first one that is missing."""
    rows = cur.execute(
        f"SELECT {SERIES_COLUMNS} FROM series s WHERE s.tenant_id = ? "
        "AND s.id IN (SELECT unnest(?::BIGINT[]))",
        [tenant_id, ids],
    ).fetchall()
    found = {info.id: info for info in map(SeriesInfo.from_row, rows)}
    for sid in ids:
        if sid not in found:
            raise NotFound(f"series {sid} does not exist")
    return [found[sid] for sid in ids]


def find_series(
    cur: duckdb.DuckDBPyConnection, tenant_id: int, where: SeriesFilter
) -> list[SeriesInfo]:
    """Every series matching a filter (at most MAX_SERIES_IDS); NotFound when none does."""
    if where.empty:
        raise BadParameter("series", "select series: give series=<id,...>, device= or metric=")
    clause, params = where.where(tenant_id)
    rows = cur.execute(
        f"SELECT {SERIES_COLUMNS} FROM series s WHERE {clause} "
        "ORDER BY s.metric, s.device NULLS FIRST, s.id LIMIT ?",
        [*params, MAX_SERIES_IDS + 1],
    ).fetchall()
    if not rows:
        raise NotFound("no series matches " + _describe(where))
    if len(rows) > MAX_SERIES_IDS:
        raise BadParameter(
            "series", f"more than {MAX_SERIES_IDS} series match; narrow the selection"
        )
    return [SeriesInfo.from_row(r) for r in rows]


def select_series(
    cur: duckdb.DuckDBPyConnection,
    tenant_id: int,
    ids: list[int] | None,
    where: SeriesFilter,
) -> list[SeriesInfo]:
    """The series given by id, or else those matching the filter (not both)."""
    if ids and not where.empty:
        raise BadParameter("series", "give either series=<id,...> or device=/metric=, not both")
    if ids:
        return series_by_ids(cur, tenant_id, ids)
    return find_series(cur, tenant_id, where)


def _describe(where: SeriesFilter) -> str:
    parts = [f"device={where.device!r}"] if where.device is not None else []
    if where.metric is not None:
        parts.append(f"metric={where.metric!r}")
    parts += [f"tag.{k}={v!r}" for k, v in where.tags]
    return ", ".join(parts)
