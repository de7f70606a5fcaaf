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
"""

from __future__ import annotations

import duckdb

from .partitions import DAY_US, day_of_us, day_start_us

HOT = "points"


def cold_files(
    cur: duckdb.DuckDBPyConnection, tenant_id: int, from_us: int, to_us: int
) -> list[tuple[str, int, int]]:
    """(path, day start us, day end us) of the tenant's cold files overlapping [from, to)."""
    if to_us <= from_us:
        return []
    lo, hi = day_of_us(from_us), day_of_us(to_us - 1)
    rows = cur.execute(
        "SELECT path, day FROM cold_files WHERE tenant_id = ? AND day BETWEEN ? AND ? ORDER BY day",
        [tenant_id, lo, hi],
    ).fetchall()
    return [(str(r[0]), day_start_us(r[1]), day_start_us(r[1]) + DAY_US) for r in rows]


def parquet_scan(paths: list[str]) -> str:
    """`read_parquet` of these files, as SQL. Hive partitioning is off: the `tenant=<id>`
    directory must not turn into a column."""
    listed = ", ".join("'" + path.replace("'", "''") + "'" for path in paths)
    return f"read_parquet([{listed}], hive_partitioning = false)"


def points_source(cur: duckdb.DuckDBPyConnection, tenant_id: int, from_us: int, to_us: int) -> str:
    """SQL of the relation (series_id, ts, value) holding the tenant's points of the span."""
    files = cold_files(cur, tenant_id, from_us, to_us)
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
