"""Pattern analysis API against a real app: known answers through HTTP (a planted
change point, a known period, a planted motif, a known lag, a known cause), 400s that
name the parameter or the limit, 404 for unknown and other tenants' series, and the
task path (202, then GET /tasks/{id} gives the same body)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from conftest import ADMIN_KEY, make_settings, new_key, new_tenant
from stats_service.api.routers import patterns
from stats_service.app import create_app

# whichever test first asks for motifs in a process pays stumpy's compile (numba): up to
# a minute on a fresh machine
pytestmark = pytest.mark.timeout(300)

T0 = 1_789_999_200  # epoch seconds, a whole hour (2026-09-21T14:00:00Z)
FROM = "2026-09-21T14:00:00Z"
TO_6H = "2026-09-21T20:00:00Z"
TO_LATE = "2026-09-22T10:00:00Z"
WINDOW = {"from": FROM, "to": TO_6H}
LIMIT = 1000  # analysis_max_points of this app
DEVICE = "pattern-board"


@dataclass
class World:
    client: TestClient
    a: dict[str, str]
    b: dict[str, str]
    ids: dict[str, str]

    def get(self, url: str, headers: dict[str, str] | None = None, **params: Any) -> Any:
        return self.client.get(url, params=params, headers=headers or self.a)


def _signals() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(21)
    level = 20.0 + rng.normal(0, 0.5, 300)
    level[180:] += 3.0  # change point at bucket 180
    t = np.arange(360)
    hourly = 10.0 + 2.0 * np.sin(2 * np.pi * t / 60) + rng.normal(0, 0.3, 360)
    shape = 4.0 * np.sin(np.linspace(0, 3 * np.pi, 20)) * np.linspace(1, 0.3, 20)
    motif = rng.normal(0, 1.0, 400)
    motif[50:70] = shape + rng.normal(0, 0.05, 20)
    motif[260:280] = shape + rng.normal(0, 0.05, 20)
    x = rng.normal(0, 1, 300)
    y = np.zeros(300)
    y[2:] = 0.8 * x[:-2]  # y[t] = 0.8 x[t-2] + noise
    y += rng.normal(0, 0.4, 300)
    big = rng.normal(0, 1, 1200)
    return {"level": level, "hourly": hourly, "motif": motif, "x": x, "y": y, "big": big}


def _ingest(client: TestClient, headers: dict[str, str], metric: str, values: np.ndarray) -> None:
    points = [{"ts": T0 + 60 * i + 7, "values": {metric: float(v)}} for i, v in enumerate(values)]
    body = {"device": DEVICE, "points": points}
    answer = client.post("/v1/ingest?precision=s", json=body, headers=headers)
    assert answer.status_code == 202, answer.text


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    settings = make_settings(Path(tmp_path_factory.mktemp("patterns")), analysis_max_points=LIMIT)
    with TestClient(create_app(settings)) as client:
        admin = {"X-API-Key": ADMIN_KEY}
        for metric, values in _signals().items():
            _ingest(client, admin, metric, values)
        new_tenant(client, "other")
        b = new_key(client, "admin", tenant="other")
        _ingest(client, b, "level", np.zeros(10))  # B has a series of the same name
        items = client.get("/v1/series", params={"device": DEVICE}, headers=admin).json()
        ids = {s["metric"]: s["id"] for s in items["items"]}
        yield World(client, new_key(client, "read"), b, ids)


def _ok(answer: Any) -> dict[str, Any]:
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_planted_change_point(world: World) -> None:
    body = _ok(
        world.get(f"/v1/series/{world.ids['level']}/changepoints", **{"from": FROM, "to": TO_6H})
    )
    assert body["analysis"] == "changepoints" and body["bucket"] == "1m"
    assert body["buckets"] == 300 and body["gaps"]["trimmed_end"] == 60
    found = [c["index"] for c in body["change_points"]]
    assert len(found) == 1 and abs(found[0] - 180) <= 3
    assert body["change_points"][0]["shift"] > 2.5
    assert body["series"][0]["series_id"] == world.ids["level"]


def test_known_period_in_spectrum_and_decomposition(world: World) -> None:
    url = f"/v1/series/{world.ids['hourly']}"
    spectrum = _ok(world.get(f"{url}/spectrum", **{"from": FROM, "to": TO_6H}))
    assert spectrum["dominant"]["duration"] == "1h"
    assert spectrum["dominant"]["seconds"] == pytest.approx(3600, rel=0.03)
    parts = _ok(world.get(f"{url}/decompose", **{"from": FROM, "to": TO_6H}))
    assert parts["period"]["duration"] == "1h" and parts["period"]["detected"] is True
    assert len(parts["seasonal"]) == len(parts["t"]) == 360
    given = _ok(world.get(f"{url}/decompose", **{"from": FROM, "to": TO_6H, "period": "60"}))
    assert given["period"]["seconds"] == 3600 and given["period"]["detected"] is False


def test_planted_motif_and_discord(world: World) -> None:
    body = _ok(
        world.get(
            f"/v1/series/{world.ids['motif']}/motifs", window="20m", **{"from": FROM, "to": TO_6H}
        )
    )
    best = body["motifs"][0]
    assert abs(best["a"]["index"] - 50) <= 2 and abs(best["b"]["index"] - 260) <= 2
    assert body["window"]["buckets"] == 20 and len(body["discords"]) == 3
    discords = [d["index"] for d in body["discords"]]
    assert all(not (40 <= i <= 70 or 250 <= i <= 280) for i in discords[:1])


def test_known_lag_by_correlation(world: World) -> None:
    series = f"{world.ids['x']},{world.ids['y']}"
    body = _ok(world.get("/v1/analysis/correlation", series=series, max_lag="10m", **WINDOW))
    pair = body["pairs"][0]
    assert pair["best_lag"]["buckets"] == 2 and pair["best_lag"]["duration"] == "2m"
    assert pair["leader"] == "a" and pair["best_pearson"] > 0.7
    assert body["max_lag"]["buckets"] == 10
    assert len(body["matrix"]) == 2


def test_known_cause_by_granger(world: World) -> None:
    x, y = world.ids["x"], world.ids["y"]
    forward = _ok(world.get("/v1/analysis/granger", cause=x, effect=y, max_lag=4, **WINDOW))
    assert forward["granger_causes"] is True and forward["best_lag"]["p_value"] < 0.01
    assert forward["best_lag"]["buckets"] == 2 and len(forward["lags"]) == 4
    reverse = _ok(world.get("/v1/analysis/granger", cause=y, effect=x, max_lag=4, **WINDOW))
    assert reverse["granger_causes"] is False and reverse["best_lag"]["p_value"] > 0.05


@pytest.mark.parametrize(
    ("path", "params", "param"),
    [
        ("changepoints", {"bucket": "abc"}, "bucket"),
        ("changepoints", {"bucket": "1d"}, "bucket"),
        ("changepoints", {"model": "l9"}, "model"),
        ("changepoints", {"n_bkps": "-1"}, "n_bkps"),
        ("changepoints", {"n_bkps": "1", "penalty": "3"}, "penalty"),
        ("changepoints", {"n_bkps": "50", "min_size": "10"}, "n_bkps"),
        ("decompose", {"period": "90s"}, "period"),
        ("decompose", {"period": "1"}, "period"),
        ("spectrum", {"top": "0"}, "top"),
        ("motifs", {"window": "2"}, "window"),
        ("motifs", {"window": "300"}, "window"),
        ("spectrum", {"from": "yesterday"}, "from"),
        ("spectrum", {"from": TO_6H, "to": FROM}, "from"),
    ],
)
def test_bad_series_params_name_the_parameter(
    world: World, path: str, params: dict[str, str], param: str
) -> None:
    window = {"from": FROM, "to": TO_6H}
    answer = world.get(f"/v1/series/{world.ids['hourly']}/{path}", **{**window, **params})
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert f"query.{param}" in [e["loc"] for e in answer.json()["errors"]]


@pytest.mark.parametrize(
    ("url", "params", "param"),
    [
        ("/v1/analysis/correlation", {"series": "1"}, "series"),
        ("/v1/analysis/correlation", {"series": "1,x"}, "series"),
        ("/v1/analysis/correlation", {"series": "1,2", "max_lag": "soon"}, "max_lag"),
        ("/v1/analysis/correlation", {"series": "1,2", "max_lag": "5000"}, "max_lag"),
        ("/v1/analysis/correlation", {"series": "1,2", "max_lag": "\u00b2"}, "max_lag"),
        ("/v1/analysis/correlation", {}, "series"),
        ("/v1/analysis/granger", {"cause": "1", "effect": "1"}, "effect"),
        ("/v1/analysis/granger", {"cause": "1", "effect": "2", "max_lag": "0"}, "max_lag"),
        ("/v1/analysis/granger", {"cause": "1", "effect": "2", "alpha": "2"}, "alpha"),
        ("/v1/analysis/granger", {"cause": "1", "effect": "2", "difference": "x"}, "difference"),
        ("/v1/analysis/granger", {"cause": "one", "effect": "2"}, "cause"),
        ("/v1/analysis/granger", {"effect": "2"}, "cause"),
    ],
)
def test_bad_analysis_params_name_the_parameter(
    world: World, url: str, params: dict[str, str], param: str
) -> None:
    answer = world.get(url, **params)
    assert answer.status_code == 400, answer.text
    assert f"query.{param}" in [e["loc"] for e in answer.json()["errors"]]


def test_granger_lags_must_fit_the_data(world: World) -> None:
    x, y = world.ids["x"], world.ids["y"]
    answer = world.get("/v1/analysis/granger", cause=x, effect=y, max_lag="100", **WINDOW)
    assert answer.status_code == 400 and "max_lag" in answer.json()["detail"]


def test_unknown_and_other_tenants_series_are_not_found(world: World) -> None:
    own, mine_b = world.ids["hourly"], "123456789"
    for path in ("changepoints", "decompose", "spectrum", "motifs"):
        for sid, headers in ((own, world.b), (mine_b, world.a)):
            answer = world.get(f"/v1/series/{sid}/{path}", headers=headers, **{"from": FROM})
            assert answer.status_code == 404, answer.text
        async_answer = world.get(f"/v1/series/{own}/{path}", headers=world.b, **{"async": "true"})
        assert async_answer.status_code == 404
    pair = f"{world.ids['x']},{world.ids['y']}"
    assert world.get("/v1/analysis/correlation", headers=world.b, series=pair).status_code == 404
    granger = world.get(
        "/v1/analysis/granger", headers=world.b, cause=world.ids["x"], effect=world.ids["y"]
    )
    assert granger.status_code == 404
    assert world.ids["x"] not in granger.text.replace(f"series {world.ids['x']}", "")


def test_too_many_points_names_the_limit(world: World) -> None:
    answer = world.get(
        f"/v1/series/{world.ids['big']}/spectrum", **{"from": FROM, "to": "2026-09-22T12:00:00Z"}
    )
    assert answer.status_code == 400
    assert f"analysis_max_points={LIMIT}" in answer.json()["detail"]
    wide = {"from": FROM, "to": TO_LATE, "bucket": "5m"}  # 240 buckets, 1200 points to read
    points = world.get(f"/v1/series/{world.ids['big']}/spectrum", **wide)
    assert points.status_code == 400
    assert points.json()["detail"].startswith("the range holds 1200 points")
    assert f"analysis_max_points={LIMIT}" in points.json()["detail"]
    assert [e["loc"] for e in points.json()["errors"]] == ["query.from"]
    grid = world.get(
        f"/v1/series/{world.ids['hourly']}/spectrum", bucket="10s", **{"from": FROM, "to": TO_6H}
    )
    assert grid.status_code == 400
    assert f"analysis_max_points={LIMIT}" in grid.json()["detail"]
    assert [e["loc"] for e in grid.json()["errors"]] == ["query.bucket"]
    pair = f"{world.ids['x']},{world.ids['big']}"
    both = world.get(
        "/v1/analysis/correlation", series=pair, **{"from": FROM, "to": "2026-09-22T12:00:00Z"}
    )
    assert both.status_code == 400 and "analysis_max_points" in both.json()["detail"]


def _finished(world: World, task_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        status = _ok(world.get(f"/tasks/{task_id}"))
        if status["state"] in ("SUCCESS", "FAILURE"):
            return status
        time.sleep(0.1)
    raise AssertionError(f"task {task_id} did not finish")


def test_async_answers_with_a_task_of_the_same_body(world: World) -> None:
    params = {"from": FROM, "to": TO_6H}
    url = f"/v1/series/{world.ids['hourly']}/spectrum"
    direct = _ok(world.get(url, **params))
    started = world.get(url, **params, **{"async": "true"})
    assert started.status_code == 202, started.text
    task = started.json()
    assert task["kind"] == "pattern_analysis"
    done = _finished(world, task["task_id"])
    assert done["state"] == "SUCCESS", done
    assert done["result"] == direct
    assert world.get(f"/tasks/{task['task_id']}", headers=world.b).status_code == 404


def test_large_input_runs_as_a_task(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(patterns.SYNC_BUCKETS, "changepoints", 100)
    url = f"/v1/series/{world.ids['level']}/changepoints"
    started = world.get(url, **{"from": FROM, "to": TO_6H})
    assert started.status_code == 202
    done = _finished(world, started.json()["task_id"])
    assert done["state"] == "SUCCESS"
    assert abs(done["result"]["change_points"][0]["index"] - 180) <= 3


def test_long_decomposition_runs_as_a_task(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its cost depends on the period, known once the series is read: then it decides."""
    url = f"/v1/series/{world.ids['hourly']}/decompose"
    direct = _ok(world.get(url, **WINDOW))
    monkeypatch.setattr(patterns, "SYNC_STL_WORK", 360 * 60 - 1)  # buckets x period
    started = world.get(url, **WINDOW)
    assert started.status_code == 202
    done = _finished(world, started.json()["task_id"])
    assert done["state"] == "SUCCESS" and done["result"] == direct


