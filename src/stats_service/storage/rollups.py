"""Rollup tiers: the tables, the policies as stored, and the maintenance of both.

Each rollup row keeps count, sum, min, max, first (value and time) and last (value and
time) of one series in one bucket of one tier, so mean, min, max, sum, count, first and
last stay exact once the raw points are gone (min of mins, sum of sums, first by time).
Every tier is computed from the raw points directly (not 1h from 1m): the same SQL for
every tier, and no error can carry from one tier to the next.

Watermarks (`rollup_marks`, one row per series and tier; tier 0 is raw):
- `done_until`: every bucket before it is rolled up. It never passes the bucket holding
  the series' newest point (`series.last_ts`) nor the last closed bucket (now - lag), so
  a new point newer than `last_ts` can never land in a rolled-up bucket: the commit hook
  (`record_late_writes`) only looks at points the writer already found to be "not newer
  than the newest" and records their ranges in `rollup_dirty`.
- `since`: first bucket of the tier (a tier added after raw was trimmed starts there).
- `deleted_until`: rows (raw points for tier 0) before it were deleted by the policy.

Late data: a dirty range is re-aggregated from raw where raw still exists; below the raw
watermark the late points are merged into the stored rows (count + count, min of mins,
...) and then deleted from raw, so the next late point is not counted twice. A late
point that replaces one already trimmed from raw (same series and time) is then added
rather than replaced: the one case that is not exact (documented).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import duckdb
import numpy as np
import orjson
import pyarrow as pa

from ..ingest.timestamps import MAX_US, MIN_US
from ..model import Int64Array
from .rollup_policy import Policy, TenantPolicy, format_duration, parse_tenant_policy
from .sources import points_source

LATE_GAP_US = 3600 * 1_000_000  # late points further apart than this are separate ranges
_BEGIN = -(2**62)  # "no watermark yet", far before any timestamp


@dataclass(frozen=True, slots=True)
class Mark:
    tier_us: int
    since_us: int | None
    done_until_us: int | None
    deleted_until_us: int | None


@dataclass(slots=True)
class RunCounts:
    """What one maintenance run did, per tier label (`raw`, `1m`, ...)."""

    rolled: dict[str, int]
    deleted: dict[str, int]
    reaggregated: dict[str, int]

    @classmethod
    def empty(cls) -> RunCounts:
        return cls({}, {}, {})

    def add(self, which: dict[str, int], tier: str, n: int) -> None:
        if n:
            which[tier] = which.get(tier, 0) + n


# -- policies ---------------------------------------------------------------------------


def load_policy(con: duckdb.DuckDBPyConnection, tenant_id: int) -> TenantPolicy | None:
    row = con.execute(
        "SELECT policy FROM rollup_policies WHERE tenant_id = ?", [tenant_id]
    ).fetchone()
    return None if row is None else parse_tenant_policy(orjson.loads(row[0]))


def save_policy(
    con: duckdb.DuckDBPyConnection, tenant_id: int, policy: TenantPolicy, now: datetime
) -> None:
    con.execute(
        "INSERT OR REPLACE INTO rollup_policies VALUES (?, ?, ?)",
        [tenant_id, orjson.dumps(policy.to_json()).decode(), now],
    )


# -- the commit hook --------------------------------------------------------------------


def record_late_writes(con: duckdb.DuckDBPyConnection, sid: Int64Array, ts: Int64Array) -> None:
    """Record the (series, time) ranges of points written at or before their series'
    newest point, where a tier is already rolled up. `sid`/`ts` are sorted by (series,
    time). One vectorised pass and one statement; the caller skips it for pure appends."""
    if sid.size == 0:
        return
    start = np.ones(sid.size, dtype=bool)
    start[1:] = (sid[1:] != sid[:-1]) | (ts[1:] - ts[:-1] > LATE_GAP_US)
    firsts = np.flatnonzero(start)
    lasts = np.append(firsts[1:] - 1, sid.size - 1)
    table = pa.table(
        {
            "series_id": pa.array(sid[firsts], pa.int64()),
            "lo": pa.array(ts[firsts], pa.int64()).cast(pa.timestamp("us")),
            "hi": pa.array(ts[lasts], pa.int64()).cast(pa.timestamp("us")),
        }
    )
    con.register("late_ranges", table)
    try:
        con.execute(
            "INSERT INTO rollup_dirty SELECT l.series_id, l.lo, l.hi FROM late_ranges l "
            "WHERE EXISTS (SELECT 1 FROM rollup_marks m WHERE m.series_id = l.series_id "
            "AND m.tier_us > 0 AND l.lo < m.done_until)"
        )
    finally:
        con.unregister("late_ranges")


# -- maintenance ------------------------------------------------------------------------


def series_policies(
    con: duckdb.DuckDBPyConnection, tenant_id: int, policy: TenantPolicy
) -> dict[Policy, list[int]]:
    """The tenant's series grouped by the policy that applies to each."""
    rows = con.execute(
        "SELECT id, metric, tags FROM series WHERE tenant_id = ? ORDER BY id", [tenant_id]
    ).fetchall()
    groups: dict[Policy, list[int]] = {}
    for sid, metric, tags in rows:
        chosen = policy.for_series(str(metric), json.loads(tags))
        groups.setdefault(chosen, []).append(int(sid))
    return groups


