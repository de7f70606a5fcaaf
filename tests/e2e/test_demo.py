"""`stats-service demo`: three simulated ESP32 boards and a finished SIR run (posted
over the runs endpoints), for real."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import duckdb
import httpx
import pytest

from .conftest import ServerFactory
from .harness import ADMIN

pytestmark = [pytest.mark.e2e]
BOARDS = ("esp32-01", "esp32-02", "esp32-03")
BOARD_METRICS = {"battery": "V", "humidity": "%", "temperature": "°C"}
SIR_METRICS = {"infected", "recovered", "susceptible"}
SIR_DAYS = 160
POINTS = "stats_ingest_points_total"


def test_demo_boards_report_and_the_sir_run_is_stored(server_factory: ServerFactory) -> None:
    demo = server_factory(command="demo")
    started = time.monotonic()
    demo.start()
    history = len(BOARDS) * len(BOARD_METRICS) * 24 * 60  # a day, a reading a minute
    first_round = 3 * (SIR_DAYS + 1) + history + len(BOARDS) * len(BOARD_METRICS)
    while (seen := demo.metric(POINTS)) < first_round:
        assert time.monotonic() - started < 10, f"only {seen} points after 10 s"
        time.sleep(0.1)
    while demo.metric(POINTS) < seen + len(BOARDS) * len(BOARD_METRICS):  # they keep reporting
        assert time.monotonic() - started < 10, "the boards stopped reporting"
        time.sleep(0.1)

    with demo.client() as client:  # the admin key of STATS_ADMIN_KEY works beside the demo
        keys = client.get("/v1/admin/keys", headers=ADMIN).json()
        assert [k["role"] for k in keys if k["name"] == "demo simulator"] == ["ingest"]
        listed = {d["name"]: d["metrics"] for d in client.get("/v1/devices").json()["items"]}
        assert listed == {
            **{board: sorted(BOARD_METRICS) for board in BOARDS},
            "sim-sir": sorted(SIR_METRICS),
        }
        runs = client.get("/v1/runs", params={"device": "sim-sir"}).json()["items"]
        assert [(r["model"], r["status"], r["steps"]) for r in runs] == [
            ("sir", "finished", SIR_DAYS + 1)
        ]
        summary = client.get(f"/v1/runs/{runs[0]['id']}/summary").json()["epidemic"]
        assert abs(summary["r0_parameters"] - 3.0) < 1e-9
        assert abs(summary["r0_estimate"] - 3.0) < 0.3
        # the boards speak the temperature/v1 contract, so the temperature view lists them
        temps = client.get("/v1/temperature/summary").json()["devices"]
        assert sorted(d["device"] for d in temps) == sorted(BOARDS)
        before = latest(client, "esp32-02")
        while (after := latest(client, "esp32-02")) == before:  # the readings move on
            assert time.monotonic() - started < 10, "esp32-02 reported nothing new"
            time.sleep(0.1)
    assert set(before) == set(after) == set(BOARD_METRICS)
    assert all(after[m] > before[m] for m in BOARD_METRICS)
    demo.terminate()

    con = duckdb.connect(str(demo.data_dir / "stats.duckdb"), read_only=True)
    try:
        devices = {r[0] for r in con.execute("SELECT name FROM devices").fetchall()}
        series = con.execute(
            "SELECT s.device, s.metric, s.unit, count(*), count(DISTINCT p.ts) "
            "FROM series s JOIN points p ON p.series_id = s.id GROUP BY ALL"
        ).fetchall()
        totals = con.execute(
            "SELECT p.ts, sum(p.value) FROM points p JOIN series s ON s.id = p.series_id "
            "WHERE s.device = 'sim-sir' GROUP BY p.ts"
        ).fetchall()
    finally:
        con.close()

    assert devices == {*BOARDS, "sim-sir"}
    by_device: dict[str, dict[str, tuple[str | None, int, int]]] = {}
    for device, metric, unit, count, distinct in series:
        by_device.setdefault(device, {})[metric] = (unit, count, distinct)
    for board in BOARDS:
        assert {m: u for m, (u, _, _) in by_device[board].items()} == BOARD_METRICS
        for metric, (_, count, distinct) in by_device[board].items():
            assert count == distinct >= 2, f"{board}/{metric} was not updated: {count} points"
            # a first start sends a day of history, a reading a minute (STATS_DEMO_HISTORY_H)
            assert count >= 24 * 60, f"{board}/{metric} has no history: {count} points"
    assert {m: (c, d) for m, (_, c, d) in by_device["sim-sir"].items()} == {
        m: (SIR_DAYS + 1, SIR_DAYS + 1) for m in SIR_METRICS
    }
    assert len(totals) == SIR_DAYS + 1
    assert all(abs(total - 10_000) < 1 for _, total in totals)  # S + I + R = population


def latest(client: httpx.Client, device: str) -> dict[str, datetime]:
    """Time of the latest point of each metric of a device, from the read API."""
    found = client.get(f"/v1/devices/{device}/metrics").json()["metrics"]
    return {m["metric"]: datetime.fromisoformat(m["last_ts"]) for m in found}


def test_demo_restarts_with_a_fresh_simulator_key(server_factory: ServerFactory) -> None:
    demo = server_factory(command="demo")
    for _ in range(2):
        demo.start()
        deadline = time.monotonic() + 10
        while demo.metric(POINTS) < 3 * (SIR_DAYS + 1):
            assert time.monotonic() < deadline, "the demo stored nothing"
            time.sleep(0.1)
        demo.terminate()
    demo.start()
    deadline = time.monotonic() + 10
    with demo.client() as client:
        while len(keys := demo_keys(client)) < 3 or keys[-1]["revoked_at"] is not None:
            assert time.monotonic() < deadline, f"no fresh simulator key: {keys}"
            time.sleep(0.1)
    assert len(keys) == 3
    assert all(k["revoked_at"] is not None for k in keys[:2])  # earlier runs' keys are revoked


def demo_keys(client: httpx.Client) -> list[dict[str, Any]]:
    keys = client.get("/v1/admin/keys").json()
    return [k for k in keys if k["name"] == "demo simulator"]
