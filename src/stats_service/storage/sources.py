"""The relation every read selects points from: hot table plus the cold files it needs.

`points_source(cur, tenant, from_us, to_us)` returns SQL text to put after FROM. With no
cold file overlapping the span it is just `points`, so reads of recent data pay one
small catalog look-up and nothing else. Otherwise it is

    (SELECT series_id, ts, value FROM points
     UNION ALL
     SELECT series_id, ts, value FROM read_parquet([...files of the span...]) c
     WHERE NOT EXISTS (a hot row with the same series_id and ts))

The anti-join makes a late write into a cold day win over the exported value until the
day is re-exported, so a read never sees two values for one (series, time). The
caller's WHERE on series_id and ts is pushed by DuckDB into both branches (zone maps of
the table, row-group statistics of the Parquet files), and DuckDB streams the result:
nothing is materialised in Python.

Only files of the tenant are listed (the catalog is keyed by tenant and day), so one
tenant's read never opens another tenant's files.

A catalog row pointing into a bucket (`s3://...`, see `cold_objects.py`) is resolved to
a local cached copy before the query, through the `stats_cold_fetch` function the
object store registered on the connection; a bucket that cannot be read makes the read
fail with 503 (never a silently shorter answer).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import duckdb

from ..errors import Unavailable
from .cold_objects import FETCH_FUNCTION, is_object_url
from .partitions import DAY_US, day_of_us, day_start_us

if TYPE_CHECKING:  # marks_cache imports rollups, which imports this module
    from .marks_cache import ColdCatalog

HOT = "points"


def cold_files(
    cur: duckdb.DuckDBPyConnection,
    tenant_id: int,
    from_us: int,
    to_us: int,
    catalog: ColdCatalog | None = None,
) -> list[tuple[str, int, int]]:
    """(path, day start us, day end us) of the tenant's cold files overlapping [from, to);
    the catalog rows from `catalog` (kept between reads) when given."""
    if to_us <= from_us:
        return []
    lo, hi = day_of_us(from_us), day_of_us(to_us - 1)
    if catalog is not None:
        rows = catalog.rows(cur, tenant_id, lo, hi)
    else:
        rows = cur.execute(
            "SELECT path, day, bytes FROM cold_files WHERE tenant_id = ? AND day BETWEEN ? AND ? "
            "ORDER BY day",
            [tenant_id, lo, hi],
        ).fetchall()
    paths = _local(cur, [(str(r[0]), int(r[2])) for r in rows])
    return [
        (path, day_start_us(r[1]), day_start_us(r[1]) + DAY_US)
        for path, r in zip(paths, rows, strict=True)
    ]


def _local(cur: duckdb.DuckDBPyConnection, files: list[tuple[str, int]]) -> list[str]:
    """The paths themselves, objects replaced by the paths of their verified cached
    copies (fetched in one call: the cache keeps all files of one query)."""
    remote = [(p, n) for p, n in files if is_object_url(p)]
    if not remote:
        return [p for p, _ in files]
    try:
        row = cur.execute(
            f"SELECT {FETCH_FUNCTION}(?, ?)", [[p for p, _ in remote], [n for _, n in remote]]
        ).fetchall()
    except duckdb.Error as exc:
        raise Unavailable(f"cold tier objects not readable: {exc}") from exc
    local = dict(zip((p for p, _ in remote), (str(x) for x in row[0][0]), strict=True))
    return [local.get(p, p) for p, _ in files]


def parquet_scan(paths: list[str]) -> str:
    """`read_parquet` of these files, as SQL. Hive partitioning is off: the `tenant=<id>`
    directory must not turn into a column."""
    listed = ", ".join("'" + path.replace("'", "''") + "'" for path in paths)
    return f"read_parquet([{listed}], hive_partitioning = false)"


def points_source(
    cur: duckdb.DuckDBPyConnection,
    tenant_id: int,
    from_us: int,
    to_us: int,
    catalog: ColdCatalog | None = None,
) -> str:
    """SQL of the relation (series_id, ts, value) holding the tenant's points of the span;
    with `catalog`, the cold files come from the kept catalog (no query when unchanged)."""
    files = cold_files(cur, tenant_id, from_us, to_us, catalog)
    if not files:
        return HOT
    lo, hi = files[0][1], files[-1][2]
    return (
        "(SELECT series_id, ts, value FROM points UNION ALL "
        f"SELECT c.series_id, c.ts, c.value FROM {parquet_scan([f[0] for f in files])} c "
        "WHERE NOT EXISTS (SELECT 1 FROM points h WHERE h.series_id = c.series_id "
        f"AND h.ts = c.ts AND h.ts >= make_timestamp({lo}::BIGINT) "
        f"AND h.ts < make_timestamp({hi}::BIGINT)))"
    )