def maintain(
    con: duckdb.DuckDBPyConnection,
    ids: list[int],
    policy: Policy,
    now_us: int,
    lag_us: int,
    counts: RunCounts,
) -> None:
    """One pass over the series `ids` that share `policy`, inside the caller's transaction:
    forget tiers no longer in the policy, re-aggregate late writes, roll closed buckets
    forward, then trim each tier (raw only where every tier has rolled it up)."""
    if not ids:
        return
    con.execute(
        "CREATE OR REPLACE TEMP TABLE rollup_ids AS SELECT unnest(?::BIGINT[]) AS id", [ids]
    )
    resolutions = [t.resolution_us for t in policy.rollups]
    _forget_tiers(con, resolutions)
    if not resolutions:
        con.execute("DELETE FROM rollup_dirty WHERE series_id IN (SELECT id FROM rollup_ids)")
        return
    _start_marks(con, resolutions)
    _reaggregate_late(con, policy, counts)
    for tier in policy.rollups:
        _roll_forward(con, tier.resolution_us, now_us, lag_us, counts)
    for tier in policy.rollups:
        if tier.keep_us is not None:
            _trim_tier(con, tier.resolution_us, now_us - tier.keep_us, counts)
    if policy.raw.keep_us is not None:
        _trim_raw(con, policy, now_us - policy.raw.keep_us, counts)


def _forget_tiers(con: duckdb.DuckDBPyConnection, resolutions: list[int]) -> None:
    keep = [0, *resolutions]
    for table in ("rollups", "rollup_marks"):
        con.execute(
            f"DELETE FROM {table} WHERE series_id IN (SELECT id FROM rollup_ids) "
            "AND tier_us NOT IN (SELECT unnest(?::BIGINT[]))",
            [keep],
        )


def _start_marks(con: duckdb.DuckDBPyConnection, resolutions: list[int]) -> None:
    """A new tier starts at the raw watermark (rounded up to its resolution)."""
    for res in resolutions:
        con.execute(
            "INSERT INTO rollup_marks SELECT i.id, ?, s, s, NULL FROM ("
            "  SELECT i.id, make_timestamp(coalesce("
            "    (epoch_us(r.deleted_until) + ? - 1) // ? * ?, ?)) AS s"
            "  FROM rollup_ids i LEFT JOIN rollup_marks r ON r.series_id = i.id AND r.tier_us = 0"
            ") i ON CONFLICT DO NOTHING",
            [res, res, res, res, _BEGIN],
        )


_AGGREGATE = """
SELECT {res}::BIGINT AS tier_us, p.series_id,
       make_timestamp(epoch_us(p.ts) // {res} * {res}) AS bucket,
       count(*) AS n, sum(p.value) AS sum, min(p.value) AS min, max(p.value) AS max,
       min(p.ts) AS first_ts, arg_min(p.value, p.ts) AS first,
       max(p.ts) AS last_ts, arg_max(p.value, p.ts) AS last
FROM {source} p JOIN {ranges} r ON p.series_id = r.series_id
WHERE p.ts >= r.lo AND p.ts < r.hi
GROUP BY ALL
"""


def _roll_forward(
    con: duckdb.DuckDBPyConnection, res: int, now_us: int, lag_us: int, counts: RunCounts
) -> None:
    """Roll up every closed bucket between the watermark and the newest point's bucket."""
    closed = (now_us - lag_us) // res * res
    con.execute(
        "CREATE OR REPLACE TEMP TABLE rollup_ranges AS "
        "SELECT m.series_id, m.done_until AS lo, "
        f"make_timestamp(least(?, epoch_us(s.last_ts) // {res} * {res})) AS hi "
        "FROM rollup_marks m JOIN rollup_ids i ON i.id = m.series_id "
        "JOIN series s ON s.id = m.series_id "
        f"WHERE m.tier_us = {res} AND s.last_ts IS NOT NULL",
        [closed],
    )
    con.execute("DELETE FROM rollup_ranges WHERE hi <= lo")
    if con.execute("SELECT count(*) FROM rollup_ranges").fetchone() == (0,):
        return
    row = con.execute(
        "INSERT INTO rollups "
        + _AGGREGATE.format(res=res, ranges="rollup_ranges", source=_source(con, "rollup_ranges"))
    ).fetchone()
    counts.add(counts.rolled, _label(res), int(row[0]) if row else 0)
    con.execute(
        "UPDATE rollup_marks SET done_until = r.hi FROM rollup_ranges r "
        f"WHERE rollup_marks.series_id = r.series_id AND rollup_marks.tier_us = {res}"
    )


