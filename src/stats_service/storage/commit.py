"""Group commit: write many accepted requests in one DuckDB transaction.

Called only by the writer thread, inside `EmbeddedStore.transaction()`. Points of the
whole group are de-duplicated (last write wins for the same series and timestamp),
sorted by (series, time) so that DuckDB's zone maps and compression work, and any
stored point with the same (series, time) is replaced.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import duckdb
import numpy as np
import orjson
import pyarrow as pa

from ..errors import Conflict
from ..model import Batch, Int64Array, SeriesKey, SeriesMeta, WriteItem, WriteOutcome
from .partitions import mark_dirty
from .rollups import record_late_writes

UsageKey = tuple[int, date]
UsageDelta = dict[UsageKey, list[int]]  # points, bytes, requests, rejected
KnownSeries = dict[int, tuple[SeriesKey, str | None]]  # id -> key and unit as stored
DEVICE_TOUCH_US = 1_000_000  # a device's last_seen is rewritten at most once a second


@dataclass(slots=True)
class CommitMemory:
    """What the writer remembers between its commits, so that a commit need not ask.

    - `newest`: series id -> time (µs) of its newest stored point, or newer. Only the
      writer stores points, and deletes only move the truth back, so a remembered time
      is never older than the stored one: a point newer than it is a pure append. A
      point at or before it is checked against the store (an extra delete that finds
      nothing, never a missed replace).
    - `devices`: (tenant, device) -> the `last_seen` (µs) this writer stored.

    A commit writes what it learns into `staged`; the caller keeps it once the
    transaction is committed (`keep`) or throws it away (`drop`)."""

    newest: dict[int, int] = field(default_factory=dict)
    devices: dict[tuple[int, str], int] = field(default_factory=dict)
    staged_newest: dict[int, int] = field(default_factory=dict)
    staged_devices: dict[tuple[int, str], int] = field(default_factory=dict)
    max_entries: int = 1_000_000

    def keep(self) -> None:
        if len(self.newest) + len(self.staged_newest) > self.max_entries:
            self.newest.clear()
        if len(self.devices) + len(self.staged_devices) > self.max_entries:
            self.devices.clear()
        self.newest.update(self.staged_newest)
        self.devices.update(self.staged_devices)
        self.drop()

    def drop(self) -> None:
        self.staged_newest.clear()
        self.staged_devices.clear()


def presort(batch: Batch) -> None:
    """Order a batch's numeric points by (series, time), in place, keeping the arrival
    order of equal (series, time) pairs (the last one still wins), and note its devices.
    Runs on the request's thread, so that the single writer only merges sorted batches.
    The batch's series must not change afterwards."""
    sid, ts = batch.series_id, batch.ts
    if sid.size > 1 and not _is_sorted(sid, ts):
        order = np.lexsort((ts, sid))
        batch.series_id, batch.ts, batch.value = sid[order], ts[order], batch.value[order]
    batch.points_sorted = True
    batch.device_names = batch.devices  # the writer reads it; cheaper here


def _is_sorted(sid: Int64Array, ts: Int64Array) -> bool:
    """True when the points are in (series, time) order (equal pairs allowed)."""
    if sid.size < 2:
        return True
    same = sid[1:] == sid[:-1]
    return bool(np.all((sid[1:] > sid[:-1]) | (same & (ts[1:] >= ts[:-1]))))


