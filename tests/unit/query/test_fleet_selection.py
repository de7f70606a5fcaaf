"""`Selection.where` on a real DuckDB table: one alternative (plain `=`) and several
(a list parameter) select the same series, for metrics, devices and tags."""

from __future__ import annotations

import json

import duckdb
import pytest

from stats_service.query.fleet import Selection, parse_selection

ROWS = [
    (1, 1, "cpu", "h1", {"device": "h1", "rack": "1", "a/b~c": "x"}),
    (2, 1, "cpu", "h2", {"device": "h2", "rack": "2"}),
    (3, 1, "mem", "h1", {"device": "h1", "rack": "1"}),
    (4, 1, "mem", None, {"rack": "3", "a/b~c": "y"}),
    (5, 2, "cpu", "h1", {"device": "h1", "rack": "1"}),  # another tenant
]


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE series (id BIGINT, tenant_id INTEGER, metric VARCHAR, device VARCHAR, "
        "tags VARCHAR)"
    )
    con.executemany(
        "INSERT INTO series VALUES (?, ?, ?, ?, ?)",
        [(i, t, m, d, json.dumps(tags)) for i, t, m, d, tags in ROWS],
    )
    return con


def ids(con: duckdb.DuckDBPyConnection, selection: Selection) -> list[int]:
    clause, params = selection.where(1)
    rows = con.execute(f"SELECT s.id FROM series s WHERE {clause} ORDER BY s.id", params)
    return [int(r[0]) for r in rows.fetchall()]


@pytest.mark.parametrize(
    ("metric", "device", "tags", "expected"),
    [
        ("cpu", None, {}, [1, 2]),
        ("cpu,mem", None, {}, [1, 2, 3, 4]),
        (None, "h1", {}, [1, 3]),
        (None, "h1,h2", {}, [1, 2, 3]),
        (None, None, {"tag.rack": "1"}, [1, 3]),
        (None, None, {"tag.rack": "1,3"}, [1, 3, 4]),
        ("mem", None, {"tag.rack": "1,3"}, [3, 4]),
        ("cpu,mem", "h1", {"tag.rack": "1"}, [1, 3]),
        (None, None, {"tag.a/b~c": "x"}, [1]),
        (None, None, {"tag.a/b~c": "x,y"}, [1, 4]),
        ("cpu", "h2,h1", {"tag.rack": "2,1", "tag.device": "h2"}, [2]),
        ("disk", None, {}, []),
    ],
)
def test_one_or_several_alternatives_select_the_same_way(
    con: duckdb.DuckDBPyConnection,
    metric: str | None,
    device: str | None,
    tags: dict[str, str],
    expected: list[int],
) -> None:
    assert ids(con, parse_selection(metric, device, tags)) == expected