def _reaggregate_late(con: duckdb.DuckDBPyConnection, policy: Policy, counts: RunCounts) -> None:
    """Rebuild the rolled-up buckets that late writes touched (see the module docstring)."""
    dirty = con.execute(
        "SELECT d.series_id, epoch_us(d.lo), epoch_us(d.hi), "
        "coalesce(epoch_us(r.deleted_until), ?) FROM rollup_dirty d "
        "JOIN rollup_ids i ON i.id = d.series_id "
        "LEFT JOIN rollup_marks r ON r.series_id = d.series_id AND r.tier_us = 0",
        [_BEGIN],
    ).fetchall()
    if not dirty:
        return
    marks = {
        (int(s), int(t)): int(d)
        for s, t, d in con.execute(
            "SELECT m.series_id, m.tier_us, epoch_us(m.done_until) FROM rollup_marks m "
            "JOIN rollup_ids i ON i.id = m.series_id WHERE m.tier_us > 0"
        ).fetchall()
    }
    merged: list[tuple[int, int, int]] = []  # raw ranges below the raw watermark, merged
    for sid, lo, hi, raw_floor in dirty:
        for tier in policy.rollups:
            res = tier.resolution_us
            done = marks.get((sid, res))
            if done is None:
                continue
            first, end = lo // res * res, min(hi // res * res + res, done)
            if first >= end:
                continue
            split = max(first, min(end, -(-raw_floor // res) * res))
            if first < split:
                _merge_buckets(con, res, sid, first, split, counts)
                merged.append((sid, first, split))
            if split < end:
                _rebuild_buckets(con, res, sid, split, end, counts)
    for sid, first, end in merged:  # merged: drop them from raw so they count only once
        con.execute(
            "DELETE FROM points WHERE series_id = ? AND ts >= make_timestamp(?) "
            "AND ts < make_timestamp(?) AND ts < (SELECT deleted_until FROM rollup_marks "
            "WHERE series_id = ? AND tier_us = 0)",
            [sid, first, end, sid],
        )
    # the writer commits under the same lock, so no range was added since the SELECT
    con.execute("DELETE FROM rollup_dirty WHERE series_id IN (SELECT id FROM rollup_ids)")


def _source(con: duckdb.DuckDBPyConnection, ranges: str) -> str:
    """The raw relation (hot table plus any cold files) of the tenant over `ranges`."""
    row = con.execute(
        f"SELECT epoch_us(min(r.lo)), epoch_us(max(r.hi)), any_value(s.tenant_id) FROM {ranges} r "
        "JOIN series s ON s.id = r.series_id"
    ).fetchone()
    if row is None or row[2] is None:
        return "points"
    lo, hi = max(int(row[0]), MIN_US), min(int(row[1]), MAX_US)
    return points_source(con, int(row[2]), lo, hi)


def _one_range(con: duckdb.DuckDBPyConnection, sid: int, lo: int, hi: int) -> None:
    con.execute(
        "CREATE OR REPLACE TEMP TABLE rollup_one AS SELECT ?::BIGINT AS series_id, "
        "make_timestamp(?::BIGINT) AS lo, make_timestamp(?::BIGINT) AS hi",
        [sid, lo, hi],
    )


def _rebuild_buckets(
    con: duckdb.DuckDBPyConnection, res: int, sid: int, lo: int, hi: int, counts: RunCounts
) -> None:
    """Raw still holds these buckets: recompute them from it."""
    _one_range(con, sid, lo, hi)
    con.execute(
        "DELETE FROM rollups WHERE tier_us = ? AND series_id = ? AND bucket >= make_timestamp(?) "
        "AND bucket < make_timestamp(?)",
        [res, sid, lo, hi],
    )
    row = con.execute(
        "INSERT INTO rollups "
        + _AGGREGATE.format(res=res, ranges="rollup_one", source=_source(con, "rollup_one"))
    ).fetchone()
    counts.add(counts.reaggregated, _label(res), int(row[0]) if row else 0)


def _merge_buckets(
    con: duckdb.DuckDBPyConnection, res: int, sid: int, lo: int, hi: int, counts: RunCounts
) -> None:
    """Raw of these buckets was trimmed: combine the stored rows with the late points."""
    _one_range(con, sid, lo, hi)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE rollup_merged AS "
        "SELECT tier_us, series_id, bucket, sum(n) AS n, sum(sum) AS sum, min(min) AS min, "
        "max(max) AS max, min(first_ts) AS first_ts, arg_min(first, first_ts) AS first, "
        "max(last_ts) AS last_ts, arg_max(last, last_ts) AS last FROM ("
        "  SELECT * FROM rollups WHERE tier_us = ? AND series_id = ? "
        "  AND bucket >= make_timestamp(?) AND bucket < make_timestamp(?) UNION ALL "
        + _AGGREGATE.format(res=res, ranges="rollup_one", source=_source(con, "rollup_one"))
        + ") GROUP BY ALL",
        [res, sid, lo, hi],
    )
    con.execute(
        "DELETE FROM rollups WHERE tier_us = ? AND series_id = ? AND bucket >= make_timestamp(?) "
        "AND bucket < make_timestamp(?)",
        [res, sid, lo, hi],
    )
    row = con.execute("INSERT INTO rollups SELECT * FROM rollup_merged").fetchone()
    counts.add(counts.reaggregated, _label(res), int(row[0]) if row else 0)


def _trim_tier(con: duckdb.DuckDBPyConnection, res: int, before_us: int, counts: RunCounts) -> None:
    cutoff = before_us // res * res
    row = con.execute(
        "DELETE FROM rollups WHERE tier_us = ? AND bucket < make_timestamp(?) "
        "AND series_id IN (SELECT id FROM rollup_ids)",
        [res, cutoff],
    ).fetchone()
    counts.add(counts.deleted, _label(res), int(row[0]) if row else 0)
    con.execute(
        "UPDATE rollup_marks SET deleted_until = make_timestamp(greatest(?, "
        "coalesce(epoch_us(deleted_until), ?))) WHERE tier_us = ? "
        "AND series_id IN (SELECT id FROM rollup_ids)",
        [cutoff, cutoff, res],
    )


def _trim_raw(
    con: duckdb.DuckDBPyConnection, policy: Policy, before_us: int, counts: RunCounts
) -> None:
    """Delete raw points older than the raw keep, but only where every tier has rolled
    them up, aligned to the coarsest tier, and never while late writes wait there."""
    coarsest = policy.rollups[-1].resolution_us
    cutoff = before_us // coarsest * coarsest
    con.execute(
        "CREATE OR REPLACE TEMP TABLE raw_cut AS SELECT i.id AS series_id, "
        f"make_timestamp(least(?, min(epoch_us(m.done_until)) // {coarsest} * {coarsest})) AS cut "
        "FROM rollup_ids i JOIN rollup_marks m ON m.series_id = i.id AND m.tier_us > 0 "
        "WHERE NOT EXISTS (SELECT 1 FROM rollup_dirty d WHERE d.series_id = i.id) "
        "GROUP BY i.id",
        [cutoff],
    )
    row = con.execute(
        "DELETE FROM points p USING raw_cut c WHERE p.series_id = c.series_id AND p.ts < c.cut"
    ).fetchone()
    counts.add(counts.deleted, "raw", int(row[0]) if row else 0)
    con.execute(
        "INSERT INTO rollup_marks SELECT series_id, 0, NULL, NULL, cut FROM raw_cut "
        "ON CONFLICT (series_id, tier_us) DO UPDATE SET deleted_until = "
        "greatest(coalesce(rollup_marks.deleted_until, excluded.deleted_until), "
        "excluded.deleted_until)"
    )


def read_marks(cur: duckdb.DuckDBPyConnection, ids: list[int]) -> dict[int, list[Mark]]:
    """Watermarks of the series `ids` (tier 0 = raw), for choosing a tier to read."""
    rows = cur.execute(
        "SELECT series_id, tier_us, epoch_us(since), epoch_us(done_until), "
        "epoch_us(deleted_until) FROM rollup_marks "
        "WHERE series_id IN (SELECT unnest(?::BIGINT[])) ORDER BY series_id, tier_us",
        [ids],
    ).fetchall()
    out: dict[int, list[Mark]] = {}
    for sid, tier, since, done, deleted in rows:
        since_v = None if since is None or since == _BEGIN else int(since)
        done_v = None if done is None or done == _BEGIN else int(done)
        mark = Mark(int(tier), since_v, done_v, None if deleted is None else int(deleted))
        out.setdefault(int(sid), []).append(mark)
    return out


def _label(res: int) -> str:
    return format_duration(res)
