"""The few InfluxQL statements InfluxDB clients send to check a connection.

StatisticsService is not an InfluxQL engine: its data is read with /v1/series and the
aggregate API. Clients that write InfluxDB line protocol, though, ask a few questions
first (Home Assistant's `SHOW DATABASES;`, Telegraf's `CREATE DATABASE "telegraf"`,
Grafana's and Node-RED's `SHOW MEASUREMENTS` / `SHOW RETENTION POLICIES`), and those are
answered here in InfluxDB's JSON shape. Anything else gets a statement error that says
what is answered, with status 200, as InfluxDB reports statement errors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

import duckdb

SUPPORTED = "SHOW DATABASES, SHOW MEASUREMENTS, SHOW RETENTION POLICIES and CREATE DATABASE"
_IDENT = r'(?:"(?:[^"\\]|\\.)*"|[A-Za-z_][A-Za-z0-9_]*)'
_ON = rf"(?:\s+ON\s+(?P<db>{_IDENT}))?"
_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("show_databases", re.compile(r"SHOW\s+DATABASES", re.IGNORECASE)),
    ("show_measurements", re.compile(rf"SHOW\s+MEASUREMENTS{_ON}", re.IGNORECASE)),
    ("show_retention_policies", re.compile(rf"SHOW\s+RETENTION\s+POLICIES{_ON}", re.IGNORECASE)),
    (
        "create_database",
        # WITH DURATION/REPLICATION/... are accepted and ignored: retention is per tenant
        re.compile(rf"CREATE\s+DATABASE\s+(?P<db>{_IDENT})(?:\s+WITH\s+.*)?", re.IGNORECASE),
    ),
)


class Kind(Enum):
    SHOW_DATABASES = "show_databases"
    SHOW_MEASUREMENTS = "show_measurements"
    SHOW_RETENTION_POLICIES = "show_retention_policies"
    CREATE_DATABASE = "create_database"
    UNSUPPORTED = "unsupported"


@dataclass(frozen=True, slots=True)
class Statement:
    kind: Kind
    text: str
    database: str | None = None  # ON <db> / CREATE DATABASE <db>

    @property
    def unsupported_message(self) -> str:
        return (
            f"statement not supported: {self.text[:200]!r}. StatisticsService answers only "
            f"{SUPPORTED} over InfluxQL; read data with GET /v1/series and "
            "/v1/series/{id}/points (see docs/protocols/influxdb.md)"
        )


def split_statements(query: str) -> list[str]:
    """`;`-separated statements, outside quotes and regexes; empty ones skipped."""
    statements: list[str] = []
    current: list[str] = []
    quote: str | None = None
    escaped = False
    for char in query:
        if quote is not None:
            current.append(char)
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = None
        elif char in "\"'":
            quote = char
            current.append(char)
        elif char == ";":
            statements.append("".join(current))
            current = []
        else:
            current.append(char)
    statements.append("".join(current))
    return [s.strip() for s in statements if s.strip()]


def identifier(text: str) -> str:
    if text.startswith('"'):
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    return text


def parse_statement(text: str) -> Statement:
    for name, pattern in _PATTERNS:
        match = pattern.fullmatch(text.strip())
        if match is not None:
            db = match.groupdict().get("db")
            return Statement(Kind(name), text, identifier(db) if db else None)
    return Statement(Kind.UNSUPPORTED, text)


def parse_query(query: str) -> list[Statement]:
    return [parse_statement(s) for s in split_statements(query)]


# -- answers ---------------------------------------------------------------------------


def names_series(name: str, names: list[str]) -> dict[str, object]:
    """A one-column series, as InfluxDB lists databases and measurements."""
    series: dict[str, object] = {"name": name, "columns": ["name"]}
    if names:
        series["values"] = [[n] for n in names]
    return series


def measurements(cur: duckdb.DuckDBPyConnection, tenant_id: int) -> list[str]:
    """The tenant's distinct metric names (what a measurement's fields became)."""
    rows = cur.execute(
        "SELECT DISTINCT metric FROM series WHERE tenant_id = ? ORDER BY metric", [tenant_id]
    ).fetchall()
    return [str(r[0]) for r in rows]


def go_duration(days: int) -> str:
    """A retention in days as InfluxDB prints durations (`720h0m0s`; `0s` = forever)."""
    return f"{days * 24}h0m0s" if days > 0 else "0s"


def retention_policies(retention_days: int) -> dict[str, object]:
    """The one policy every database has: `autogen`, the tenant's retention."""
    return {
        "columns": ["name", "duration", "shardGroupDuration", "replicaN", "default"],
        "values": [["autogen", go_duration(retention_days), "168h0m0s", 1, True]],
    }
