"""GET /v1/series/{id}/forecast: model selection, intervals, validation, tenancy, tasks.

Series are written through the ingest API (hourly points in 2024), then forecast over a
range that stops before the end of what was written, so the true continuation is known.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from write_support import assert_problem

from conftest import ADMIN_KEY, make_settings, new_key, new_tenant
from stats_service.app import create_app

START_S = 1_711_929_600  # 2024-04-01T00:00:00Z
HOUR = 3600
DAYS = 14
HORIZON = 48
SEASONAL = {"from": "2024-04-01T00:00:00Z", "to": "2024-04-15T00:00:00Z"}


def daily(n: int) -> np.ndarray:
    rng = np.random.default_rng(7)
    i = np.arange(n)
    return 20 + 5 * np.sin(2 * np.pi * i / 24) + rng.normal(0, 0.5, n)


def walk(n: int) -> np.ndarray:
    return 50 + np.cumsum(np.random.default_rng(3).normal(0, 1, n))


def ramp(n: int) -> np.ndarray:
    return 3 + 0.5 * np.arange(n) + np.random.default_rng(5).normal(0, 0.1, n)


SERIES = {
    "plant": daily(DAYS * 24 + HORIZON),
    "walk": walk(300),
    "ramp": ramp(200),
    "dense": np.arange(1200, dtype=np.float64),  # one a second: more than the cap
}


def write(client: TestClient, headers: dict[str, str], device: str, ys: np.ndarray) -> None:
    step = 1 if device == "dense" else HOUR
    points = [{"ts": START_S + step * i, "values": {"load": float(v)}} for i, v in enumerate(ys)]
    body = {"device": device, "points": points}
    answer = client.post("/v1/ingest?precision=s", json=body, headers=headers)
    assert answer.status_code == 202, answer.text


class World:
    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.admin = {"X-API-Key": ADMIN_KEY}
        self.reader = new_key(client, "read")
        self.ids: dict[str, str] = {}
        for device, ys in SERIES.items():
            write(client, self.admin, device, ys)
            found = client.get("/v1/series", params={"device": device}, headers=self.admin)
            self.ids[device] = found.json()["items"][0]["id"]

    def forecast(self, device: str, status: int = 200, **params: Any) -> dict[str, Any]:
        url = f"/v1/series/{self.ids.get(device, device)}/forecast"
        answer = self.client.get(url, params=params, headers=self.reader)
        assert answer.status_code == status, answer.text
        body: dict[str, Any] = answer.json()
        return body


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    settings = make_settings(Path(tmp_path_factory.mktemp("forecast")), analysis_max_points=1000)
    with TestClient(create_app(settings)) as client:
        yield World(client)


def hours(n: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(START_S + n * HOUR))


def test_daily_season_is_detected_and_beats_naive(world: World) -> None:
    body = world.forecast("plant", horizon=HORIZON, bucket="1h", **SEASONAL)
    assert body["season"] == {
        "buckets": 24,
        "duration": "1d",
        "detected": True,
        "strength": body["season"]["strength"],
    }
    assert body["season"]["strength"] > 0.8
    assert body["bucket"] == "1h" and body["horizon"] == HORIZON
    by_model = {c["model"]: c for c in body["candidates"]}
    assert set(by_model) == {"seasonal_naive", "ets", "arima"}
    assert by_model[body["model"]]["chosen"] and body["mase"] == by_model[body["model"]]["mase"]
    assert body["model"] != "seasonal_naive"
    assert body["mase"] < by_model["seasonal_naive"]["mase"]
    for c in body["candidates"]:
        assert c["mase"] > 0 and 0 < c["smape"] < 200 and c["folds"] >= 2
    assert body["t"][0] == "2024-04-15T00:00:00Z" and body["t"][-1] == "2024-04-16T23:00:00Z"
    assert len(body["forecast"]) == HORIZON
    truth = SERIES["plant"][DAYS * 24 :]
    band = body["intervals"]["95"]
    lo, hi = np.array(band["lo"]), np.array(band["hi"])
    inside = float(np.mean((truth >= lo) & (truth <= hi)))
    assert inside >= 0.85, inside  # about 95 % expected; 85 % leaves room for chance
    inner = body["intervals"]["80"]
    assert all(
        a <= b <= c <= d for a, b, c, d in zip(lo, inner["lo"], inner["hi"], hi, strict=True)
    )
    assert body["history"] == {
        "from": "2024-04-01T00:00:00Z",
        "to": "2024-04-15T00:00:00Z",
        "points": DAYS * 24,
        "raw_points": DAYS * 24,
        "interpolated": 0,
    }
    assert body["unit"] is None and body["series_id"] == world.ids["plant"]


def test_random_walk_intervals_widen(world: World) -> None:
    body = world.forecast("walk", horizon=30, bucket="1h", season="none", **{
        "from": hours(0), "to": hours(300)})  # fmt: skip
    assert body["season"]["buckets"] is None and body["season"]["detected"] is False
    band = body["intervals"]["95"]
    width = np.array(band["hi"]) - np.array(band["lo"])
    assert width[-1] > 2 * width[0]
    assert np.all(np.diff(width) >= -1e-9)


def test_linear_trend_is_continued(world: World) -> None:
    body = world.forecast("ramp", horizon=20, bucket="1h", **{"from": hours(0), "to": hours(200)})
    expected = 3 + 0.5 * np.arange(200, 220)
    got = np.array(body["forecast"])
    assert np.max(np.abs(got - expected)) < 1.0, (body["model"], got - expected)
    assert body["model"] in ("arima", "ets")


def test_forced_model_and_given_season(world: World) -> None:
    body = world.forecast("plant", horizon=24, bucket="1h", model="seasonal_naive", season="1d",
                          **SEASONAL)  # fmt: skip
    assert body["model"] == "seasonal_naive"
    assert [c["model"] for c in body["candidates"]] == ["seasonal_naive"]
    assert body["season"]["buckets"] == 24 and body["season"]["detected"] is False
    # the seasonal naive forecast repeats the last day
    assert body["forecast"] == pytest.approx(list(SERIES["plant"][DAYS * 24 - 24 : DAYS * 24]))


def test_gaps_are_interpolated_and_said(world: World) -> None:
    # 30-minute buckets over hourly data: every other bucket is empty
    body = world.forecast("ramp", horizon=4, bucket="30m", season="none", **{
        "from": hours(0), "to": hours(50)})  # fmt: skip
    assert body["history"]["interpolated"] == 49
    assert any("interpolated linearly" in note for note in body["notes"])


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"horizon": "0"}, "horizon"),
        ({"horizon": "-3"}, "horizon"),
        ({"horizon": "5000"}, "horizon"),
        ({"horizon": "soon"}, "horizon"),
        ({"levels": "80,150"}, "levels"),
        ({"levels": "eighty"}, "levels"),
        ({"bucket": "fortnight"}, "bucket"),
        ({"season": "1"}, "season"),
        ({"season": "1w"}, "season"),  # 168 buckets: more than the history allows
        ({"model": "prophet"}, "model"),
        ({"async": "maybe"}, "async"),
        ({"from": "2024-04-15T00:00:00Z", "to": "2024-04-01T00:00:00Z"}, "from"),
    ],
)
def test_bad_parameters_are_named(world: World, params: dict[str, str], name: str) -> None:
    query = {**SEASONAL, "bucket": "1h", **params}
    url = f"/v1/series/{world.ids['plant']}/forecast"
    problem = assert_problem(world.client.get(url, params=query, headers=world.reader), 400)
    assert problem["errors"][0]["loc"] == f"query.{name}", problem
    assert name in problem["detail"]


def test_too_few_points_says_how_many_are_needed(world: World) -> None:
    url = f"/v1/series/{world.ids['plant']}/forecast"
    params = {"from": hours(0), "to": hours(5), "bucket": "1h"}
    problem = assert_problem(world.client.get(url, params=params, headers=world.reader), 400)
    assert "at least 12" in problem["detail"] and "5 buckets" in problem["detail"]


def test_too_many_points_names_the_limit(world: World) -> None:
    url = f"/v1/series/{world.ids['dense']}/forecast"
    params = {"from": hours(0), "to": hours(1), "bucket": "10s"}
    problem = assert_problem(world.client.get(url, params=params, headers=world.reader), 400)
    assert "1200 points" in problem["detail"] and "1000" in problem["detail"]
    assert "analysis_max_points" in problem["detail"]


def test_unknown_and_foreign_series_are_not_found(world: World) -> None:
    assert_problem(world.client.get("/v1/series/12345/forecast", headers=world.reader), 404)
    new_tenant(world.client, "elsewhere")
    other = new_key(world.client, "read", tenant="elsewhere")
    url = f"/v1/series/{world.ids['plant']}/forecast"
    problem = assert_problem(world.client.get(url, params=SEASONAL, headers=other), 404)
    assert "load" not in problem["detail"]
    # no task is started for another tenant's series either
    later = {**SEASONAL, "async": "true"}
    assert_problem(world.client.get(url, params=later, headers=other), 404)


def _task_result(world: World, answer: Any) -> dict[str, Any]:
    assert answer.status_code == 202, answer.text
    task = answer.json()
    assert answer.headers["location"] == f"/tasks/{task['task_id']}"
    assert task["kind"] == "forecast"
    deadline = time.monotonic() + 60
    while True:
        status = world.client.get(f"/tasks/{task['task_id']}", headers=world.reader).json()
        if status["state"] in ("SUCCESS", "FAILURE") or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert status["state"] == "SUCCESS", status
    assert status["progress"] == 1
    result: dict[str, Any] = status["result"]
    return result


def _without_timings(body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "candidates": [{**c, "seconds": 0} for c in body["candidates"]]}


def test_task_path_returns_the_same_body(world: World) -> None:
    params = {"horizon": 24, "bucket": "1h", **SEASONAL}
    url = f"/v1/series/{world.ids['plant']}/forecast"
    direct = world.forecast("plant", **params)
    later = world.client.get(url, params={**params, "async": "true"}, headers=world.reader)
    result = _task_result(world, later)
    assert _without_timings(result) == _without_timings(direct)


def test_long_work_runs_as_a_task(world: World) -> None:
    # a horizon over ASYNC_HORIZON buckets answers 202 without async=true
    params = {"horizon": "600", "bucket": "1h", "season": "none", "model": "seasonal_naive",
              "from": hours(0), "to": hours(300)}  # fmt: skip
    url = f"/v1/series/{world.ids['walk']}/forecast"
    result = _task_result(world, world.client.get(url, params=params, headers=world.reader))
    assert len(result["forecast"]) == 600 and math.isfinite(result["forecast"][-1])