def commit_group(
    con: duckdb.DuckDBPyConnection,
    items: Sequence[WriteItem],
    usage: UsageDelta,
    now: datetime,
    known: KnownSeries | None = None,
    learned: KnownSeries | None = None,
    memory: CommitMemory | None = None,
) -> list[WriteOutcome]:
    """Commit `items` in the caller's transaction. `known` holds series already stored
    (their rows are neither looked up nor rewritten); the series this group stored or
    confirmed are added to `learned`, for the caller to trust once the commit is done.
    `memory` (the writer's) saves the newest-time look-up and device updates; what this
    group teaches it is staged in it for the caller to keep or drop."""
    usage = {k: list(v) for k, v in usage.items()}  # the caller's copy stays as it was
    outcomes: list[WriteOutcome | None] = [None] * len(items)
    fresh: list[int] = []
    seen_ids: dict[str, int] = {}
    keyed = [it.batch_id for it in items if it.idempotency_key is not None]
    stored = _stored_responses(con, keyed)
    for i, item in enumerate(items):
        if item.idempotency_key is not None:
            if item.batch_id in stored:
                outcomes[i] = WriteOutcome(orjson.loads(stored[item.batch_id]), replayed=True)
                continue
            if item.batch_id in seen_ids:
                outcomes[i] = WriteOutcome(items[seen_ids[item.batch_id]].response, replayed=True)
                continue
            seen_ids[item.batch_id] = i
        fresh.append(i)

    _upsert_series(con, [items[i].batch for i in fresh], now, known or {}, learned)
    replacing = [items[i].batch for i in fresh if not items[i].only_missing]
    _write_points(con, replacing, replace=True, memory=memory)
    _write_states(con, replacing, replace=True)
    written = {
        i: _write_points(con, [items[i].batch], replace=False, memory=memory)
        + _write_states(con, [items[i].batch], replace=False)
        for i in fresh
        if items[i].only_missing
    }
    _touch_devices(con, [items[i] for i in fresh], now, memory)
    mark_dirty(con, [items[i].batch for i in fresh])  # days to compact (partitions.py)
    for i in fresh:
        item = items[i]
        delta = usage.setdefault((item.batch.tenant_id, now.date()), [0, 0, 0, 0])
        points = written.get(i, len(item.batch))
        delta[0] += points
        delta[1] += item.nbytes
        outcomes[i] = WriteOutcome(item.response, points_written=points)
    _save_idempotency(con, [items[i] for i in fresh if items[i].idempotency_key], now)
    _add_usage(con, usage)
    return [o for o in outcomes if o is not None]


def _stored_responses(con: duckdb.DuckDBPyConnection, batch_ids: list[str]) -> dict[str, str]:
    if not batch_ids:
        return {}
    rows = con.execute(
        "SELECT batch_id, response FROM idempotency WHERE batch_id IN (SELECT unnest(?))",
        [batch_ids],
    ).fetchall()
    return {str(r[0]): str(r[1]) for r in rows}


