"""The read API in-process against a real DuckDB file: series, devices, points, aggregates,
statistics, usage, tenant isolation and parameter errors. Exports: test_read_export.py."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from read_fixtures import S, add_points, add_series, every, us

from conftest import new_key, new_tenant
from stats_service.api.read_models import AggregateOut, PointsOut, StatsOut
from stats_service.query.buckets import Buckets
from stats_service.query.usage import usage_days
from stats_service.services import Services

T0 = us("2024-05-01T00:00:00Z")
H = 3600 * S


@pytest.fixture
def tenant_id(services: Services) -> int:
    tenant = services.store.get_tenant("default")
    assert tenant is not None
    return tenant.id


@pytest.fixture
def read(client: TestClient) -> dict[str, str]:
    return new_key(client, "read")


def get(client: TestClient, headers: dict[str, str], url: str, **params: Any) -> Any:
    response = client.get(url, params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


# -- series and devices -------------------------------------------------------------------


def test_series_list_filters_and_pages_without_overlap_or_gap(
    client: TestClient, services: Services, tenant_id: int, read: dict[str, str]
) -> None:
    ids = set()
    for i in range(23):
        tags = {"device": f"dev-{i % 4}", "room": "kitchen" if i % 3 == 0 else "hall"}
        ids.add(add_series(services.store, tenant_id, f"metric{i % 5}", tags | {"n": str(i)}))
    seen: list[str] = []
    cursor = None
    while True:
        page = get(client, read, "/v1/series", limit=5, **({"cursor": cursor} if cursor else {}))
        assert len(page["items"]) <= 5
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 23
    assert {int(s) for s in seen} == ids
    assert all(isinstance(s, str) for s in seen)

    kitchen = get(client, read, "/v1/series", **{"tag.room": "kitchen", "limit": 1000})["items"]
    assert len(kitchen) == 8 and all(s["tags"]["room"] == "kitchen" for s in kitchen)
    dev1 = get(client, read, "/v1/series", device="dev-1", metric="metric1")["items"]
    assert sorted(s["tags"]["n"] for s in dev1) == ["1", "21"]
    both = get(client, read, "/v1/series", **{"tag.device": "dev-2", "tag.room": "hall"})
    assert {s["tags"]["n"] for s in both["items"]} == {"2", "10", "14", "22"}
    odd = add_series(services.store, tenant_id, "m", {"a.b": "1", "*": "x", "c/d~": "y"})
    for key, value in (("a.b", "1"), ("*", "x"), ("c/d~", "y")):
        found = get(client, read, "/v1/series", **{f"tag.{key}": value})["items"]
        assert [s["id"] for s in found] == [str(odd)], key
    assert get(client, read, "/v1/series", **{"tag.*": "1"})["items"] == []


def test_series_and_devices_show_the_latest_point(
    client: TestClient, services: Services, tenant_id: int, read: dict[str, str]
) -> None:
    temp = add_series(services.store, tenant_id, "temperature", {"device": "esp"}, "°C")
    hum = add_series(services.store, tenant_id, "humidity", {"device": "esp"}, "%")
    add_series(services.store, tenant_id, "co2", {"device": "pico"})
    add_points(services.store, temp, every(T0, 10, 6), np.arange(6.0))
    add_points(services.store, hum, every(T0, 60, 2), np.array([40.0, 41.5]))

    one = get(client, read, f"/v1/series/{temp}")
    assert one["id"] == str(temp) and one["unit"] == "°C" and one["device"] == "esp"
    assert one["last_ts"] == "2024-05-01T00:00:50.000000Z" and one["last_value"] == 5.0

    devices = get(client, read, "/v1/devices")
    assert devices["next_cursor"] is None
    assert [(d["name"], d["series"], d["metrics"]) for d in devices["items"]] == [
        ("esp", 2, ["humidity", "temperature"]),
        ("pico", 1, ["co2"]),
    ]
    assert get(client, read, "/v1/devices/pico")["series"] == 1
    metrics = get(client, read, "/v1/devices/esp/metrics")
    assert metrics["device"] == "esp"
    latest = {
        m["metric"]: (m["series_id"], m["last_ts"], m["last_value"]) for m in metrics["metrics"]
    }
    assert latest == {
        "humidity": (str(hum), "2024-05-01T00:01:00.000000Z", 41.5),
        "temperature": (str(temp), "2024-05-01T00:00:50.000000Z", 5.0),
    }
    first = get(client, read, "/v1/devices", limit=1)
    assert [d["name"] for d in first["items"]] == ["esp"]
    rest = get(client, read, "/v1/devices", limit=1, cursor=first["next_cursor"])
    assert [d["name"] for d in rest["items"]] == ["pico"] and rest["next_cursor"] is None
    assert client.get("/v1/devices/nope", headers=read).status_code == 404
    assert client.get("/v1/devices/nope/metrics", headers=read).status_code == 404
    assert client.get("/v1/series/12345", headers=read).status_code == 404
    assert client.get("/v1/series/99999999999999999999", headers=read).status_code in (400, 404)


# -- points ---------------------------------------------------------------------------------


def test_points_pages_cover_the_range_exactly(
    client: TestClient, services: Services, tenant_id: int, read: dict[str, str]
) -> None:
    sid = add_series(services.store, tenant_id, "power", {"device": "meter"})
    ts = every(T0, 1, 2500)
    add_points(services.store, sid, ts, np.arange(2500.0))
    start, end = "2024-05-01T00:00:05Z", "2024-05-01T00:40:05Z"  # 2400 points
    got_t: list[str] = []
    got_v: list[float] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"from": start, "to": end, "limit": 1000}
        if cursor:
            params["cursor"] = cursor
        body = get(client, read, f"/v1/series/{sid}/points", **params)
        PointsOut.model_validate(body)
        got_t += body["t"]
        got_v += body["value"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert got_v == [float(v) for v in range(5, 2405)]
    assert got_t[0] == "2024-05-01T00:00:05.000000Z" and got_t[-1] == "2024-05-01T00:40:04.000000Z"
    assert body["series_id"] == str(sid)


# -- aggregates -----------------------------------------------------------------------------


def aggregate(client: TestClient, headers: dict[str, str], sid: int, **params: Any) -> Any:
    body = get(client, headers, f"/v1/series/{sid}/aggregate", **params)
    AggregateOut.model_validate(body)
    return body


def test_buckets_align_to_the_epoch_and_match_numpy(
    client: TestClient, services: Services, tenant_id: int, read: dict[str, str]
) -> None:
    sid = add_series(services.store, tenant_id, "temp", {"device": "a"})
    rng = np.random.default_rng(7)
    ts = every(T0 + 7 * S, 10, 8640)  # a day of 10 s data, off the minute by 7 s
    values = rng.normal(20, 3, ts.shape[0])
    add_points(services.store, sid, ts, values)
    fns = "mean,min,max,sum,count,median,stddev,first,last,p95,p99.9,p5"
    body = aggregate(
        client,
        read,
        sid,
        bucket="5m",
        fn=fns,
        **{"from": "2024-05-01T00:00:00Z", "to": "2024-05-02T00:00:00Z"},
    )
    assert body["bucket"] == "5m" and body["tz"] == "UTC" and body["series_id"] == str(sid)
    assert len(body["t"]) == 288
    assert body["t"][:2] == ["2024-05-01T00:00:00Z", "2024-05-01T00:05:00Z"]
    assert body["count"] == [30] * 288
    starts = (ts - T0) // (300 * S)
    for b in (0, 1, 143, 287):
        part = values[starts == b]
        expected = {
            "mean": part.mean(),
            "min": part.min(),
            "max": part.max(),
            "sum": part.sum(),
            "count": len(part),
            "median": np.median(part),
            "stddev": part.std(ddof=1),
            "first": part[0],
            "last": part[-1],
            "p95": np.percentile(part, 95),
            "p99.9": np.percentile(part, 99.9),
            "p5": np.percentile(part, 5),
        }
        for fn, value in expected.items():
            assert body[fn][b] == pytest.approx(value, rel=1e-9), (fn, b)


def test_every_fill_mode(
    client: TestClient, services: Services, tenant_id: int, read: dict[str, str]
) -> None:
    sid = add_series(services.store, tenant_id, "temp", {"device": "gappy"})
    # data in the minutes 1, 2 and 5 of [0, 8): 1.0, 3.0, 9.0
    ts = np.array([T0 + 60 * S, T0 + 150 * S, T0 + 300 * S + 1], dtype=np.int64)
    add_points(services.store, sid, ts, np.array([1.0, 3.0, 9.0]))
    window = {"from": "2024-05-01T00:00:00Z", "to": "2024-05-01T00:08:00Z"}
    expected = {
        "null": [None, 1.0, 3.0, None, None, 9.0, None, None],
        "zero": [0.0, 1.0, 3.0, 0.0, 0.0, 9.0, 0.0, 0.0],
        "previous": [None, 1.0, 3.0, 3.0, 3.0, 9.0, 9.0, 9.0],
        "linear": [None, 1.0, 3.0, 5.0, 7.0, 9.0, None, None],
    }
    for mode, means in expected.items():
        body = aggregate(client, read, sid, bucket="1m", fn="mean", fill=mode, **window)
        assert body["mean"] == means, mode
        assert body["count"] == [0, 1, 1, 0, 0, 1, 0, 0]
        assert len(body["t"]) == 8 and body["t"][3] == "2024-05-01T00:03:00Z"
    sparse = aggregate(client, read, sid, bucket="1m", fn="mean", fill="none", **window)
    assert sparse["t"] == ["2024-05-01T00:01:00Z", "2024-05-01T00:02:00Z", "2024-05-01T00:05:00Z"]
    assert sparse["mean"] == [1.0, 3.0, 9.0] and sparse["count"] == [1, 1, 1]


def test_day_buckets_follow_the_calendar_of_the_zone_across_dst(
    client: TestClient, services: Services, tenant_id: int, read: dict[str, str]
) -> None:
    sid = add_series(services.store, tenant_id, "energy", {"device": "house"})
    spring = every(us("2024-03-29T00:00:00Z"), 3600, 24 * 5)
    autumn = every(us("2024-10-25T00:00:00Z"), 3600, 24 * 5)
    ts = np.concatenate([spring, autumn])
    add_points(services.store, sid, ts, np.ones(ts.shape[0]))
    params = {"bucket": "1d", "tz": "Europe/Berlin", "fn": "sum", "fill": "null"}
    body = aggregate(
        client,
        read,
        sid,
        **params,
        **{"from": "2024-03-30T00:00:00+01:00", "to": "2024-04-02T00:00:00+02:00"},
    )
    assert body["t"] == [
        "2024-03-30T00:00:00+01:00",
        "2024-03-31T00:00:00+01:00",
        "2024-04-01T00:00:00+02:00",
    ]
    assert body["count"] == [24, 23, 24] and body["sum"] == [24.0, 23.0, 24.0]
    body = aggregate(
        client,
        read,
        sid,
        **params,
        **{"from": "2024-10-26T00:00:00+02:00", "to": "2024-10-28T00:00:00+01:00"},
    )
    assert body["t"] == ["2024-10-26T00:00:00+02:00", "2024-10-27T00:00:00+02:00"]
    assert body["count"] == [24, 25]
    weeks = aggregate(
        client,
        read,
        sid,
        bucket="1w",
        tz="Europe/Berlin",
        fn="count",
        fill="zero",
        **{"from": "2024-10-21T00:00:00+02:00", "to": "2024-11-04T00:00:00+01:00"},
    )
    assert weeks["t"] == ["2024-10-21T00:00:00+02:00", "2024-10-28T00:00:00+01:00"]  # Mondays
    assert weeks["count"] == [71, 49]  # data from Fri 25 Oct 00:00Z, for 120 hours


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/Santiago", "America/Havana"])
@pytest.mark.parametrize("days", [1, 2, 7])
def test_calendar_buckets_of_duckdb_and_of_the_grid_agree(
    services: Services, zone: str, days: int
) -> None:
    """Every instant's bucket (DuckDB) is on the grid (Python) and starts at or before it."""
    buckets = Buckets(days * 24 * H, zone)
    start, end = us("2014-01-01T00:00:00Z"), us("2025-01-01T00:00:00Z")
    instants = np.arange(start, end, H // 2, dtype=np.int64)
    with services.store.reader() as cur:
        rows = cur.execute(
            f"SELECT {buckets.sql('make_timestamp(x)')} AS k FROM unnest(?::BIGINT[]) t(x)",
            [instants.tolist()],
        ).fetchnumpy()["k"]
    keys = buckets.keys(start, end)
    starts = buckets.starts(keys)
    where = np.searchsorted(keys, rows)
    assert np.array_equal(keys[where], rows)
    following = np.append(starts[1:], end)
    assert np.all((starts[where] <= instants) & (instants < following[where]))


# -- statistics -----------------------------------------------------------------------------


def test_stats_match_numpy(
    client: TestClient, services: Services, tenant_id: int, read: dict[str, str]
) -> None:
    sid = add_series(services.store, tenant_id, "temp", {"device": "lab"}, "°C")
    empty = add_series(services.store, tenant_id, "temp", {"device": "lab", "probe": "2"})
    rng = np.random.default_rng(3)
    ts = every(T0, 30, 3000)
    values = rng.gamma(2.0, 5.0, ts.shape[0])
    add_points(services.store, sid, ts, values)
    window = {"from": "2024-05-01T01:00:00Z", "to": "2024-05-01T20:00:00Z"}
    inside = (ts >= us(window["from"])) & (ts < us(window["to"]))
    part, part_ts = values[inside], ts[inside]
    body = get(client, read, "/v1/stats", device="lab", metric="temp", **window)
    StatsOut.model_validate(body)
    assert body["from"] == "2024-05-01T01:00:00.000000Z"
    by_id = {s["series_id"]: s for s in body["series"]}
    assert set(by_id) == {str(sid), str(empty)}
    stats = by_id[str(sid)]
    assert stats["count"] == part.shape[0] and stats["unit"] == "°C"
    expected = {
        "min": part.min(),
        "max": part.max(),
        "sum": part.sum(),
        "mean": part.mean(),
        "median": np.median(part),
        "stddev": part.std(ddof=1),
        "p5": np.percentile(part, 5),
        "p95": np.percentile(part, 95),
        "first": part[0],
        "last": part[-1],
    }
    for name, value in expected.items():
        assert stats[name] == pytest.approx(value, rel=1e-9), name
    assert stats["first_ts"] == "2024-05-01T01:00:00.000000Z"
    assert stats["last_ts"] == datetime.fromtimestamp(int(part_ts[-1]) / S, UTC).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ"
    )
    none = by_id[str(empty)]
    assert none["count"] == 0 and none["mean"] is None and none["first_ts"] is None
    chosen = get(client, read, "/v1/stats", series=f"{sid}", **window)
    assert [s["series_id"] for s in chosen["series"]] == [str(sid)]
    assert chosen["series"][0]["mean"] == stats["mean"]


