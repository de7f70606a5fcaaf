"""`stats-service train|score|features` while `stats-service serve` runs on the data dir:
the commands go through the server (train and score are tasks there) and the scores
are read back over HTTP."""

from __future__ import annotations

import json
import math
import time

import pytest

from .harness import ServerProcess, run_cli

pytestmark = [pytest.mark.e2e]


def test_anomaly_commands_through_the_running_server(server: ServerProcess) -> None:
    t0 = (int(time.time()) // 3600 - 3) * 3600
    points = [
        {"ts": t0 + 10 * i, "values": {"temp": 20 + math.sin(i / 7) + (30.0 if i == 500 else 0)}}
        for i in range(600)
    ]
    with server.client() as client:
        answer = client.post("/v1/ingest?precision=s", json={"device": "d1", "points": points})
        assert answer.status_code == 202, answer.text
        sid = client.get("/v1/series", params={"device": "d1"}).json()["items"][0]["id"]
    common = ("--data-dir", str(server.data_dir))
    split = str(t0 + 4000)

    trained = run_cli("train", "--device", "d1", "--from", str(t0), "--to", split,
                      "--window", "60s", "--detector", "robust_z", *common)  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    assert f"trained robust_z for d1.temp (series {sid}) on 400 points" in trained.stdout
    scored = run_cli("score", "--series", sid, "--from", split, *common)
    assert scored.returncode == 0, scored.stderr
    assert "scored 34 windows (204 points) of 1 series; 1 new anomalies" in scored.stdout
    shown = run_cli("features", "--series", sid, "--from", str(t0), "--to", str(t0 + 120),
                    "--window", "60s", "--json", *common)  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    windows = json.loads(shown.stdout.splitlines()[0])["series"][0]["windows"]
    assert [w["count"] for w in windows] == [6, 6]
    refused = run_cli("score", "--series", sid, "--detector", "magic", *common)
    assert refused.returncode == 2 and "unknown detector" in refused.stderr

    with server.client() as client:
        found = client.get(
            "/v1/anomalies", params={"series": sid, "from": str(t0), "min_score": "0.9"}
        ).json()["items"]
    assert len(found) == 1 and found[0]["explanation"]["rule"] == "robust_z"
