"""GET /v1/aggregate, /v1/latest and /v1/points: many series in one request.

Data is written through the InfluxDB endpoint (tags beyond the device), then every
answer is checked against values computed here from what was written.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from write_support import T0, T0_US, assert_problem

from stats_service.jobs.compaction import CompactionMetrics, Compactor
from stats_service.query import fleet
from stats_service.services import Services

START_S = T0_US // 1_000_000
N = 60  # points per series, 10 s apart: ten minutes
SPAN = {"from": T0, "to": "2024-05-01T12:10:00Z"}
# (measurement, device, core): one series each; field `value`, so metric = measurement
SERIES = [
    ("cpu", "h1", "0"),
    ("cpu", "h1", "1"),
    ("cpu", "h2", "0"),
    ("mem", "h1", "0"),
    ("mem", "h2", "0"),
    ("mem", "h3", "0"),
]


def value(k: int, i: int) -> float:
    return float((i * 7 + k * 13) % 100)


@pytest.fixture
def written(client: TestClient, admin: dict[str, str]) -> dict[str, str]:
    lines = []
    for k, (measurement, device, core) in enumerate(SERIES):
        rack = "a" if device != "h3" else "b"
        for i in range(N):
            lines.append(
                f"{measurement},device={device},core={core},rack={rack} "
                f"value={value(k, i)} {START_S + 10 * i}"
            )
    answer = client.post(
        "/write?db=x&precision=s", content="\n".join(lines).encode(), headers=admin
    )
    assert answer.status_code == 204, answer.text
    return admin


def get(client: TestClient, url: str, headers: dict[str, str], **params: Any) -> Any:
    answer = client.get(url, params=params, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def expected_buckets(keys: list[int], fn: str) -> list[float]:
    """`fn` of every minute over the series `keys` (points merged)."""
    out = []
    for minute in range(N // 6):
        vals = [value(k, i) for k in keys for i in range(minute * 6, minute * 6 + 6)]
        out.append(max(vals) if fn == "max" else sum(vals) / len(vals))
    return out


def test_aggregate_per_series_matches_the_single_series_endpoint(
    client: TestClient, written: dict[str, str]
) -> None:
    body = get(
        client,
        "/v1/aggregate",
        written,
        metric="cpu,mem",
        device="h1,h2",
        bucket="1m",
        fn="max,mean",
        **SPAN,
    )
    assert body["group_by"] == "series" and body["functions"] == ["max", "mean"]
    groups = body["groups"]
    assert sorted((g["metric"], g["device"], g["tags"]["core"]) for g in groups) == sorted(
        (m, d, c) for m, d, c in SERIES if d != "h3"
    )
    for g in groups:
        k = SERIES.index((g["metric"], g["device"], g["tags"]["core"]))
        assert g["max"] == expected_buckets([k], "max")
        assert g["mean"] == pytest.approx(expected_buckets([k], "mean"))
        assert g["count"] == [6] * 10 and len(g["t"]) == 10
        single = get(
            client,
            f"/v1/series/{g['series_id']}/aggregate",
            written,
            bucket="1m",
            fn="max,mean",
            **SPAN,
        )
        assert (single["t"], single["max"], single["mean"]) == (g["t"], g["max"], g["mean"])


def test_aggregate_group_by_device_merges_the_series_of_a_device(
    client: TestClient, written: dict[str, str]
) -> None:
    body = get(
        client,
        "/v1/aggregate",
        written,
        metric="cpu",
        group_by="device",
        fn="max,mean",
        fill="null",
        **SPAN,
    )
    groups = {g["device"]: g for g in body["groups"]}
    assert set(groups) == {"h1", "h2"}
    assert len(groups["h1"]["series_ids"]) == 2
    assert groups["h1"]["max"] == expected_buckets([0, 1], "max")
    assert groups["h1"]["mean"] == pytest.approx(expected_buckets([0, 1], "mean"))
    assert groups["h1"]["count"] == [12] * 10
    assert groups["h2"]["max"] == expected_buckets([2], "max")
    merged = get(
        client, "/v1/aggregate", written, metric="cpu", group_by="metric", fn="max", **SPAN
    )
    (group,) = merged["groups"]
    assert group["device"] is None and len(group["series_ids"]) == 3
    assert group["max"] == expected_buckets([0, 1, 2], "max")


def test_aggregate_tag_filter_and_pages(client: TestClient, written: dict[str, str]) -> None:
    body = get(client, "/v1/aggregate", written, **{"tag.rack": "b"}, fn="max", **SPAN)
    assert [(g["metric"], g["device"]) for g in body["groups"]] == [("mem", "h3")]
    seen, cursor = [], None
    while True:
        params = {"metric": "mem", "limit": 2, "bucket": "10m", "fn": "count", **SPAN}
        if cursor:
            params["cursor"] = cursor
        page = get(client, "/v1/aggregate", written, **params)
        seen += [g["device"] for g in page["groups"]]
        assert all(g["count"] == [N] for g in page["groups"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["h1", "h2", "h3"]


def test_latest_comes_from_the_last_value_cache(
    client: TestClient, written: dict[str, str]
) -> None:
    body = get(client, "/v1/latest", written, device="h1,h3")
    items = {(i["metric"], i["device"], i["tags"]["core"]): i for i in body["items"]}
    assert len(items) == 4 and body["next_cursor"] is None
    for (metric, device, core), item in items.items():
        k = SERIES.index((metric, device, core))
        assert item["value"] == value(k, N - 1)
        assert item["t"] == "2024-05-01T12:09:50.000000Z"
    page = get(client, "/v1/latest", written, limit=4)
    rest = get(client, "/v1/latest", written, limit=4, cursor=page["next_cursor"])
    assert len(page["items"]) + len(rest["items"]) == len(SERIES)
    assert rest["next_cursor"] is None
    assert get(client, "/v1/latest", written, **{"tag.core": "1"})["items"][0]["device"] == "h1"


def test_points_with_a_value_filter_paged(client: TestClient, written: dict[str, str]) -> None:
    expected: dict[str, list[float]] = defaultdict(list)
    for k, (measurement, device, core) in enumerate(SERIES):
        if measurement == "cpu":
            expected[f"{device}/{core}"] = [value(k, i) for i in range(N) if value(k, i) > 90]
    got: dict[str, list[float]] = defaultdict(list)
    cursor, pages = None, 0
    while True:
        params = {"metric": "cpu", "where": "value > 90", "limit": 4, **SPAN}
        if cursor:
            params["cursor"] = cursor
        page = get(client, "/v1/points", written, **params)
        pages += 1
        for s in page["series"]:
            got[f"{s['device']}/{s['tags']['core']}"] += s["value"]
            assert s["t"] == sorted(s["t"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert dict(got) == {k: v for k, v in expected.items() if v}
    assert pages > 1
    between = get(client, "/v1/points", written, device="h2", min="10", max="20", **SPAN)
    for s in between["series"]:
        assert s["value"] and all(10 <= v <= 20 for v in s["value"])


@pytest.mark.parametrize(
    ("url", "params", "param"),
    [
        ("/v1/aggregate", {}, "metric"),
        ("/v1/aggregate", {"metric": "cpu", "group_by": "rack"}, "group_by"),
        ("/v1/aggregate", {"metric": "cpu", "fn": "maxx"}, "fn"),
        ("/v1/aggregate", {"metric": "cpu", "bucket": "1x"}, "bucket"),
        ("/v1/aggregate", {"metric": "cpu", "cursor": "%%%"}, "cursor"),
        ("/v1/aggregate", {"metric": "cpu", "bucket": "1s"}, "limit"),
        ("/v1/aggregate", {"metric": "cpu", "bucket": "1s", "from": "now-30d"}, "bucket"),
        ("/v1/aggregate", {"metric": " , "}, "metric"),
        ("/v1/latest", {"tag.": "x"}, "tag."),
        ("/v1/latest", {"limit": "0"}, "limit"),
        ("/v1/points", {"metric": "cpu", "limit": "100001"}, "limit"),
        ("/v1/points", {"metric": "cpu", "where": "value >> 9"}, "where"),
        ("/v1/points", {"metric": "cpu", "min": "abc"}, "min"),
        ("/v1/points", {"metric": "cpu", "max": "inf"}, "max"),
        ("/v1/points", {"metric": "cpu", "cursor": "bm90LWEtY3Vyc29y"}, "cursor"),
        ("/v1/points", {"device": "h1"}, "from"),
    ],
)
def test_bad_parameters_are_problem_details(
    client: TestClient,
    written: dict[str, str],
    url: str,
    params: dict[str, str],
    param: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if param == "limit":  # 2 groups x 86,401 one-second buckets of a day
        monkeypatch.setattr(fleet, "MAX_AGGREGATE_CELLS", 100_000)
    elif param == "from":
        params = {**params, "from": "2024-05-02T00:00:00Z", "to": "2024-05-01T00:00:00Z"}
    answer = client.get(url, params=params, headers=written)
    problem = assert_problem(answer, 400)
    assert problem["errors"][0]["loc"] == f"query.{param}", problem


def test_no_match_and_read_role(client: TestClient, written: dict[str, str]) -> None:
    body = get(client, "/v1/aggregate", written, metric="nothing", **SPAN)
    assert body["groups"] == [] and body["next_cursor"] is None
    assert (
        client.get("/v1/points", params={"metric": "nothing"}, headers=written).status_code == 404
    )
    assert client.get("/v1/latest").status_code == 401


def test_openapi_documents_examples(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for url in ("/v1/aggregate", "/v1/latest", "/v1/points"):
        content = paths[url]["get"]["responses"]["200"]["content"]["application/json"]
        assert content["example"], url
        assert "400" in paths[url]["get"]["responses"]


def test_answers_are_the_same_once_the_day_is_in_the_cold_tier(
    client: TestClient, written: dict[str, str], services: Services
) -> None:
    asks = [
        ("/v1/aggregate", {"metric": "cpu", "group_by": "device", "fn": "max,mean", **SPAN}),
        ("/v1/aggregate", {"metric": "cpu,mem", "fn": "p95", **SPAN}),
        ("/v1/points", {"metric": "cpu,mem", "where": "value>=50", **SPAN}),
        ("/v1/latest", {}),
    ]
    before = [get(client, url, written, **params) for url, params in asks]
    compactor = Compactor(
        services.store,
        CompactionMetrics(CollectorRegistry()),
        timedelta(hours=1),
        services.settings.cold_path,
        1,
    )
    report = compactor.run(datetime(2024, 5, 10))
    assert report.days, report
    with services.store.reader() as cur:
        row = cur.execute("SELECT count(*) FROM points").fetchone()
    assert row is not None and row[0] == 0  # every point is in the cold files now
    assert [get(client, url, written, **params) for url, params in asks] == before
