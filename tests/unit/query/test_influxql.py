"""The InfluxQL statements answered for connection checks, and everything else refused."""

from __future__ import annotations

import pytest

from stats_service.query.flux_buckets import buckets_csv, is_buckets_query
from stats_service.query.influxql import Kind, parse_query, split_statements


def test_statements_split_on_semicolons_outside_quotes() -> None:
    assert split_statements('SHOW DATABASES; CREATE DATABASE "a;b";;') == [
        "SHOW DATABASES",
        'CREATE DATABASE "a;b"',
    ]
    assert split_statements("SELECT * FROM m WHERE t = 'x;y'") == [
        "SELECT * FROM m WHERE t = 'x;y'"
    ]


@pytest.mark.parametrize(
    ("text", "kind", "database"),
    [
        ("SHOW DATABASES", Kind.SHOW_DATABASES, None),
        ("show   databases", Kind.SHOW_DATABASES, None),
        ("SHOW MEASUREMENTS", Kind.SHOW_MEASUREMENTS, None),
        ('SHOW MEASUREMENTS ON "home assistant"', Kind.SHOW_MEASUREMENTS, "home assistant"),
        ("SHOW RETENTION POLICIES ON telegraf", Kind.SHOW_RETENTION_POLICIES, "telegraf"),
        ('CREATE DATABASE "tele\\"graf"', Kind.CREATE_DATABASE, 'tele"graf'),
        ("CREATE DATABASE x WITH DURATION 30d REPLICATION 1", Kind.CREATE_DATABASE, "x"),
        ("SELECT value FROM cpu", Kind.UNSUPPORTED, None),
        ("SHOW MEASUREMENTS LIMIT 10", Kind.UNSUPPORTED, None),
        ("DROP DATABASE x", Kind.UNSUPPORTED, None),
        ("CREATE DATABASE 1abc", Kind.UNSUPPORTED, None),
    ],
)
def test_statement_kinds(text: str, kind: Kind, database: str | None) -> None:
    [statement] = parse_query(text)
    assert statement.kind is kind
    assert statement.database == database


def test_unsupported_statements_say_what_is_answered() -> None:
    [statement] = parse_query("SELECT mean(value) FROM cpu")
    assert "SELECT mean(value) FROM cpu" in statement.unsupported_message
    assert "answers only SHOW DATABASES" in statement.unsupported_message


def test_buckets_query_and_its_annotated_csv() -> None:
    assert is_buckets_query(" buckets() \n")
    assert not is_buckets_query('buckets() |> filter(fn: (r) => r.name == "x")')
    csv = buckets_csv(1, ["home", 'we,ird"'], 30)
    lines = csv.split("\r\n")
    assert lines[0] == "#datatype,string,long,string,string,string,string,long"
    assert lines[2] == "#default,_result,,,,,,"
    assert lines[4].startswith(",,0,home,") and lines[4].endswith(",,2592000000000000")
    assert lines[5].startswith(',,0,"we,ird""",')
    assert csv.endswith("\r\n\r\n")
    # ids are stable and differ between tenants
    assert buckets_csv(1, ["home"], 30) == buckets_csv(1, ["home"], 30)
    assert buckets_csv(2, ["home"], 30) != buckets_csv(1, ["home"], 30)
