"""Group commit with batches sorted on the request's thread and the writer's memory.

`commit.presort` orders each batch by (series, time) before it reaches the writer, and
`CommitMemory` lets the writer skip the newest-time look-up and most device updates.
Both must store exactly what the plain path stores: the same points (last write wins
for equal series and time, in arrival order), the same last values, and replaced
points replaced, even after points were deleted behind the writer's back.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stats_service.model import Batch, SeriesKey, SeriesMeta, WriteItem
from stats_service.storage.commit import CommitMemory, commit_group, presort
from stats_service.storage.embedded import EmbeddedStore

S = 1_000_000
T0 = 1_717_200_000 * S
NOW = datetime(2024, 6, 1, 12, 0, 0)
KEYS = [SeriesKey.of(1, f"m{i}", {"device": f"d{i % 2}"}) for i in range(4)]


def make_store(path: Path) -> EmbeddedStore:
    store = EmbeddedStore(path, threads=1)
    tenant = store.create_tenant(
        "acme", retention_days=3650, max_series=1000, max_batch_points=10**7
    )
    assert tenant.id == 1
    return store


def item(points: list[tuple[int, int, float]], n: int, at: datetime = NOW) -> WriteItem:
    """A write of (series index, seconds after T0, value) points, in the order given."""
    batch = Batch(
        1,
        np.array([KEYS[k].series_id for k, _, _ in points], dtype=np.int64),
        np.array([T0 + s * S for _, s, _ in points], dtype=np.int64),
        np.array([v for _, _, v in points], dtype=np.float64),
        {KEYS[k].series_id: SeriesMeta(KEYS[k]) for k, _, _ in points},
    )
    return WriteItem(
        batch=batch,
        batch_id=f"b{n}",
        received_at=at,
        protocol="json",
        nbytes=1,
        response={"points": len(points)},
    )


def stored(store: EmbeddedStore) -> tuple[list[tuple[int, int, float]], list[tuple[object, ...]]]:
    with store.reader() as cur:
        points = cur.execute(
            "SELECT series_id, epoch_us(ts), value FROM points ORDER BY series_id, ts"
        ).fetchall()
        last = cur.execute(
            "SELECT id, epoch_us(last_ts), last_value FROM series ORDER BY id"
        ).fetchall()
    return points, last


def commit(
    store: EmbeddedStore, items: list[WriteItem], memory: CommitMemory | None = None
) -> None:
    with store.transaction() as con:
        commit_group(con, items, {}, NOW, memory=memory)
    if memory is not None:
        memory.keep()


point = st.tuples(st.integers(0, 3), st.integers(0, 20), st.integers(-8, 8).map(float))
groups = st.lists(
    st.lists(st.lists(point, min_size=1, max_size=12), min_size=1, max_size=4),
    min_size=1,
    max_size=4,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(groups=groups)
def test_presorted_batches_and_memory_store_what_the_plain_path_stores(
    tmp_path_factory: pytest.TempPathFactory, groups: list[list[list[tuple[int, int, float]]]]
) -> None:
    """Random groups (duplicates, interleaved times, rewrites of older points): the
    presorted path with memory and the plain path end with the same rows."""
    tmp = tmp_path_factory.mktemp("commit")
    plain, fast = make_store(tmp / "plain.duckdb"), make_store(tmp / "fast.duckdb")
    memory = CommitMemory()
    try:
        n = 0
        for group in groups:
            plain_items, fast_items = [], []
            for points in group:
                plain_items.append(item(points, n))
                one = item(points, n)
                presort(one.batch)
                fast_items.append(one)
                n += 1
            commit(plain, plain_items)
            commit(fast, fast_items, memory)
        assert stored(fast) == stored(plain)
    finally:
        plain.close()
        fast.close()


def test_presort_keeps_the_last_arrival_of_equal_points(tmp_path: Path) -> None:
    store = make_store(tmp_path / "s.duckdb")
    one = item([(1, 5, 1.0), (0, 9, 2.0), (1, 5, 3.0), (0, 1, 4.0)], 0)
    presort(one.batch)
    assert one.batch.points_sorted
    assert one.batch.devices == frozenset({"d0", "d1"})
    commit(store, [one], CommitMemory())
    points, _ = stored(store)
    assert sorted((p[1] - T0) // S for p in points if p[0] == KEYS[1].series_id) == [5]
    assert [p[2] for p in points if p[0] == KEYS[1].series_id] == [3.0]


def test_a_remembered_newest_time_never_hides_a_replace(tmp_path: Path) -> None:
    """Points deleted behind the writer's back leave its memory too new, never too old:
    a rewrite of a stored point still replaces it."""
    store = make_store(tmp_path / "s.duckdb")
    memory = CommitMemory()
    commit(store, [item([(0, s, 1.0) for s in range(10)], 0)], memory)
    assert memory.newest[KEYS[0].series_id] == T0 + 9 * S
    with store.transaction() as con:
        con.execute("DELETE FROM points WHERE ts > make_timestamp(?)", [T0 + 4 * S])
    commit(store, [item([(0, 2, 7.0), (0, 6, 8.0)], 1)], memory)
    points, _ = stored(store)
    assert [((t - T0) // S, v) for _, t, v in points] == [
        (0, 1.0),
        (1, 1.0),
        (2, 7.0),
        (3, 1.0),
        (4, 1.0),
        (6, 8.0),
    ]


def test_a_failed_commit_teaches_the_memory_nothing(tmp_path: Path) -> None:
    store = make_store(tmp_path / "s.duckdb")
    memory = CommitMemory()
    with pytest.raises(RuntimeError), store.transaction() as con:
        commit_group(con, [item([(0, 3, 1.0)], 0)], {}, NOW, memory=memory)
        raise RuntimeError("the commit fails after the statements ran")
    memory.drop()
    assert memory.newest == {} and memory.devices == {}
    commit(store, [item([(0, 3, 2.0)], 1)], memory)
    assert stored(store)[0] == [(KEYS[0].series_id, T0 + 3 * S, 2.0)]


def test_device_last_seen_is_rewritten_once_a_second_at_most(tmp_path: Path) -> None:
    store = make_store(tmp_path / "s.duckdb")
    memory = CommitMemory()

    def last_seen() -> datetime:
        with store.reader() as cur:
            row = cur.execute("SELECT last_seen FROM devices WHERE name = 'd0'").fetchone()
        assert row is not None
        return row[0]  # type: ignore[no-any-return]

    commit(store, [item([(0, 1, 1.0)], 0, NOW)], memory)
    assert last_seen() == NOW
    commit(store, [item([(0, 2, 1.0)], 1, NOW + timedelta(milliseconds=400))], memory)
    assert last_seen() == NOW  # less than a second later: left as it is
    later = NOW + timedelta(seconds=1)
    commit(store, [item([(0, 3, 1.0)], 2, later)], memory)
    assert last_seen() == later
    commit(store, [item([(2, 3, 1.0)], 3, later)], memory)  # same device, other series
    assert last_seen() == later