def test_failed_task_says_why(world: World) -> None:
    """Too little data is found only once the task reads: the task fails with the reason."""
    url = f"/v1/series/{world.ids['hourly']}/motifs"
    started = world.get(
        url, **{"async": "true", "from": "2020-01-01T00:00:00Z", "to": "2020-01-01T01:00:00Z"}
    )
    assert started.status_code == 202
    done = _finished(world, started.json()["task_id"])
    assert done["state"] == "FAILURE" and "buckets with data" in done["error"]


def test_gaps_are_interpolated_and_reported(world: World) -> None:
    body = _ok(
        world.get(
            f"/v1/series/{world.ids['level']}/spectrum", bucket="30s", **{"from": FROM, "to": TO_6H}
        )
    )
    assert body["bucket"] == "30s" and body["buckets"] == 599  # 300 minutes, every other empty
    assert body["gaps"]["interpolated"] == 299


def test_openapi_documents_the_routes(world: World) -> None:
    spec = world.client.get("/openapi.json").json()
    for path in (
        "/v1/series/{series_id}/changepoints",
        "/v1/series/{series_id}/decompose",
        "/v1/series/{series_id}/spectrum",
        "/v1/series/{series_id}/motifs",
        "/v1/analysis/correlation",
        "/v1/analysis/granger",
    ):
        operation = spec["paths"][path]["get"]
        assert {"200", "202", "400", "404"} <= set(operation["responses"]), path
    assert "SpectrumOut" in spec["components"]["schemas"]
