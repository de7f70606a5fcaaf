"""Anomaly scores per series and window in `anomaly_scores` (schema migration 8), and
the windows scored per tenant and day in `usage_analytics`.

A row is keyed by (tenant, series, window_end): scoring the same window again (a
rerun, the scheduled job after real-time scoring, a retrained model) replaces its
score, detector and explanation — never a second row.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import duckdb
import orjson

from ..errors import BadParameter
from ..ingest.timestamps import MAX_US, MIN_US, format_us, us_to_datetime
from .embedded import utcnow


@dataclass(frozen=True, slots=True)
class WindowScore:
    """One window's score: [start_us, end_us), the max point score inside it and why."""

    start_us: int
    end_us: int
    score: float
    explanation: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ScoreRow:
    series_id: int
    window_start_us: int
    window_end_us: int
    score: float
    detector: str
    explanation: dict[str, Any]
    scored_us: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "series_id": str(self.series_id),
            "window_start": format_us(self.window_start_us),
            "window_end": format_us(self.window_end_us),
            "score": self.score,
            "detector": self.detector,
            "explanation": self.explanation,
            "scored_at": format_us(self.scored_us),
        }


def _naive(us: int) -> datetime:
    return us_to_datetime(us).replace(tzinfo=None)


def upsert_scores(
    con: duckdb.DuckDBPyConnection,
    tenant_id: int,
    series_id: int,
    detector: str,
    windows: Sequence[WindowScore],
    *,
    count_usage: int | None = None,
) -> int:
    """Write (insert or replace) these windows' scores inside the caller's transaction;
    `count_usage` windows (default: all) are added to today's `windows_scored`."""
    if not windows:
        return 0
    now = utcnow()
    con.execute(
        "INSERT INTO anomaly_scores (tenant_id, series_id, window_end, window_start, score, "
        "detector, explanation, scored_at) "
        "SELECT ?, ?, make_timestamp(e), make_timestamp(s), v, ?, x, ? FROM ("
        "SELECT unnest(?::BIGINT[]) AS e, unnest(?::BIGINT[]) AS s, "
        "unnest(?::DOUBLE[]) AS v, unnest(?::VARCHAR[]) AS x) "
        "ON CONFLICT (tenant_id, series_id, window_end) DO UPDATE SET "
        "window_start = excluded.window_start, score = excluded.score, "
        "detector = excluded.detector, explanation = excluded.explanation, "
        "scored_at = excluded.scored_at",
        [
            tenant_id,
            series_id,
            detector,
            now,
            [w.end_us for w in windows],
            [w.start_us for w in windows],
            [float(w.score) for w in windows],
            [
                orjson.dumps(w.explanation, option=orjson.OPT_SERIALIZE_NUMPY).decode()
                for w in windows
            ],
        ],
    )
    counted = len(windows) if count_usage is None else count_usage
    if counted:
        add_windows_scored(con, tenant_id, now.date(), counted)
    return len(windows)


def add_windows_scored(
    con: duckdb.DuckDBPyConnection, tenant_id: int, day: date, count: int
) -> None:
    con.execute(
        "INSERT INTO usage_analytics VALUES (?, ?, ?) ON CONFLICT (tenant_id, day) DO UPDATE "
        "SET windows_scored = usage_analytics.windows_scored + excluded.windows_scored",
        [tenant_id, day, count],
    )


def windows_scored(
    cur: duckdb.DuckDBPyConnection, tenant_id: int, start: date, end: date
) -> dict[date, int]:
    rows = cur.execute(
        "SELECT day, windows_scored FROM usage_analytics "
        "WHERE tenant_id = ? AND day BETWEEN ? AND ?",
        [tenant_id, start, end],
    ).fetchall()
    return {row[0]: int(row[1]) for row in rows}