# -- usage ----------------------------------------------------------------------------------


def test_usage_merges_stored_rows_and_unflushed_counters(
    client: TestClient, services: Services, tenant_id: int, read: dict[str, str]
) -> None:
    with services.store.transaction() as con:
        con.execute("INSERT INTO usage VALUES (?, DATE '2024-05-01', 100, 2000, 3, 1)", [tenant_id])
    today = datetime.now(UTC).date()
    body = get(client, read, "/v1/usage", **{"from": "2024-05-01", "to": today.isoformat()})
    days = {d["day"]: d for d in body["days"]}
    assert days["2024-05-01"] == {
        "day": "2024-05-01",
        "points": 100,
        "bytes": 2000,
        "requests": 3,
        "rejected": 1,
        "windows_scored": 0,
    }
    assert days[today.isoformat()]["requests"] >= 1  # this very request, at least
    with services.store.reader() as cur:
        merged = usage_days(
            cur,
            tenant_id,
            date(2024, 5, 1),
            date(2024, 5, 2),
            {
                (tenant_id, date(2024, 5, 1)): [1, 2, 3, 4],
                (tenant_id + 99, date(2024, 5, 1)): [9] * 4,
            },
        )
    assert merged["days"] == [
        {
            "day": "2024-05-01",
            "points": 101,
            "bytes": 2002,
            "requests": 6,
            "rejected": 5,
            "windows_scored": 0,
        }
    ]
    assert client.get("/v1/usage?from=2024-05-02&to=2024-05-01", headers=read).status_code == 400


