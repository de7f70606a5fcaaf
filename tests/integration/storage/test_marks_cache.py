"""The per-store cache of rollup watermarks: every read through it answers exactly what a
read of the table answers, after rollup runs, late writes and new series."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stats_service.errors import NotFound
from stats_service.jobs.rollup import run_rollups
from stats_service.model import Batch, SeriesKey
from stats_service.query.aggregate import AggregateQuery, aggregate
from stats_service.query.buckets import Buckets
from stats_service.query.params import TimeRange
from stats_service.storage import marks_cache as marks_module
from stats_service.storage.commit import _write_points
from stats_service.storage.embedded import EmbeddedStore
from stats_service.storage.marks_cache import MarksCache, marks_cache
from stats_service.storage.rollup_policy import parse_text
from stats_service.storage.rollups import read_marks

S = 1_000_000
H = 3600 * S
D = 86_400 * S
T0 = 1_717_200_000 * S // D * D
POLICY = "raw 1d -> 1m forever -> 1h forever"
FUNCTIONS = ("mean", "min", "max", "sum", "count", "first", "last")


@pytest.fixture
def store(tmp_path: Path) -> EmbeddedStore:
    s = EmbeddedStore(tmp_path / "stats.duckdb", threads=1)
    s.create_tenant("acme", retention_days=3650, max_series=1000, max_batch_points=10**7)
    return s


def _tenant(store: EmbeddedStore) -> int:
    tenant = store.get_tenant("acme")
    assert tenant is not None
    return tenant.id


def _series(store: EmbeddedStore, tid: int, metric: str) -> int:
    key = SeriesKey.of(tid, metric, {"device": "h1"})
    with store.transaction() as con:
        con.execute(
            "INSERT INTO series (id, tenant_id, metric, device, tags, canonical, created_at) "
            "VALUES (?, ?, ?, 'h1', ?, ?, now())",
            [key.series_id, tid, metric, json.dumps({"device": "h1"}), key.canonical().decode()],
        )
    return key.series_id


def _write(store: EmbeddedStore, tid: int, sid: int, start: int, n: int, value: float) -> None:
    ts = start + np.arange(n, dtype=np.int64) * 30 * S
    batch = Batch(tid, np.full(n, sid, dtype=np.int64), ts, np.full(n, value))
    with store.transaction() as con:
        _write_points(con, [batch], replace=True)


def _read(store: EmbeddedStore, tid: int, ids: list[int], cache: MarksCache | None) -> Any:
    query = AggregateQuery(TimeRange(T0, T0 + 3 * D), Buckets(H, "UTC"), FUNCTIONS)
    with store.reader() as cur:
        return aggregate(cur, tid, ids, query, marks=cache)


def _roll(store: EmbeddedStore, now_us: int) -> None:
    run_rollups(store, parse_text(POLICY), None, now_us, 0)


def test_cached_reads_follow_every_rollup_run_and_late_write(store: EmbeddedStore) -> None:
    tid = _tenant(store)
    a = _series(store, tid, "cpu")
    _write(store, tid, a, T0, 2 * 2880, 1.0)  # two days of 30 s points
    cache = marks_cache(store)
    first = _read(store, tid, [a], cache)
    assert first == _read(store, tid, [a], None)
    assert first[0]["tiers"] == ["raw"]

    _roll(store, T0 + 4 * D)  # rolls both days up and trims raw before T0 + 3d
    rolled = _read(store, tid, [a], cache)
    assert rolled == _read(store, tid, [a], None)
    assert rolled[0]["tiers"][0] == "1h"
    assert rolled[0]["count"] == first[0]["count"]

    _write(store, tid, a, T0 + H, 2, 9.0)  # a late write into rolled-up (trimmed) hours
    _roll(store, T0 + 4 * D)
    late = _read(store, tid, [a], cache)
    assert late == _read(store, tid, [a], None)
    assert max(late[0]["max"]) == 9.0


def test_a_new_series_gets_its_marks_on_the_next_read(store: EmbeddedStore) -> None:
    tid = _tenant(store)
    a = _series(store, tid, "cpu")
    _write(store, tid, a, T0, 2880, 1.0)
    _roll(store, T0 + 4 * D)
    cache = marks_cache(store)
    assert _read(store, tid, [a], cache)[0]["tiers"][0] == "1h"

    b = _series(store, tid, "mem")  # read before any rollup run knows it: no marks kept
    _write(store, tid, b, T0, 2880, 2.0)
    assert _read(store, tid, [a, b], cache) == _read(store, tid, [a, b], None)
    assert _read(store, tid, [b], cache)[0]["tiers"] == ["raw"]
    _roll(store, T0 + 4 * D)
    both = _read(store, tid, [a, b], cache)
    assert both == _read(store, tid, [a, b], None)
    assert [body["tiers"][0] for body in both] == ["1h", "1h"]


def test_a_read_that_races_a_change_keeps_nothing(
    store: EmbeddedStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    tid = _tenant(store)
    a = _series(store, tid, "cpu")
    _write(store, tid, a, T0, 2880, 1.0)
    cache = MarksCache()
    real = read_marks

    def read_then_commit(cur: Any, ids: list[int]) -> Any:
        found = real(cur, ids)  # the read saw the watermarks from before the run ...
        _roll(store, T0 + 4 * D)  # ... whose commit lands before the read keeps them
        cache.changed()
        return found

    monkeypatch.setattr(marks_module, "read_marks", read_then_commit)
    with store.reader() as cur:
        assert cache.read(cur, [a]) == {}
    monkeypatch.setattr(marks_module, "read_marks", real)
    with store.reader() as cur:
        kept = cache.read(cur, [a])
        assert kept == real(cur, [a])
    assert {m.tier_us for m in kept[a]} == {0, 60 * S, H}


def test_each_store_has_its_own_cache(tmp_path: Path, store: EmbeddedStore) -> None:
    other = EmbeddedStore(tmp_path / "other.duckdb", threads=1)
    try:
        assert marks_cache(store) is marks_cache(store)
        assert marks_cache(other) is not marks_cache(store)
    finally:
        other.close()


def test_one_id_several_ids_and_scoped_ids_answer_alike(store: EmbeddedStore) -> None:
    tid = _tenant(store)
    a, b = _series(store, tid, "cpu"), _series(store, tid, "mem")
    _write(store, tid, a, T0, 2880, 1.0)
    _write(store, tid, b, T0 + H, 2880, 2.0)
    query = AggregateQuery(TimeRange(T0, T0 + 3 * D), Buckets(H, "UTC"), FUNCTIONS)
    with store.reader() as cur:
        one = aggregate(cur, tid, [a], query)
        both = aggregate(cur, tid, [b, a], query)
        assert both[1] == one[0] == aggregate(cur, tid, [a], query, scoped=True)[0]
        assert both == aggregate(cur, tid, [b, a], query, scoped=True)
        assert sum(one[0]["count"]) == 2880 and sum(both[0]["count"]) == 2880
        other = store.create_tenant(
            "other", retention_days=3650, max_series=10, max_batch_points=10
        )
        with pytest.raises(NotFound):  # another tenant asking for these ids
            aggregate(cur, other.id, [a], query)
