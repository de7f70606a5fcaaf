"""The anomalies API against the real app: train and score as tasks, scores read back
with every filter, upsert semantics, retraining updates the model record, the
analysis input cap, 400s naming the parameter, 401, 403 and tenant scoping."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import ADMIN_KEY, make_settings, new_key, new_tenant
from stats_service.app import create_app
from stats_service.services import Services

STEP_S = 10
SPIKE_AT = 500


def seed(
    client: TestClient, headers: dict[str, str], device: str = "d1", n: int = 600
) -> tuple[str, int]:
    """`n` points of `temp` every 10 s ending about an hour ago, one spike; (series, t0)."""
    t0 = (int(time.time()) // 3600 - 3) * 3600
    points = [
        {
            "ts": t0 + STEP_S * i,
            "values": {"temp": 20 + math.sin(i / 7) + (30.0 if i == SPIKE_AT else 0.0)},
        }
        for i in range(n)
    ]
    answer = client.post(
        "/v1/ingest?precision=s", json={"device": device, "points": points}, headers=headers
    )
    assert answer.status_code == 202, answer.text
    items = client.get("/v1/series", params={"device": device}, headers=headers).json()["items"]
    return items[0]["id"], t0


def finished(client: TestClient, headers: dict[str, str], answer: Any) -> dict[str, Any]:
    assert answer.status_code == 202, answer.text
    task_id = answer.json()["task_id"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        task = client.get(f"/tasks/{task_id}", headers=headers).json()
        if task["state"] in ("SUCCESS", "FAILURE"):
            assert task["state"] == "SUCCESS", task
            assert task["progress"] == 1.0
            result: dict[str, Any] = task["result"]
            return result
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} did not finish")


def train(client: TestClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    return finished(client, headers, client.post("/v1/anomalies/train", json=body, headers=headers))


def score(client: TestClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    return finished(client, headers, client.post("/v1/anomalies/score", json=body, headers=headers))


def scores(client: TestClient, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    answer = client.get("/v1/anomalies", params=params, headers=headers)
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


def bad(answer: Any, param: str) -> None:
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert any(param in e["loc"] for e in body["errors"]) or param in body["detail"], body


def test_train_score_read_upsert_and_retrain(
    client: TestClient, admin: dict[str, str], services: Services
) -> None:
    sid, t0 = seed(client, admin)
    split = str(t0 + 400 * STEP_S)
    trained = train(
        client,
        admin,
        series=[sid],
        to=split,
        window="60s",
        detector="robust_z",
        **{"from": str(t0)},
    )
    (model,) = trained["models"]
    assert model["series_id"] == sid and model["detector"] == "robust_z"
    assert model["metrics"]["points"] == 400 and model["params"]["window_us"] == 60_000_000
    path = Path(model["path"])
    assert path.is_file() and path.is_relative_to(services.settings.model_path)
    assert path.name == "robust_z.json" and path.parent.name == sid

    result = score(client, admin, series=[sid], **{"from": split})
    assert result["series"] == 1 and result["windows"] == 34 and result["alarms"] == 1
    found = scores(client, admin, series=sid, **{"from": str(t0)})
    assert len(found) == 34
    top = max(found, key=lambda r: r["score"])
    spike = t0 + SPIKE_AT * STEP_S
    assert top["score"] >= 0.9 and top["detector"] == "robust_z"
    assert top["explanation"]["rule"] == "robust_z" and top["explanation"]["z"] > 10
    assert top["explanation"]["value"] == pytest.approx(50, abs=1.5)
    assert top["window_start"] <= time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(spike))
    high = scores(client, admin, series=sid, min_score="0.9", **{"from": str(t0)})
    assert [r["window_end"] for r in high] == [top["window_end"]]

    # scoring again replaces the rows: no second row per window
    first_scored_at = {r["window_end"]: r["scored_at"] for r in found}
    again = score(client, admin, series=[sid], **{"from": split})
    assert again["windows"] == 34 and again["alarms"] == 0  # the annotation exists already
    rescored = scores(client, admin, series=sid, **{"from": str(t0)})
    assert [r["window_end"] for r in rescored] == [r["window_end"] for r in found]
    assert all(r["scored_at"] >= first_scored_at[r["window_end"]] for r in rescored)
    with services.store.reader() as cur:
        assert cur.execute("SELECT count(*) FROM anomaly_scores").fetchone() == (34,)

    # the alarm is an anomaly band on the series' charts
    marks = client.get(
        "/v1/annotations", params={"series": sid, "from": str(t0), "kind": "anomaly"}, headers=admin
    ).json()["items"]
    assert len(marks) == 1 and marks[0]["source"] == "detector:robust_z"
    assert marks[0]["start"] == top["window_start"] and marks[0]["end"] == top["window_end"]

    # usage: windows scored today
    days = client.get("/v1/usage", headers=admin).json()["days"]
    assert days[-1]["windows_scored"] == 68

    # retraining updates the record (same id, new range and window)
    listed = client.get("/v1/anomalies/models", params={"series": sid}, headers=admin).json()
    assert [m["id"] for m in listed["items"]] == [model["id"]]
    retrained = train(
        client,
        admin,
        series=[sid],
        to=split,
        window="120s",
        detector="robust_z",
        **{"from": str(t0 + 100 * STEP_S)},
    )["models"][0]
    assert retrained["id"] == model["id"] and retrained["created_at"] == model["created_at"]
    assert retrained["updated_at"] > model["updated_at"]
    assert retrained["metrics"]["points"] == 300 and retrained["params"]["window_us"] == 120_000_000
    listed = client.get("/v1/anomalies/models", headers=admin).json()["items"]
    assert len(listed) == 1 and listed[0]["train_from"] == retrained["train_from"]

    # by device / metric (metric_id is the same) and paging
    assert len(scores(client, admin, device="d1", **{"from": str(t0)})) == 34
    assert len(scores(client, admin, metric_id="temp", **{"from": str(t0)})) == 34
    page = client.get(
        "/v1/anomalies", params={"series": sid, "from": str(t0), "limit": "20"}, headers=admin
    ).json()
    rest = client.get(
        "/v1/anomalies",
        params={"series": sid, "from": str(t0), "limit": "20", "cursor": page["next_cursor"]},
        headers=admin,
    ).json()
    assert rest["next_cursor"] is None
    assert [r["window_end"] for r in page["items"] + rest["items"]] == [
        r["window_end"] for r in found
    ]


def test_features_per_window_and_empty_range(client: TestClient, admin: dict[str, str]) -> None:
    sid, t0 = seed(client, admin, n=30)
    answer = client.get(
        "/v1/anomalies/features",
        params={"series": sid, "from": str(t0), "to": str(t0 + 300), "window": "60s"},
        headers=admin,
    )
    assert answer.status_code == 200, answer.text
    (entry,) = answer.json()["series"]
    windows = entry["windows"]
    assert len(windows) == 5 and all(w["count"] == 6 for w in windows)
    first = windows[0]
    values = [20 + math.sin(i / 7) for i in range(6)]
    assert first["mean"] == pytest.approx(sum(values) / 6)
    assert first["min"] == pytest.approx(min(values)) and first["max"] == pytest.approx(max(values))
    assert first["range"] == pytest.approx(max(values) - min(values))
    for name in ("std", "median", "mad"):
        assert isinstance(first[name], float)
    empty = client.get(
        "/v1/anomalies/features",
        params={"series": sid, "from": str(t0 - 7200), "to": str(t0 - 3600)},
        headers=admin,
    )
    assert empty.status_code == 200 and empty.json()["series"][0]["windows"] == []


def test_invalid_parameters_name_the_parameter(client: TestClient, admin: dict[str, str]) -> None:
    sid, _t0 = seed(client, admin, n=20)
    reader = new_key(client, "read")
    get = client.get
    bad(get("/v1/anomalies", params={"from": "yesterday-ish"}, headers=reader), "from")
    bad(get("/v1/anomalies", params={"to": "nope"}, headers=reader), "to")
    bad(get("/v1/anomalies", params={"min_score": "high"}, headers=reader), "min_score")
    bad(get("/v1/anomalies", params={"min_score": "2"}, headers=reader), "min_score")
    bad(get("/v1/anomalies", params={"limit": "0"}, headers=reader), "limit")
    bad(get("/v1/anomalies", params={"series": "abc"}, headers=reader), "series")
    bad(get("/v1/anomalies", params={"cursor": "@@"}, headers=reader), "cursor")
    bad(get("/v1/anomalies", params={"metric": "a", "metric_id": "b"}, headers=reader), "metric_id")
    bad(
        get("/v1/anomalies/features", params={"series": sid, "window": "5x"}, headers=reader),
        "window",
    )
    post = client.post
    bad(
        post("/v1/anomalies/train", json={"series": [sid], "detector": "magic"}, headers=admin),
        "detector",
    )
    bad(
        post("/v1/anomalies/train", json={"series": [sid], "window": "0s"}, headers=admin), "window"
    )
    bad(
        post(
            "/v1/anomalies/train",
            json={"series": [sid], "params": {"nope": 1}, "detector": "robust_z"},
            headers=admin,
        ),
        "params",
    )
    bad(post("/v1/anomalies/train", json={"series": [sid], "from": "x"}, headers=admin), "from")
    bad(
        post("/v1/anomalies/train", json={"series": [sid], "colour": "red"}, headers=admin),
        "colour",
    )
    bad(post("/v1/anomalies/train", json={}, headers=admin), "series")
    bad(post("/v1/anomalies/score", json={"series": [sid]}, headers=admin), "series")  # untrained
    bad(
        post("/v1/anomalies/score", json={"series": [sid], "detector": "magic"}, headers=admin),
        "detector",
    )
    # no key: 401; a reader may not train or score: 403
    assert get("/v1/anomalies").status_code == 401
    assert get("/v1/anomalies/models").status_code == 401
    assert post("/v1/anomalies/train", json={"series": [sid]}).status_code == 401
    assert post("/v1/anomalies/train", json={"series": [sid]}, headers=reader).status_code == 403
    assert post("/v1/anomalies/score", json={"series": [sid]}, headers=reader).status_code == 403


def test_tenant_scoping(client: TestClient, admin: dict[str, str]) -> None:
    sid, t0 = seed(client, admin)
    train(client, admin, series=[sid], detector="robust_z", window="60s", **{"from": str(t0)})
    score(client, admin, series=[sid], **{"from": str(t0)})
    assert scores(client, admin, **{"from": str(t0)})
    new_tenant(client, "other")
    other_admin = new_key(client, "admin", "other")
    other_reader = new_key(client, "read", "other")
    # the other tenant sees none of it, and the series is not found there
    assert scores(client, other_reader, **{"from": str(t0)}) == []
    assert client.get("/v1/anomalies/models", headers=other_reader).json()["items"] == []
    for path in ("/v1/anomalies", "/v1/anomalies/features", "/v1/anomalies/models"):
        answer = client.get(path, params={"series": sid, "from": str(t0)}, headers=other_reader)
        assert answer.status_code == 404, (path, answer.text)
    for path in ("/v1/anomalies/train", "/v1/anomalies/score"):
        answer = client.post(path, json={"series": [sid]}, headers=other_admin)
        assert answer.status_code == 404, (path, answer.text)


def test_input_above_the_analysis_cap_is_refused(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, analysis_max_points=1000)
    headers = {"X-API-Key": ADMIN_KEY}
    with TestClient(create_app(settings)) as client:
        sid, t0 = seed(client, headers, n=1100)
        for answer in (
            client.post(
                "/v1/anomalies/train", json={"series": [sid], "from": str(t0)}, headers=headers
            ),
            client.get(
                "/v1/anomalies/features", params={"series": sid, "from": str(t0)}, headers=headers
            ),
        ):
            assert answer.status_code == 400, answer.text
            assert "analysis_max_points (1000)" in answer.json()["detail"]