# -- through the real ingest path ----------------------------------------------------------


def test_what_ingest_stores_reads_back(client: TestClient, admin: dict[str, str]) -> None:
    now_s = int(datetime.now(UTC).timestamp()) // 60 * 60 - 3600
    body = {
        "device": "esp32-kitchen",
        "units": {"temperature": "°C"},
        "points": [{"ts": now_s + i, "values": {"temperature": 20 + i / 10}} for i in range(90)],
    }
    assert client.post("/v1/ingest", json=body, headers=admin).status_code == 202
    [series] = get(client, admin, "/v1/series", device="esp32-kitchen")["items"]
    assert series["unit"] == "°C" and series["last_value"] == pytest.approx(28.9)
    window = {"from": str(now_s), "to": "now"}
    points = get(client, admin, f"/v1/series/{series['id']}/points", **window)
    assert points["value"] == pytest.approx([20 + i / 10 for i in range(90)])
    minutes = aggregate(client, admin, int(series["id"]), bucket="1m", fn="count,max", **window)
    assert minutes["count"] == [60, 30] and minutes["max"] == pytest.approx([25.9, 28.9])
    [stats] = get(client, admin, "/v1/stats", device="esp32-kitchen", **window)["series"]
    assert stats["count"] == 90 and stats["first"] == 20.0
    metrics = get(client, admin, "/v1/devices/esp32-kitchen/metrics")["metrics"]
    assert [(m["metric"], m["last_value"]) for m in metrics] == [("temperature", 28.9)]


