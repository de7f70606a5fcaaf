"""GET /v1/export against a real DuckDB file: every format parses back, the range and the
selection are respected, wide layout pivots, aggregates export, windows neither repeat
nor skip rows. The memory bound on a large export is in test_export_memory.py."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from read_fixtures import S, add_points, add_series, every, us

from conftest import make_settings, new_key
from stats_service.config import Settings
from stats_service.services import Services

T0 = us("2024-05-01T00:00:00Z")
WINDOW = {"from": "2024-05-01T00:01:00Z", "to": "2024-05-01T00:05:00Z"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, export_batch_rows=1000)  # many windows, many batches


@pytest.fixture
def seeded(client: TestClient, services: Services) -> dict[str, int]:
    tenant = services.store.get_tenant("default")
    assert tenant is not None
    store = services.store
    a = add_series(store, tenant.id, "temp", {"device": "dev-a"}, "°C")
    b = add_series(store, tenant.id, "temp", {"device": "dev-b"})
    c = add_series(store, tenant.id, "temp", {"device": "dev-c", "probe": "2"})
    add_points(store, a, every(T0, 10, 60), np.arange(60.0))  # 00:00:00 .. 00:09:50
    add_points(store, b, every(T0, 20, 30), 100 + np.arange(30.0))  # every 20 s
    add_points(store, c, every(T0 + 5 * S, 60, 10), -np.arange(10.0))
    return {"a": a, "b": b, "c": c}


@pytest.fixture
def read(client: TestClient) -> dict[str, str]:
    return new_key(client, "read")


def export(client: TestClient, headers: dict[str, str], **params: Any) -> Any:
    response = client.get("/v1/export", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response


def expected_long(ids: dict[str, int], names: str = "ab") -> list[tuple[str, str, float]]:
    """(time, series_id, value) of the series in WINDOW, ordered by time then id."""
    rows = []
    for name in names:
        step, count, offset, base = {"a": (10, 60, 0, 0.0), "b": (20, 30, 0, 100.0)}[name]
        for i in range(count):
            t = T0 + offset + i * step * S
            if us(WINDOW["from"]) <= t < us(WINDOW["to"]):
                rows.append((t, ids[name], base + i))
    rows.sort(key=lambda r: (r[0], r[1]))
    return [(stamp(t), str(sid), v) for t, sid, v in rows]


def stamp(t: int) -> str:
    return np.datetime_as_string(np.datetime64(t, "us"), unit="us") + "Z"


@pytest.mark.parametrize("fmt", ["csv", "json", "ndjson", "parquet"])
def test_every_format_parses_back_within_the_range(
    client: TestClient, seeded: dict[str, int], read: dict[str, str], fmt: str
) -> None:
    ids = f"{seeded['a']},{seeded['b']}"
    response = export(client, read, series=ids, format=fmt, **WINDOW)
    media = {
        "csv": "text/csv",
        "json": "application/json",
        "ndjson": "application/x-ndjson",
        "parquet": "application/vnd.apache.parquet",
    }
    assert response.headers["content-type"].startswith(media[fmt])
    disposition = response.headers["content-disposition"]
    assert disposition == (f'attachment; filename="export-20240501T000100Z-20240501T000500Z.{fmt}"')
    rows = [
        (r["time"], str(r["series_id"]), float(r["value"]), r["device"], r["metric"])
        for r in parse(fmt, response.content)
    ]
    expected = expected_long(seeded)
    assert [r[:3] for r in rows] == expected
    devices = {str(seeded["a"]): "dev-a", str(seeded["b"]): "dev-b"}
    assert all(r[3] == devices[r[1]] and r[4] == "temp" for r in rows)


def parse(fmt: str, body: bytes) -> list[dict[str, Any]]:
    if fmt == "csv":
        return list(csv.DictReader(io.StringIO(body.decode())))
    if fmt == "json":
        loaded: list[dict[str, Any]] = json.loads(body)
        return loaded
    if fmt == "ndjson":
        return [json.loads(line) for line in body.decode().splitlines()]
    table = pq.read_table(pa.BufferReader(body))
    assert table.schema.field("time").type == pa.timestamp("us", tz="UTC")
    rows = table.to_pylist()
    for row in rows:
        row["time"] = row["time"].strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return rows


def test_series_ids_are_strings_in_json(
    client: TestClient, seeded: dict[str, int], read: dict[str, str]
) -> None:
    body = export(client, read, device="dev-a", format="json", **WINDOW).json()
    assert body and all(row["series_id"] == str(seeded["a"]) for row in body)


def test_empty_exports_are_valid_documents(
    client: TestClient, seeded: dict[str, int], read: dict[str, str]
) -> None:
    nothing = {"from": "2023-01-01T00:00:00Z", "to": "2023-01-02T00:00:00Z"}
    assert export(client, read, device="dev-a", format="json", **nothing).json() == []
    assert export(client, read, device="dev-a", format="ndjson", **nothing).content == b""
    text = export(client, read, device="dev-a", format="csv", **nothing).text
    assert text == '"time","series_id","device","metric","value"\n'
    empty = export(client, read, device="dev-a", format="parquet", **nothing).content
    table = pq.read_table(pa.BufferReader(empty))
    assert table.num_rows == 0 and table.column_names[:2] == ["time", "series_id"]


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_wide_layout_has_one_column_per_series(
    client: TestClient, seeded: dict[str, int], read: dict[str, str], fmt: str
) -> None:
    response = export(client, read, metric="temp", layout="wide", format=fmt, **WINDOW)
    rows = parse(fmt, response.content)
    labels = ["dev-a.temp", "dev-b.temp", "temp{device=dev-c,probe=2}"]
    assert list(rows[0]) == ["time", *labels]
    assert len(rows) == 24 + 4  # every 10 s from a, plus c's points at :05 past each minute
    by_time = {r["time"]: r for r in rows}
    assert [r["time"] for r in rows] == sorted(by_time)
    first = by_time["2024-05-01T00:01:00.000000Z"]
    assert float(first["dev-a.temp"]) == 6.0 and float(first["dev-b.temp"]) == 103.0
    assert first[labels[2]] in (None, "")
    odd = by_time["2024-05-01T00:01:10.000000Z"]
    assert float(odd["dev-a.temp"]) == 7.0 and odd["dev-b.temp"] in (None, "")
    c = by_time["2024-05-01T00:02:05.000000Z"]
    assert float(c[labels[2]]) == -2.0 and c["dev-a.temp"] in (None, "")


@pytest.mark.parametrize("layout", ["long", "wide"])
def test_aggregates_export(
    client: TestClient, seeded: dict[str, int], read: dict[str, str], layout: str
) -> None:
    ids = f"{seeded['a']},{seeded['b']}"
    params = {"series": ids, "bucket": "1m", "fn": "mean,max", "layout": layout, **WINDOW}
    rows = parse("ndjson", export(client, read, format="ndjson", **params).content)
    if layout == "long":
        assert [(r["time"][11:19], r["series_id"]) for r in rows[:2]] == [
            ("00:01:00", str(min(seeded["a"], seeded["b"]))),
            ("00:01:00", str(max(seeded["a"], seeded["b"]))),
        ]
        a_rows = [r for r in rows if r["series_id"] == str(seeded["a"])]
        assert [r["count"] for r in a_rows] == [6, 6, 6, 6]
        assert [r["mean"] for r in a_rows] == [8.5, 14.5, 20.5, 26.5]
        assert [r["max"] for r in a_rows] == [11.0, 17.0, 23.0, 29.0]
    else:
        assert list(rows[0]) == [
            "time",
            "dev-a.temp:mean",
            "dev-a.temp:max",
            "dev-b.temp:mean",
            "dev-b.temp:max",
        ]
        assert [r["dev-b.temp:mean"] for r in rows] == [104.0, 107.0, 110.0, 113.0]


def test_windows_neither_repeat_nor_skip_rows(
    client: TestClient, services: Services, read: dict[str, str]
) -> None:
    tenant = services.store.get_tenant("default")
    assert tenant is not None
    sids = [add_series(services.store, tenant.id, "v", {"device": f"d{i}"}) for i in range(3)]
    ts = every(T0, 1, 9000)  # 27,000 points: many windows of 2,000 rows at batch_rows=1000
    for i, sid in enumerate(sids):
        add_points(services.store, sid, ts, ts.astype(np.float64) / S + i)
    window = {"from": "2024-05-01T00:00:00Z", "to": "2024-05-02T00:00:00Z"}
    body = export(client, read, metric="v", format="ndjson", **window).content
    rows = [json.loads(line) for line in body.splitlines()]
    assert len(rows) == 27_000
    keys = [(r["time"], r["series_id"]) for r in rows]
    assert keys == sorted(keys, key=lambda k: (k[0], int(k[1])))
    assert len(set(keys)) == 27_000
    params = {"metric": "v", "format": "csv", "bucket": "1m", "fn": "count", "layout": "wide"}
    table = list(csv.reader(io.StringIO(export(client, read, **params, **window).text)))
    assert len(table) == 1 + 150  # 9,000 s = 150 whole minutes, no bucket split or repeated
    assert all(row[1:] == ["60", "60", "60"] for row in table[1:])


def test_series_and_device_selections(
    client: TestClient, seeded: dict[str, int], read: dict[str, str]
) -> None:
    by_device = parse("ndjson", export(client, read, device="dev-c", format="ndjson").content)
    assert {r["series_id"] for r in by_device} == {str(seeded["c"])}
    assert len(by_device) == 10  # no range: everything
    tagged = parse(
        "ndjson", export(client, read, metric="temp", format="ndjson", **{"tag.probe": "2"}).content
    )
    assert {r["series_id"] for r in tagged} == {str(seeded["c"])}
    assert client.get("/v1/export?device=none", headers=read).status_code == 404
    assert client.get("/v1/export?series=42", headers=read).status_code == 404


def test_calendar_buckets_export_their_utc_start(
    client: TestClient, seeded: dict[str, int], read: dict[str, str]
) -> None:
    params = {"bucket": "1d", "tz": "Europe/Berlin", "fn": "count", "format": "csv"}
    rows = parse("csv", export(client, read, device="dev-a", **params).content)
    assert [(r["time"], r["count"]) for r in rows] == [("2024-04-30T22:00:00.000000Z", "60")]