def _upsert_series(
    con: duckdb.DuckDBPyConnection,
    batches: list[Batch],
    now: datetime,
    known: KnownSeries,
    learned: KnownSeries | None,
) -> None:
    metas: dict[int, tuple[int, SeriesMeta]] = {}
    for batch in batches:
        for sid, meta in batch.series.items():
            seen = known.get(sid)
            if seen is not None and seen[0] == meta.key and (not meta.unit or meta.unit == seen[1]):
                continue  # stored as it is: no look-up, no canonical key to build
            prev = metas.get(sid)
            if prev is None or (meta.unit and not prev[1].unit):
                metas[sid] = (batch.tenant_id, meta)
    if not metas:
        return
    ids = list(metas)
    existing = dict(
        con.execute(
            "SELECT id, canonical FROM series WHERE id IN (SELECT unnest(?::BIGINT[]))", [ids]
        ).fetchall()
    )
    rows = []
    for sid, (tenant_id, meta) in metas.items():
        canonical = meta.key.canonical().decode()
        if sid in existing:
            if existing[sid] != canonical:
                raise Conflict(
                    f"series id {sid} of {canonical} collides with the existing series "
                    f"{existing[sid]}; rename the metric or a tag"
                )
            continue
        rows.append(
            (
                sid,
                tenant_id,
                meta.key.metric,
                meta.key.device,
                json.dumps(meta.key.tags_dict(), sort_keys=True, separators=(",", ":")),
                canonical,
                meta.unit,
                now,
            )
        )
    if rows:
        con.executemany(
            "INSERT INTO series (id, tenant_id, metric, device, tags, canonical, unit, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    units = [(m.unit, sid) for sid, (_, m) in metas.items() if m.unit and sid in existing]
    if units:
        con.executemany("UPDATE series SET unit = ? WHERE id = ? AND unit IS DISTINCT FROM ?",
                        [(u, s, u) for u, s in units])
    if learned is not None:
        for sid, (_, meta) in metas.items():
            unit = meta.unit if meta.unit else (known.get(sid, (None, None))[1])
            learned[sid] = (meta.key, unit)


def _dedupe_sorted(
    sid: Int64Array, ts: Int64Array, value: np.ndarray
) -> tuple[Int64Array, Int64Array, np.ndarray]:
    """Sort by (series, time), keeping the last of equal (series, time) in arrival order."""
    order = np.lexsort((ts, sid))  # stable: equal keys keep arrival order
    sid, ts, value = sid[order], ts[order], value[order]
    if sid.size > 1:
        keep = np.ones(sid.size, dtype=bool)
        keep[:-1] = (sid[1:] != sid[:-1]) | (ts[1:] != ts[:-1])
        sid, ts, value = sid[keep], ts[keep], value[keep]
    return sid, ts, value


def _write_states(con: duckdb.DuckDBPyConnection, batches: list[Batch], *, replace: bool) -> int:
    """Text values: the same last-write-wins rule as numbers, in their own table."""
    parts = [b.states for b in batches if b.states is not None and len(b.states)]
    if not parts:
        return 0
    text = np.array([t for p in parts for t in p.text], dtype=object)
    sid, ts, value = _dedupe_sorted(
        np.concatenate([p.series_id for p in parts]),
        np.concatenate([p.ts for p in parts]),
        text,
    )
    table = pa.table(
        {
            "series_id": pa.array(sid, pa.int64()),
            "ts": pa.array(ts, pa.int64()).cast(pa.timestamp("us")),
            "value": pa.array(value.tolist(), pa.string()),
        }
    )
    bounds = [int(ts.min()), int(ts.max())]
    con.register("incoming_states", table)
    try:
        if replace:
            con.execute(
                "DELETE FROM states s USING incoming_states i WHERE "
                "s.ts BETWEEN make_timestamp(?) AND make_timestamp(?) "
                "AND s.series_id = i.series_id AND s.ts = i.ts",
                bounds,
            )
            con.execute("INSERT INTO states SELECT series_id, ts, value FROM incoming_states")
            written = len(sid)
        else:
            row = con.execute(
                "INSERT INTO states SELECT i.series_id, i.ts, i.value FROM incoming_states i "
                "WHERE NOT EXISTS (SELECT 1 FROM states s WHERE "
                "s.ts BETWEEN make_timestamp(?) AND make_timestamp(?) "
                "AND s.series_id = i.series_id AND s.ts = i.ts)",
                bounds,
            ).fetchall()
            written = int(row[0][0]) if row else 0
        last = np.ones(sid.size, dtype=bool)
        last[:-1] = sid[1:] != sid[:-1]
        newest = pa.table(
            {
                "id": pa.array(sid[last], pa.int64()),
                "ts": pa.array(ts[last], pa.int64()).cast(pa.timestamp("us")),
                "value": pa.array(value[last].tolist(), pa.string()),
            }
        )
        newer = ">=" if replace else ">"
        con.register("incoming_last_states", newest)
        try:
            con.execute(
                "UPDATE series SET last_state_ts = l.ts, last_state = l.value "
                "FROM incoming_last_states l WHERE series.id = l.id AND "
                f"(series.last_state_ts IS NULL OR l.ts {newer} series.last_state_ts)"
            )
        finally:
            con.unregister("incoming_last_states")
    finally:
        con.unregister("incoming_states")
    return written


def _group_points(batches: list[Batch]) -> tuple[Int64Array, Int64Array, np.ndarray]:
    """The group's points sorted by (series, time), the last arrival of equal pairs kept.

    Batches sorted on their request's thread (`presort`) are merged: a stable sort by
    series of sorted runs (timsort finds the runs), then one pass that checks the time
    order within each series; only when batches interleave in time does it sort fully."""
    sid = np.concatenate([b.series_id for b in batches])
    ts = np.concatenate([b.ts for b in batches])
    value = np.concatenate([b.value for b in batches])
    if not all(b.points_sorted for b in batches):
        return _dedupe_sorted(sid, ts, value)
    if len(batches) > 1:
        order = np.argsort(sid, kind="stable")  # equal series keep the arrival order
        sid, ts, value = sid[order], ts[order], value[order]
        if not _is_sorted(sid, ts):
            return _dedupe_sorted(sid, ts, value)
    if sid.size > 1:
        keep = np.ones(sid.size, dtype=bool)
        keep[:-1] = (sid[1:] != sid[:-1]) | (ts[1:] != ts[:-1])
        if not keep.all():
            sid, ts, value = sid[keep], ts[keep], value[keep]
    return sid, ts, value


def _write_points(
    con: duckdb.DuckDBPyConnection,
    batches: list[Batch],
    *,
    replace: bool,
    memory: CommitMemory | None = None,
) -> int:
    batches = [b for b in batches if b.numeric]
    if not batches:
        return 0
    sid, ts, value = _group_points(batches)
    overlap = _overlapping(con, sid, ts, memory)
    if overlap.any():  # only a point not newer than its series' newest can be rolled up
        record_late_writes(con, sid[overlap], ts[overlap])
    table = pa.table(
        {
            "series_id": pa.array(sid, pa.int64()),
            "ts": pa.array(ts, pa.int64()).cast(pa.timestamp("us")),
            "value": pa.array(value, pa.float64()),
        }
    )
    con.register("incoming_points", table)
    try:
        if replace:
            if overlap.any():
                _delete_existing(con, sid[overlap], ts[overlap])
            con.execute("INSERT INTO points SELECT series_id, ts, value FROM incoming_points")
            written = len(sid)
        elif overlap.any():
            lo, hi = int(ts[overlap].min()), int(ts[overlap].max())
            row = con.execute(
                "INSERT INTO points SELECT i.series_id, i.ts, i.value FROM incoming_points i "
                "WHERE NOT EXISTS (SELECT 1 FROM points p WHERE "
                "p.ts BETWEEN make_timestamp(?) AND make_timestamp(?) "
                "AND p.series_id = i.series_id AND p.ts = i.ts)",
                [lo, hi],
            ).fetchone()
            written = int(row[0]) if row else 0
        else:
            con.execute("INSERT INTO points SELECT series_id, ts, value FROM incoming_points")
            written = len(sid)
        # a replay (not `replace`) only fills gaps: at an equal time the stored value stays
        _update_last_values(con, sid, ts, value, newer_only=not replace)
    finally:
        con.unregister("incoming_points")
    return written


def _overlapping(
    con: duckdb.DuckDBPyConnection,
    sid: Int64Array,
    ts: Int64Array,
    memory: CommitMemory | None = None,
) -> np.ndarray:
    """Mask of the points that may replace a stored one: those not newer than their
    series' newest stored point. Appending new data (the common case) scans nothing,
    and with the writer's `memory` of the newest times it reads nothing either."""
    first = np.ones(sid.size, dtype=bool)
    first[1:] = sid[1:] != sid[:-1]
    ids = sid[first].tolist()
    lowest = int(np.iinfo(np.int64).min)
    remembered = memory.newest if memory is not None else {}
    staged = memory.staged_newest if memory is not None else {}
    last: dict[int, int] = {}
    missing: list[int] = []
    for i in ids:
        known = staged.get(i, remembered.get(i))  # this group's earlier writes first
        if known is None:
            missing.append(i)
        else:
            last[i] = known
    if missing:
        rows = con.execute(
            "SELECT id, epoch_us(last_ts) FROM series "
            "WHERE last_ts IS NOT NULL AND id IN (SELECT unnest(?::BIGINT[]))",
            [missing],
        ).fetchall()
        last.update((int(r[0]), int(r[1])) for r in rows)
    newest = np.array([last.get(i, lowest) for i in ids], dtype=np.int64)
    if memory is not None:
        lasts = np.append(np.flatnonzero(first)[1:] - 1, sid.size - 1)
        after = np.maximum(newest, ts[lasts])
        staged.update(zip(ids, after.tolist(), strict=True))
    if not last:
        return np.zeros(sid.size, dtype=bool)
    run = np.cumsum(first) - 1  # index of each point's series in `ids`
    return np.asarray(ts <= newest[run])


def _delete_existing(con: duckdb.DuckDBPyConnection, sid: Int64Array, ts: Int64Array) -> None:
    table = pa.table(
        {
            "series_id": pa.array(sid, pa.int64()),
            "ts": pa.array(ts, pa.int64()).cast(pa.timestamp("us")),
        }
    )
    con.register("replaced_points", table)
    try:
        con.execute(
            "DELETE FROM points p USING replaced_points r WHERE "
            "p.ts BETWEEN make_timestamp(?) AND make_timestamp(?) "
            "AND p.series_id = r.series_id AND p.ts = r.ts",
            [int(ts.min()), int(ts.max())],
        )
    finally:
        con.unregister("replaced_points")


def _update_last_values(
    con: duckdb.DuckDBPyConnection,
    sid: Int64Array,
    ts: Int64Array,
    value: np.ndarray,
    *,
    newer_only: bool = False,
) -> None:
    """Keep each series' newest point in the series table (the last-value cache)."""
    last = np.ones(sid.size, dtype=bool)
    last[:-1] = sid[1:] != sid[:-1]
    table = pa.table(
        {
            "id": pa.array(sid[last], pa.int64()),
            "ts": pa.array(ts[last], pa.int64()).cast(pa.timestamp("us")),
            "value": pa.array(value[last], pa.float64()),
        }
    )
    newer = ">" if newer_only else ">="
    con.register("incoming_last", table)
    try:
        con.execute(
            "UPDATE series SET last_ts = l.ts, last_value = l.value FROM incoming_last l "
            f"WHERE series.id = l.id AND (series.last_ts IS NULL OR l.ts {newer} series.last_ts)"
        )
    finally:
        con.unregister("incoming_last")


def _touch_devices(
    con: duckdb.DuckDBPyConnection,
    items: list[WriteItem],
    now: datetime,
    memory: CommitMemory | None = None,
) -> None:
    """Create devices seen for the first time and move `last_seen` forward, in one statement.

    With the writer's `memory`, a device this writer stored less than a second before
    its new `last_seen` is left as it is (its `last_seen` lags by less than a second)."""
    seen: dict[tuple[int, str], datetime] = {}
    for item in items:
        for device in item.batch.devices:
            key = (item.batch.tenant_id, device)
            seen[key] = max(seen.get(key, item.received_at), item.received_at)
    if memory is not None and seen:
        stored = memory.devices
        fresh: dict[tuple[int, str], datetime] = {}
        for key, at in seen.items():
            at_us = _us(at)
            before = stored.get(key)
            if before is None or at_us - before >= DEVICE_TOUCH_US:
                fresh[key] = at
                memory.staged_devices[key] = at_us
        seen = fresh
    if not seen:
        return
    at = pa.array(list(seen.values()), pa.timestamp("us"))
    table = pa.table(
        {
            "tenant_id": pa.array([t for t, _ in seen], pa.int32()),
            "name": pa.array([d for _, d in seen], pa.string()),
            "first_seen": at,
            "last_seen": at,
        }
    )
    con.register("seen_devices", table)
    try:
        con.execute(
            "INSERT INTO devices SELECT * FROM seen_devices ON CONFLICT (tenant_id, name) "
            "DO UPDATE SET last_seen = greatest(devices.last_seen, excluded.last_seen)"
        )
    finally:
        con.unregister("seen_devices")


def _us(at: datetime) -> int:
    """Microseconds since 1970 of a naive UTC datetime."""
    return (at - _EPOCH) // _MICROSECOND


_EPOCH = datetime(1970, 1, 1)
_MICROSECOND = timedelta(microseconds=1)


def _save_idempotency(
    con: duckdb.DuckDBPyConnection, items: list[WriteItem], now: datetime
) -> None:
    if items:
        con.executemany(
            "INSERT INTO idempotency VALUES (?, ?, ?, ?, ?, ?)",
            [
                (
                    it.batch_id,
                    it.batch.tenant_id,
                    it.idempotency_key,
                    it.body_hash or "",
                    now,
                    orjson.dumps(it.response).decode(),
                )
                for it in items
            ],
        )


def _add_usage(con: duckdb.DuckDBPyConnection, usage: UsageDelta) -> None:
    rows = [(t, d, *v) for (t, d), v in usage.items() if any(v)]
    if rows:
        con.executemany(
            "INSERT INTO usage VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (tenant_id, day) DO UPDATE "
            "SET points = usage.points + excluded.points, bytes = usage.bytes + excluded.bytes, "
            "requests = usage.requests + excluded.requests, "
            "rejected = usage.rejected + excluded.rejected",
            rows,
        )
