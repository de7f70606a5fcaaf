"""Rollup tiers on a real DuckDB file: exact answers, late data, retention, overrides.

Points are written with the writer's own function (`_write_points`, which runs the
late-write hook), the rollup job runs with an injected `now`, and every tiered answer
is compared with the answer from raw points alone taken before raw was trimmed. Values
are multiples of 1/4, so sums are exact in any order and equality is exact.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stats_service.errors import BadParameter
from stats_service.jobs.rollup import run_rollups
from stats_service.model import Batch, SeriesKey
from stats_service.query.aggregate import AggregateQuery, aggregate
from stats_service.query.buckets import Buckets
from stats_service.query.params import TimeRange
from stats_service.storage.commit import _write_points
from stats_service.storage.embedded import EmbeddedStore
from stats_service.storage.rollup_policy import TenantPolicy, parse_tenant_policy, parse_text
from stats_service.storage.rollups import RunCounts, save_policy

S = 1_000_000
M = 60 * S
H = 3600 * S
D = 86_400 * S
T0 = 1_717_200_000 * S // D * D  # 2024-06-01 00:00 UTC
ALL = ("mean", "min", "max", "sum", "count", "first", "last")


@pytest.fixture
def store(tmp_path: Path) -> EmbeddedStore:
    s = EmbeddedStore(tmp_path / "stats.duckdb", threads=1)
    s.create_tenant("acme", retention_days=3650, max_series=1000, max_batch_points=10**7)
    s.create_tenant("other", retention_days=3650, max_series=1000, max_batch_points=10**7)
    return s


def tenant_id(store: EmbeddedStore, name: str = "acme") -> int:
    tenant = store.get_tenant(name)
    assert tenant is not None
    return tenant.id


def add_series(store: EmbeddedStore, tid: int, metric: str, tags: dict[str, str]) -> int:
    key = SeriesKey.of(tid, metric, tags)
    with store.transaction() as con:
        con.execute(
            "INSERT INTO series (id, tenant_id, metric, device, tags, canonical, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, now())",
            [
                key.series_id,
                tid,
                metric,
                tags.get("device"),
                json.dumps(tags, sort_keys=True, separators=(",", ":")),
                key.canonical().decode(),
            ],
        )
    return key.series_id


def write(store: EmbeddedStore, tid: int, sid: int, ts: np.ndarray, values: np.ndarray) -> None:
    batch = Batch(
        tid,
        np.full(ts.size, sid, dtype=np.int64),
        ts.astype(np.int64),
        values.astype(np.float64),
    )
    with store.transaction() as con:
        _write_points(con, [batch], replace=True)


def data(seed: int, start: int, hours: int) -> tuple[np.ndarray, np.ndarray]:
    """Irregular points (7 to 67 s apart), values multiples of 1/4 in [-50, 50]."""
    rng = np.random.default_rng(seed)
    steps = rng.integers(7 * S, 67 * S, size=hours * 3600 // 30)
    ts = start + np.cumsum(steps)
    ts = ts[ts < start + hours * H]
    return ts, rng.integers(-200, 200, size=ts.size) / 4


def answer(
    store: EmbeddedStore,
    tid: int,
    ids: list[int],
    lo: int,
    hi: int,
    bucket_us: int,
    functions: tuple[str, ...] = ALL,
    tz: str = "UTC",
    fill: str = "none",
) -> list[dict[str, Any]]:
    query = AggregateQuery(TimeRange(lo, hi), Buckets(bucket_us, tz), functions, fill)
    with store.reader() as cur:
        return aggregate(cur, tid, ids, query)


def without_tiers(body: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in b.items() if k != "tiers"} for b in body]


def roll(store: EmbeddedStore, policy: str, now_us: int, lag_us: int = 0) -> RunCounts:
    return run_rollups(store, parse_text(policy), None, now_us, lag_us)


GRID = [
    (M, "UTC"),
    (5 * M, "UTC"),
    (H, "UTC"),
    (3 * H, "UTC"),
    (D, "UTC"),
    (D, "America/New_York"),  # DST change on 2024-11-03 is not in range; offsets -4h
    (D, "Asia/Kolkata"),  # +05:30: days start on the half hour, only the 1m tier fits
    (7 * D, "Europe/Berlin"),
]


@pytest.mark.parametrize(("bucket_us", "tz"), GRID)
def test_tiers_answer_exactly_what_raw_answered_after_raw_is_gone(
    store: EmbeddedStore, bucket_us: int, tz: str
) -> None:
    tid = tenant_id(store)
    a = add_series(store, tid, "cpu", {"device": "h1"})
    b = add_series(store, tid, "mem", {"device": "h1"})
    for seed, sid in ((1, a), (2, b)):
        ts, values = data(seed, T0, 24 * 9)
        write(store, tid, sid, ts, values)
    lo, hi = T0 - 2 * D, T0 + 10 * D
    before = answer(store, tid, [a, b], lo, hi, bucket_us, tz=tz)
    assert before[0]["tiers"] == ["raw"]
    now = T0 + 9 * D + 30 * M
    counts = roll(store, "raw 1d -> 1m 30d -> 1h forever", now)
    assert counts.rolled["1m"] > 0 and counts.rolled["1h"] > 0
    assert counts.deleted["raw"] > 0
    after = answer(store, tid, [a, b], lo, hi, bucket_us, tz=tz)
    assert without_tiers(after) == without_tiers(before)
    assert "raw" in after[0]["tiers"]  # the newest, not yet rolled up, hours
    assert after[0]["tiers"][0] == ("1m" if tz == "Asia/Kolkata" or bucket_us < H else "1h")


@pytest.mark.parametrize("bucket_us", [M, 10 * M, H, 6 * H, D])
@pytest.mark.parametrize(
    ("lo_off", "hi_off"), [(0, 0), (17 * S, 0), (7 * M + 3 * S, 41 * M), (-H, 5)]
)
def test_uneven_ranges_merge_raw_edges_with_tiers(
    store: EmbeddedStore, bucket_us: int, lo_off: int, hi_off: int
) -> None:
    tid = tenant_id(store)
    sid = add_series(store, tid, "t", {"device": "d"})
    ts, values = data(3, T0, 48)
    write(store, tid, sid, ts, values)
    lo, hi = T0 + 2 * H + lo_off, T0 + 46 * H + hi_off
    before = answer(store, tid, [sid], lo, hi, bucket_us, fill="null")
    roll(store, "raw forever -> 1m forever -> 1h forever", T0 + 50 * H)
    after = answer(store, tid, [sid], lo, hi, bucket_us, fill="null")
    assert without_tiers(after) == without_tiers(before)
    assert after[0]["tiers"][0] in {"1h", "1m"}


def test_late_points_re_aggregate_exactly_the_touched_buckets(store: EmbeddedStore) -> None:
    tid = tenant_id(store)
    sid = add_series(store, tid, "t", {})
    ts, values = data(4, T0, 24)
    write(store, tid, sid, ts, values)
    policy = "raw 6h -> 1m forever -> 1h forever"
    now = T0 + 24 * H
    roll(store, policy, now)
    with store.reader() as cur:
        assert cur.execute("SELECT count(*) FROM rollup_dirty").fetchone() == (0,)
    # appends (newer than the newest point) record nothing
    write(store, tid, sid, np.array([T0 + 24 * H + S]), np.array([1.0]))
    with store.reader() as cur:
        assert cur.execute("SELECT count(*) FROM rollup_dirty").fetchone() == (0,)
    # a late point where raw still exists, one replacing a stored value, and one below
    # the raw watermark (raw there was trimmed: it is merged into the stored rows)
    late_ts = np.array([T0 + 2 * H + 5 * S, int(ts[-10]), T0 + 20 * H + 30 * S])
    late_v = np.array([1000.0, -1000.0, 0.25])
    reference = EmbeddedStore(store.path.parent / "ref.duckdb", threads=1)
    reference.create_tenant("acme", retention_days=3650, max_series=10, max_batch_points=10**7)
    ref_sid = add_series(reference, tid, "t", {})
    assert ref_sid == sid
    all_ts = np.append(ts, T0 + 24 * H + S)
    write(reference, tid, sid, all_ts, np.append(values, 1.0))
    write(reference, tid, sid, late_ts, late_v)
    write(store, tid, sid, late_ts, late_v)
    with store.reader() as cur:
        assert cur.execute("SELECT count(*) FROM rollup_dirty").fetchone()[0] >= 2
    counts = roll(store, policy, now)
    assert counts.reaggregated["1m"] == 3  # the 23:00 hour was not rolled up to 1h yet
    assert counts.reaggregated["1h"] == 2
    with store.reader() as cur:
        assert cur.execute("SELECT count(*) FROM rollup_dirty").fetchone() == (0,)
        merged_raw = cur.execute(
            "SELECT count(*) FROM points WHERE ts < make_timestamp(?::BIGINT)", [T0 + 18 * H]
        ).fetchone()
    assert merged_raw == (0,)  # the merged late point left raw, so it counts once
    for bucket_us in (M, H, D):
        got = answer(store, tid, [sid], T0, T0 + 2 * D, bucket_us)
        want = answer(reference, tid, [sid], T0, T0 + 2 * D, bucket_us)
        assert without_tiers(got) == without_tiers(want)
    # a second run changes nothing
    assert roll(store, policy, now).reaggregated == {}
    reference.close()


def test_raw_is_deleted_only_where_every_tier_rolled_it_up(store: EmbeddedStore) -> None:
    tid = tenant_id(store)
    sid = add_series(store, tid, "t", {})
    ts, values = data(5, T0, 30)
    write(store, tid, sid, ts, values)
    # the 1d tier closes no bucket before T0 + 1d: raw up to there must stay
    roll(store, "raw 1h -> 1m forever -> 1d forever", T0 + 23 * H)
    with store.reader() as cur:
        kept = cur.execute("SELECT count(*) FROM points").fetchone()
    assert kept == (ts.size,)
    roll(store, "raw 1h -> 1m forever -> 1d forever", T0 + 30 * H)
    with store.reader() as cur:
        oldest = cur.execute("SELECT epoch_us(min(ts)) FROM points").fetchone()
    assert oldest is not None and oldest[0] >= T0 + D
    # the day holding the newest point is never closed for the 1d tier: its raw stays,
    # and a late point in it is re-aggregated into the 1m tier only
    write(store, tid, sid, np.array([T0 + D + 5 * H]), np.array([3.0]))
    counts = roll(store, "raw 1h -> 1m forever -> 1d forever", T0 + 3 * D)
    assert counts.deleted == {} and counts.reaggregated == {"1m": 1}
    got = answer(store, tid, [sid], T0, T0 + 3 * D, D, ("count",))
    assert sum(got[0]["count"]) == ts.size + 1


def test_tier_keep_trims_rows_and_queries_say_which_bucket_works(store: EmbeddedStore) -> None:
    tid = tenant_id(store)
    sid = add_series(store, tid, "t", {})
    ts, values = data(6, T0, 72)
    write(store, tid, sid, ts, values)
    counts = roll(store, "raw 6h -> 1m 1d -> 1h forever", T0 + 72 * H)
    assert counts.deleted["1m"] > 0 and counts.deleted["raw"] > 0
    with store.reader() as cur:
        oldest_1m = cur.execute(
            "SELECT epoch_us(min(bucket)) FROM rollups WHERE tier_us = ?", [M]
        ).fetchone()
    assert oldest_1m == (T0 + 2 * D,)
    # 1h buckets over the whole range: the 1h tier answers
    assert answer(store, tid, [sid], T0, T0 + 3 * D, H)[0]["tiers"][0] == "1h"
    # 1m buckets where the 1m tier is gone: a clear refusal
    with pytest.raises(BadParameter, match="bucket"):
        answer(store, tid, [sid], T0, T0 + 3 * D, M)
    # a percentile needs raw: answered where raw exists, refused before it
    recent = answer(store, tid, [sid], T0 + 66 * H, T0 + 72 * H, H, ("p95",))
    assert recent[0]["tiers"] == ["raw"]
    with pytest.raises(BadParameter, match="p95 need"):
        answer(store, tid, [sid], T0, T0 + 3 * D, H, ("p95",))


def test_overrides_pick_the_policy_by_metric_glob_and_tags(store: EmbeddedStore) -> None:
    tid = tenant_id(store)
    cpu = add_series(store, tid, "cpu_user", {"host": "a"})
    rack = add_series(store, tid, "temp", {"rack": "87"})
    plain = add_series(store, tid, "temp", {"rack": "12"})
    for seed, sid in ((7, cpu), (8, rack), (9, plain)):
        ts, values = data(seed, T0, 4)
        write(store, tid, sid, ts, values)
    policy = parse_tenant_policy(
        {
            "tiers": [{"resolution": "raw", "keep": "forever"}, {"resolution": "1m"}],
            "overrides": [
                {"metric": "cpu_*", "tiers": [{"resolution": "raw", "keep": "forever"}]},
                {"tags": {"rack": "87"}, "tiers": [{"resolution": "raw"}, {"resolution": "1h"}]},
            ],
        }
    )
    with store.transaction() as con:
        save_policy(con, tid, policy, store_now())
    roll(store, "raw forever -> 1d forever", T0 + 5 * H)
    with store.reader() as cur:
        tiers = dict(
            cur.execute(
                "SELECT series_id, list(DISTINCT tier_us ORDER BY tier_us) FROM rollups "
                "GROUP BY series_id"
            ).fetchall()
        )
    assert cpu not in tiers
    assert tiers[rack] == [H]
    assert tiers[plain] == [M]


def test_tenants_roll_up_only_their_own_series(store: EmbeddedStore) -> None:
    acme, other = tenant_id(store, "acme"), tenant_id(store, "other")
    a = add_series(store, acme, "t", {})
    o = add_series(store, other, "t", {"x": "1"})
    for sid, tid in ((a, acme), (o, other)):
        ts, values = data(10, T0, 3)
        write(store, tid, sid, ts, values)
    only_raw = TenantPolicy(parse_text("raw forever"))
    with store.transaction() as con:
        save_policy(con, other, only_raw, store_now())
    roll(store, "raw forever -> 1m forever", T0 + 4 * H)
    with store.reader() as cur:
        rolled = {r[0] for r in cur.execute("SELECT DISTINCT series_id FROM rollups").fetchall()}
    assert rolled == {a}
    # a foreign id is not found, rollups or not
    with pytest.raises(Exception, match="not"):
        answer(store, other, [a], T0, T0 + 4 * H, H)


def store_now() -> Any:
    from datetime import datetime

    return datetime(2024, 6, 1)


def test_uneven_edges_without_raw_answer_whole_tier_buckets_and_say_so(
    store: EmbeddedStore,
) -> None:
    tid = tenant_id(store)
    sid = add_series(store, tid, "t", {})
    ts, values = data(11, T0, 48)
    write(store, tid, sid, ts, values)
    whole = answer(store, tid, [sid], T0, T0 + 40 * H, H)
    roll(store, "raw 1h -> 1m forever -> 1h forever", T0 + 48 * H)
    got = answer(store, tid, [sid], T0 + 17 * S, T0 + 39 * H + 30 * S, H)
    assert got[0]["answered_from"] == "2024-06-01T00:00:00Z"
    assert got[0]["answered_to"] == "2024-06-02T15:01:00Z"  # the finest tier that fits: 1m
    assert got[0]["tiers"] == ["1m"]
    assert got[0]["count"][:-1] == whole[0]["count"][:-1]
    assert got[0]["mean"][:-1] == whole[0]["mean"][:-1]
    exact = answer(store, tid, [sid], T0, T0 + 40 * H, H)
    assert without_tiers(exact) == without_tiers(whole)
    assert "answered_from" not in exact[0]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**16),
    hours=st.integers(2, 30),
    bucket=st.sampled_from([M, 2 * M, 15 * M, H, 4 * H, D]),
    lo_off=st.integers(0, 3 * H),
    hi_cut=st.integers(0, 3 * H),
    late=st.lists(st.tuples(st.integers(0, 40 * H), st.integers(-40, 40)), max_size=6),
    trim=st.booleans(),
)
def test_random_data_and_late_writes_answer_as_raw_does(
    seed: int,
    hours: int,
    bucket: int,
    lo_off: int,
    hi_cut: int,
    late: list[tuple[int, int]],
    trim: bool,
) -> None:
    """Rolled up (raw trimmed or not), then late points (some replacing stored ones, some
    new), rolled up again: every exact function equals the raw answer of a reference
    store that got the same writes and never rolled anything up."""
    with tempfile.TemporaryDirectory() as tmp:
        stores = [EmbeddedStore(Path(tmp) / f"{n}.duckdb", threads=1) for n in ("a", "b")]
        for s in stores:
            s.create_tenant("acme", retention_days=3650, max_series=10, max_batch_points=10**7)
        tid = tenant_id(stores[0])
        ts, values = data(seed, T0, hours)
        late_ts = np.array([T0 + t for t, _ in late], dtype=np.int64)
        late_v = np.array([v / 4 for _, v in late])
        if trim:  # below the raw watermark only new times are exact (see the docs)
            late_ts = late_ts // S * S + 1
            late_v = late_v[~np.isin(late_ts, ts)]
            late_ts = late_ts[~np.isin(late_ts, ts)]
        else:  # some replace stored points
            late_ts = np.where(late_v > 0, ts[np.minimum(late_ts % ts.size, ts.size - 1)], late_ts)
        for s in stores:
            sid = add_series(s, tid, "t", {})
            write(s, tid, sid, ts, values)
        policy = "raw 2h -> 1m 30d -> 1h forever" if trim else "raw forever -> 1m 1d -> 1h forever"
        now = T0 + hours * H + 10 * M
        roll(stores[0], policy, now)
        if late_ts.size:
            write(stores[0], tid, sid, late_ts, late_v)
            write(stores[1], tid, sid, late_ts, late_v)
            roll(stores[0], policy, now)
        lo = T0 + (0 if trim else lo_off)
        hi = T0 + 2 * D - (0 if trim else hi_cut)
        got = answer(stores[0], tid, [sid], lo, hi, bucket)
        want = answer(stores[1], tid, [sid], lo, hi, bucket)
        assert without_tiers(got) == without_tiers(want)
        for s in stores:
            s.close()