# -- isolation, auth and parameter errors -------------------------------------------------------


def test_other_tenants_series_are_not_found(
    client: TestClient, services: Services, tenant_id: int
) -> None:
    sid = add_series(services.store, tenant_id, "temp", {"device": "secret"})
    add_points(services.store, sid, every(T0, 60, 10), np.arange(10.0))
    new_tenant(client, "other")
    other = new_key(client, "read", "other")
    window = "from=2024-05-01T00:00:00Z&to=2024-05-02T00:00:00Z"
    for url in (
        f"/v1/series/{sid}",
        f"/v1/series/{sid}/points?{window}",
        f"/v1/series/{sid}/aggregate?{window}",
        f"/v1/stats?series={sid}&{window}",
        f"/v1/stats?device=secret&{window}",
        f"/v1/export?series={sid}&{window}",
        f"/v1/export?device=secret&{window}",
        "/v1/devices/secret",
        "/v1/devices/secret/metrics",
    ):
        response = client.get(url, headers=other)
        assert response.status_code == 404, (url, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    assert get(client, other, "/v1/series")["items"] == []
    assert get(client, other, "/v1/devices")["items"] == []
    assert get(client, other, "/v1/series", device="secret")["items"] == []


READ_URLS = [
    "/v1/series",
    "/v1/series/1",
    "/v1/series/1/points",
    "/v1/series/1/aggregate",
    "/v1/devices",
    "/v1/devices/x",
    "/v1/devices/x/metrics",
    "/v1/stats?series=1",
    "/v1/export?series=1",
    "/v1/usage",
]


@pytest.mark.parametrize("url", READ_URLS)
def test_read_endpoints_need_a_read_key(client: TestClient, url: str) -> None:
    assert client.get(url).status_code == 401
    ingest_only = new_key(client, "ingest")
    assert client.get(url, headers=ingest_only).status_code == 403


BAD = [
    ("/v1/series/{sid}/aggregate?bucket=500ms", "bucket", "1s"),
    ("/v1/series/{sid}/aggregate?bucket=fast", "bucket", "duration"),
    ("/v1/series/{sid}/aggregate?bucket=1s&from=now-30d", "bucket", "larger bucket"),
    ("/v1/series/{sid}/aggregate?fn=mean,avg", "fn", "p95"),
    ("/v1/series/{sid}/aggregate?fn=p100", "fn", "pNN"),
    ("/v1/series/{sid}/aggregate?fill=cubic", "fill", "linear"),
    ("/v1/series/{sid}/aggregate?tz=Mars/Olympus", "tz", "time zone"),
    ("/v1/series/{sid}/aggregate?from=yesterday", "from", "RFC 3339"),
    ("/v1/series/{sid}/aggregate?to=12", "to", "unit"),
    ("/v1/series/{sid}/points?from=now&to=now-1h", "from", "before"),
    ("/v1/series/{sid}/points?limit=0", "limit", ""),
    ("/v1/series/{sid}/points?limit=100001", "limit", ""),
    ("/v1/series/{sid}/points?cursor=%25%25", "cursor", "next_cursor"),
    ("/v1/series?cursor=bm9wZQ", "cursor", "next_cursor"),
    ("/v1/series?limit=1001", "limit", ""),
    ("/v1/devices?cursor=LTU", "cursor", "next_cursor"),
    ("/v1/stats?series=abc", "series", "series id"),
    ("/v1/stats", "series", "device="),
    ("/v1/stats?series={sid}&device=x", "series", "not both"),
    ("/v1/export?series={sid}&format=xml", "format", ""),
    ("/v1/export?series={sid}&layout=tall", "layout", ""),
    ("/v1/export?series={sid}&fn=mean", "fn", "bucket"),
    ("/v1/export?series={sid}&bucket=5x", "bucket", "unit 'x'"),
    ("/v1/usage?from=May", "from", "YYYY-MM-DD"),
]


@pytest.mark.parametrize(("url", "param", "words"), BAD, ids=[f"{b[1]}:{b[0]}" for b in BAD])
def test_bad_parameters_are_400_problems_naming_the_parameter(
    client: TestClient,
    services: Services,
    tenant_id: int,
    read: dict[str, str],
    url: str,
    param: str,
    words: str,
) -> None:
    sid = add_series(services.store, tenant_id, "temp", {"device": "x"})
    add_points(services.store, sid, every(T0, 1, 10), np.arange(10.0))
    response = client.get(url.format(sid=sid), headers=read)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 400
    assert problem["errors"][0]["loc"] == f"query.{param}"
    assert words in problem["errors"][0]["msg"]
