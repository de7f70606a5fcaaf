"""`stats-service features|train|score` on the database file (no server running): the
pipeline runs in the process; messages, exit codes and what is stored."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from conftest import ADMIN_KEY, make_settings
from stats_service.app import create_app
from stats_service.cli import app as cli
from stats_service.storage.embedded import EmbeddedStore


def run(*args: str) -> Any:
    env = {"STATS_ADMIN_KEY": ADMIN_KEY, "STATS_LOG_LEVEL": "warning", "COLUMNS": "120"}
    return CliRunner().invoke(cli, list(args), env=env)


@pytest.fixture
def seeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str, int]:
    """A data dir with 600 points of d1.temp (one spike at point 500); (dir, series, t0)."""
    monkeypatch.chdir(tmp_path)  # no stray .env
    settings = make_settings(tmp_path)
    t0 = (int(time.time()) // 3600 - 3) * 3600
    points = [
        {"ts": t0 + 10 * i, "values": {"temp": 20 + math.sin(i / 7) + (30.0 if i == 500 else 0)}}
        for i in range(600)
    ]
    headers = {"X-API-Key": ADMIN_KEY}
    with TestClient(create_app(settings)) as client:
        answer = client.post(
            "/v1/ingest?precision=s", json={"device": "d1", "points": points}, headers=headers
        )
        assert answer.status_code == 202, answer.text
        sid = client.get("/v1/series", params={"device": "d1"}, headers=headers).json()["items"][0][
            "id"
        ]
    return settings.data_dir, sid, t0


def test_features_train_score_on_the_file(seeded: tuple[Path, str, int]) -> None:
    data_dir, sid, t0 = seeded
    common = ("--data-dir", str(data_dir))
    shown = run("features", "--device", "d1", "--from", str(t0), "--to", str(t0 + 120),
                "--window", "60s", *common)  # fmt: skip
    assert shown.exit_code == 0, shown.output
    assert "d1.temp" in shown.output and "median" in shown.output and "mad" in shown.output
    as_json = run("features", "--series", sid, "--from", str(t0), "--to", str(t0 + 120),
                  "--window", "60s", "--json", *common)  # fmt: skip
    assert as_json.exit_code == 0, as_json.output
    body = json.loads(as_json.stdout.splitlines()[0])
    assert [w["count"] for w in body["series"][0]["windows"]] == [6, 6]

    empty = run("features", "--series", sid, "--from", str(t0 - 7200), "--to", str(t0 - 3600),
                *common)  # fmt: skip
    assert empty.exit_code == 0, empty.output
    assert "no windows" in empty.output

    split = str(t0 + 4000)
    trained = run("train", "--series", sid, "--from", str(t0), "--to", split, "--window", "60s",
                  "--detector", "robust_z", "--param", "window=96", *common)  # fmt: skip
    assert trained.exit_code == 0, trained.output
    assert "trained robust_z for d1.temp" in trained.output and "400 points" in trained.output
    scored = run("score", "--metric", "temp", "--from", split, *common)
    assert scored.exit_code == 0, scored.output
    assert "scored 34 windows (204 points) of 1 series; 1 new anomalies" in scored.output

    store = EmbeddedStore(data_dir / "stats.duckdb")
    try:
        with store.reader() as cur:
            found = cur.execute("SELECT count(*), max(score) FROM anomaly_scores").fetchone()
            assert found is not None and found[0] == 34 and found[1] >= 0.9
            params = cur.execute("SELECT params FROM models").fetchone()
            assert params is not None and json.loads(params[0])["detector"] == {"window": 96}
    finally:
        store.close()


def test_messages_and_exit_codes(seeded: tuple[Path, str, int]) -> None:
    data_dir, sid, t0 = seeded
    common = ("--data-dir", str(data_dir))
    none = run("score", "--series", sid, "--from", str(t0), *common)
    assert (
        none.exit_code == 1 and "no trained model" in none.output and "train first" in none.output
    )
    nothing = run("features", *common)
    assert nothing.exit_code == 2 and "choose series" in nothing.output
    both = run("features", "--series", sid, "--device", "d1", *common)
    assert both.exit_code == 2
    window = run("features", "--series", sid, "--window", "5 parsecs", *common)
    assert window.exit_code == 2 and "window" in window.output
    detector = run("train", "--series", sid, "--detector", "magic", *common)
    assert detector.exit_code == 2 and "unknown detector 'magic'" in detector.output
    unknown = run("train", "--device", "nope", *common)
    assert unknown.exit_code == 1 and "no series matches device='nope'" in unknown.output
    tenant = run("features", "--tenant", "ghost", "--series", sid, *common)
    assert tenant.exit_code == 1 and "ghost" in tenant.output
