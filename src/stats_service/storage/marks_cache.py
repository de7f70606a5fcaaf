"""Catalogs that reads consult on every request and writers change rarely, kept between
reads with a generation that their writers bump: rollup watermarks and cold files.

Every bucketed aggregate chooses its tier from the watermarks of its series
(`rollup_marks`). They change only when the rollup job commits a run of `maintain`
(`jobs.rollup.run_rollups`), a few times an hour, while reads ask for them on every
request. So each store has one `MarksCache`:

- a read takes the watermarks of the series it has not seen since the last change
  from the table and keeps them, tagged with the generation it saw *before* its query;
- the job calls `changed()` after each of its transactions commits, which bumps the
  generation and drops everything kept;
- a value is kept only if the generation did not move during its query, so a read
  that raced a commit never keeps what it saw from before it.

A read between a commit and the bump that follows it sees the watermarks from just
before the commit, as if it had run a moment earlier. Whoever else ever changes
`rollup_marks` must call `changed()` after the commit too.

`ColdCatalog` keeps the `cold_files` rows of each tenant the same way; the functions of
`storage.cold` that change the catalog call its `changed()` after their transactions.
"""

from __future__ import annotations

import threading
import weakref
from datetime import date

import duckdb

from .rollups import Mark, read_marks

MAX_KEPT = 200_000  # series; past this the cache starts again empty


class MarksCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._generation = 0
        self._kept: dict[int, list[Mark]] = {}

    @property
    def generation(self) -> int:
        return self._generation

    def changed(self) -> None:
        """After a commit that changed `rollup_marks`: forget everything kept."""
        with self._lock:
            self._generation += 1
            self._kept = {}

    def read(self, cur: duckdb.DuckDBPyConnection, ids: list[int]) -> dict[int, list[Mark]]:
        """The watermarks of the series `ids` (as `read_marks`), from the table only for
        the series not kept since the last change."""
        with self._lock:
            generation, kept = self._generation, self._kept
            missing = [sid for sid in ids if sid not in kept]
        fetched = read_marks(cur, missing) if missing else {}
        out = {sid: kept[sid] for sid in ids if kept.get(sid)}
        for sid in missing:
            if fetched.get(sid):
                out[sid] = fetched[sid]
        if missing:
            with self._lock:
                if self._generation == generation:
                    if len(self._kept) + len(missing) > MAX_KEPT:
                        self._kept = {}
                    for sid in missing:
                        self._kept[sid] = fetched.get(sid, [])
        return out


_CACHES: weakref.WeakKeyDictionary[object, MarksCache] = weakref.WeakKeyDictionary()
_CACHES_LOCK = threading.Lock()


def marks_cache(store: object) -> MarksCache:
    """The cache of one store (one per store object, created on first use)."""
    with _CACHES_LOCK:
        cache = _CACHES.get(store)
        if cache is None:
            cache = _CACHES[store] = MarksCache()
        return cache


class ColdCatalog:
    """The `cold_files` rows of each tenant, kept between reads the same way: the writers
    of the catalog (`storage.cold`) call `changed()` after each transaction that may have
    changed it, and a read keeps rows only if no change came during its query."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._generation = 0
        self._kept: dict[int, list[tuple[str, date, int]]] = {}

    def changed(self) -> None:
        with self._lock:
            self._generation += 1
            self._kept = {}

    def rows(
        self, cur: duckdb.DuckDBPyConnection, tenant_id: int, first: date, last: date
    ) -> list[tuple[str, date, int]]:
        """(path, day, bytes) of the tenant's cold files of the days [first, last], by day."""
        with self._lock:
            generation, every = self._generation, self._kept.get(tenant_id)
        if every is None:
            every = [
                (str(r[0]), r[1], int(r[2]))
                for r in cur.execute(
                    "SELECT path, day, bytes FROM cold_files WHERE tenant_id = ? ORDER BY day",
                    [tenant_id],
                ).fetchall()
            ]
            with self._lock:
                if self._generation == generation:
                    self._kept[tenant_id] = every
        return [r for r in every if first <= r[1] <= last]


_CATALOGS: weakref.WeakKeyDictionary[object, ColdCatalog] = weakref.WeakKeyDictionary()


def cold_catalog(store: object) -> ColdCatalog:
    """The cold-file catalog cache of one store (created on first use)."""
    with _CACHES_LOCK:
        catalog = _CATALOGS.get(store)
        if catalog is None:
            catalog = _CATALOGS[store] = ColdCatalog()
        return catalog