def last_window_end(cur: duckdb.DuckDBPyConnection, tenant_id: int, series_id: int) -> int | None:
    """End (µs) of the newest scored window of a series, None before any."""
    row = cur.execute(
        "SELECT epoch_us(max(window_end)) FROM anomaly_scores "
        "WHERE tenant_id = ? AND series_id = ?",
        [tenant_id, series_id],
    ).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def encode_cursor(window_end_us: int, series_id: int) -> str:
    raw = f"a:{window_end_us}:{series_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str) -> tuple[int, int]:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii")
        found = re.fullmatch(r"a:(-?\d{1,20}):(\d{1,19})", raw)
        if found is None:
            raise ValueError(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadParameter(
            "cursor", "not a cursor returned by this API; pass `next_cursor` unchanged"
        ) from None
    end_us, sid = int(found[1]), int(found[2])
    if not MIN_US <= end_us <= MAX_US or sid > 2**63 - 1:
        raise BadParameter("cursor", "not a cursor returned by this API")
    return end_us, sid


def list_scores(
    cur: duckdb.DuckDBPyConnection,
    tenant_id: int,
    series_ids: Sequence[int],
    from_us: int,
    to_us: int,
    *,
    min_score: float = 0.0,
    limit: int = 1000,
    cursor: str | None = None,
) -> tuple[list[ScoreRow], str | None]:
    """Scores of windows overlapping [from, to) of these series (all of the tenant's
    when empty) — the window still open in real-time scoring too — oldest window first;
    one page and the next page's cursor."""
    clauses = ["tenant_id = ?", "window_end > ?", "window_start < ?", "score >= ?"]
    params: list[Any] = [tenant_id, _naive(from_us), _naive(to_us), min_score]
    if series_ids:
        clauses.append("series_id IN (SELECT unnest(?::BIGINT[]))")
        params.append(list(series_ids))
    if cursor:
        end_us, sid = decode_cursor(cursor)
        clauses.append("(window_end > ? OR (window_end = ? AND series_id > ?))")
        params += [_naive(end_us), _naive(end_us), sid]
    rows = cur.execute(
        "SELECT series_id, epoch_us(window_start), epoch_us(window_end), score, detector, "
        f"explanation, epoch_us(scored_at) FROM anomaly_scores WHERE {' AND '.join(clauses)} "
        "ORDER BY window_end, series_id LIMIT ?",
        [*params, limit + 1],
    ).fetchall()
    found = [
        ScoreRow(
            int(r[0]), int(r[1]), int(r[2]), float(r[3]), str(r[4]), orjson.loads(r[5]), int(r[6])
        )
        for r in rows[:limit]
    ]
    more = len(rows) > limit
    next_cursor = encode_cursor(found[-1].window_end_us, found[-1].series_id) if more else None
    return found, next_cursor


def today() -> date:
    return datetime.now(UTC).date()


def upsert_many(
    con: duckdb.DuckDBPyConnection,
    rows: Sequence[tuple[int, int, str, WindowScore]],
    usage: dict[int, int],
) -> int:
    """(tenant, series, detector, window) rows of many series in one statement (the
    real-time scorer's flush); `usage` adds windows scored per tenant to today's count."""
    if rows:
        now = utcnow()
        con.execute(
            "INSERT INTO anomaly_scores (tenant_id, series_id, window_end, window_start, score, "
            "detector, explanation, scored_at) "
            "SELECT tn, sr, make_timestamp(e), make_timestamp(s), v, d, x, ? FROM ("
            "SELECT unnest(?::INTEGER[]) AS tn, unnest(?::BIGINT[]) AS sr, "
            "unnest(?::BIGINT[]) AS e, unnest(?::BIGINT[]) AS s, unnest(?::DOUBLE[]) AS v, "
            "unnest(?::VARCHAR[]) AS d, unnest(?::VARCHAR[]) AS x) "
            "ON CONFLICT (tenant_id, series_id, window_end) DO UPDATE SET "
            "window_start = excluded.window_start, score = excluded.score, "
            "detector = excluded.detector, explanation = excluded.explanation, "
            "scored_at = excluded.scored_at",
            [
                now,
                [r[0] for r in rows],
                [r[1] for r in rows],
                [r[3].end_us for r in rows],
                [r[3].start_us for r in rows],
                [float(r[3].score) for r in rows],
                [r[2] for r in rows],
                [
                    orjson.dumps(r[3].explanation, option=orjson.OPT_SERIALIZE_NUMPY).decode()
                    for r in rows
                ],
            ],
        )
    day = today()
    for tenant_id, count in usage.items():
        if count:
            add_windows_scored(con, tenant_id, day, count)
    return len(rows)
