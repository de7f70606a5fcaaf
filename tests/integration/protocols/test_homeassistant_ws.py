"""Home Assistant end to end: the real app follows tests/fake_homeassistant.py over a real
WebSocket, and the read API shows what arrived."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from conftest import ADMIN_KEY, make_settings, new_key, new_tenant
from fake_homeassistant import FakeHomeAssistant
from stats_service.app import create_app
from stats_service.services import Services

ADMIN = {"X-API-Key": ADMIN_KEY}
TEMP = {"unit_of_measurement": "°C", "state_class": "measurement", "device_class": "temperature"}


def wait_for(check: Callable[[], Any], timeout: float = 8.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def fake() -> Iterator[FakeHomeAssistant]:
    with FakeHomeAssistant() as server:
        yield server


def ha_settings(tmp_path: Path, fake: FakeHomeAssistant, **overrides: object) -> Any:
    values: dict[str, object] = {
        "homeassistant_url": fake.url,
        "homeassistant_token": fake.token,
        "homeassistant_linger_ms": 20.0,
        "homeassistant_ping_s": 0.5,
        "homeassistant_reconnect_min_s": 0.05,
        "homeassistant_reconnect_max_s": 0.2,
    }
    values.update(overrides)
    return make_settings(tmp_path, **values)


@pytest.fixture
def app(tmp_path: Path, fake: FakeHomeAssistant) -> Iterator[TestClient]:
    with TestClient(create_app(ha_settings(tmp_path, fake))) as client:
        yield client


def services_of(client: TestClient) -> Services:
    return client.app.state.services  # type: ignore[attr-defined,no-any-return]


def metric(client: TestClient, name: str, **labels: str) -> float:
    value = services_of(client).metrics.registry.get_sample_value(name, labels)
    return value or 0.0


def series(client: TestClient, device: str, name: str = "state") -> dict[str, Any] | None:
    response = client.get("/v1/series", params={"device": device, "metric": name}, headers=ADMIN)
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    return items[0] if items else None


def values(client: TestClient, device: str, name: str = "state") -> list[float]:
    found = series(client, device, name)
    if found is None:
        return []
    response = client.get(
        f"/v1/series/{found['id']}/points", params={"from": "now-30d"}, headers=ADMIN
    )
    assert response.status_code == 200, response.text
    return list(response.json()["value"])


def texts(client: TestClient, device: str) -> list[str]:
    found = series(client, device)
    if found is None:
        return []
    response = client.get(
        f"/v1/series/{found['id']}/states", params={"from": "now-30d"}, headers=ADMIN
    )
    assert response.status_code == 200, response.text
    return list(response.json()["text"])


def connected(fake: FakeHomeAssistant, count: int = 1) -> None:
    wait_for(lambda: fake.connections >= count and fake.subscribed() >= 1, what="a subscription")


def test_numeric_and_text_states_arrive(app: TestClient, fake: FakeHomeAssistant) -> None:
    connected(fake)
    fake.set_state("sensor.living_room_temperature", "21.5", TEMP)
    fake.set_state("sensor.living_room_temperature", "21.75", TEMP)
    fake.set_state("switch.kettle", "on", {"friendly_name": "Kettle"})
    fake.set_state("sensor.outdoor", "unavailable", {"unit_of_measurement": "°C"})
    fake.set_state("climate.hall", "heat", {"current_temperature": 19.5, "temperature": 21})
    wait_for(lambda: values(app, "sensor.living_room_temperature") == [21.5, 21.75], what="points")
    assert series(app, "sensor.living_room_temperature")["unit"] == "°C"  # type: ignore[index]
    assert wait_for(lambda: texts(app, "switch.kettle")) == ["on"]
    assert wait_for(lambda: texts(app, "sensor.outdoor")) == ["unavailable"]
    assert values(app, "sensor.outdoor") == []  # unavailable is no number
    assert wait_for(lambda: texts(app, "climate.hall")) == ["heat"]
    assert values(app, "climate.hall", "current_temperature") == [19.5]
    assert values(app, "climate.hall", "temperature") == [21.0]
    wait_for(lambda: metric(app, "stats_homeassistant_events_total", outcome="written") == 5)
    state = "stats_homeassistant_connection_state"
    assert metric(app, state, **{state: "connected"}) == 1
    # the subscription asked for exactly state_changed, and the current states were read
    kinds = [c["type"] for c in fake.commands]
    assert kinds[:2] == ["subscribe_events", "get_states"]
    assert fake.commands[0]["event_type"] == "state_changed"


def test_current_states_are_written_on_connect(tmp_path: Path, fake: FakeHomeAssistant) -> None:
    fake.set_state("sensor.energy", "1234.5", {"unit_of_measurement": "kWh"})
    with TestClient(create_app(ha_settings(tmp_path, fake))) as client:
        assert wait_for(lambda: values(client, "sensor.energy")) == [1234.5]


def test_removed_entity_writes_nothing_and_is_counted(
    app: TestClient, fake: FakeHomeAssistant
) -> None:
    connected(fake)
    fake.set_state("sensor.gone", "4", {})
    wait_for(lambda: values(app, "sensor.gone") == [4.0], what="the first point")
    fake.remove("sensor.gone")
    wait_for(lambda: metric(app, "stats_homeassistant_events_total", outcome="removed") == 1)
    assert values(app, "sensor.gone") == [4.0]


def test_bad_messages_are_counted_and_the_rest_written(
    app: TestClient, fake: FakeHomeAssistant
) -> None:
    connected(fake)
    fake.send_raw("this is not json")
    fake.send_raw('{"type": "event"}')  # no id
    sub_id = next(c["id"] for c in fake.commands if c["type"] == "subscribe_events")
    bad = {
        "id": sub_id,
        "type": "event",
        "event": {
            "event_type": "state_changed",
            "data": {"entity_id": "sensor.bad", "new_state": {"entity_id": "sensor.bad"}},
        },
    }
    fake.send_raw(orjson.dumps(bad).decode())
    fake.set_state("sensor.good", "1", {})
    wait_for(lambda: values(app, "sensor.good") == [1.0], what="the good event")
    wait_for(lambda: metric(app, "stats_homeassistant_events_total", outcome="invalid") == 2)
    wait_for(lambda: metric(app, "stats_homeassistant_events_total", outcome="dropped") == 1)
    assert series(app, "sensor.bad") is None


def test_entity_filter(tmp_path: Path, fake: FakeHomeAssistant) -> None:
    settings = ha_settings(tmp_path, fake, homeassistant_entities="sensor.*, climate.hall")
    with TestClient(create_app(settings)) as client:
        connected(fake)
        fake.set_state("switch.kettle", "on", {})
        fake.set_state("sensor.t", "2", {})
        wait_for(lambda: values(client, "sensor.t") == [2.0], what="the wanted sensor")
        assert metric(client, "stats_homeassistant_events_total", outcome="filtered") == 1
        assert series(client, "switch.kettle") is None


def test_auth_invalid_stops_retrying(tmp_path: Path, fake: FakeHomeAssistant) -> None:
    settings = ha_settings(tmp_path, fake, homeassistant_token="wrong-token")
    with TestClient(create_app(settings)) as client:
        state = "stats_homeassistant_connection_state"
        wait_for(lambda: metric(client, state, **{state: "auth_invalid"}) == 1, what="the gauge")
        time.sleep(0.5)  # several backoff periods: no second attempt may come
        assert fake.auth_attempts == 1
        assert fake.connections == 0
        assert client.get("/v1/health").status_code == 200


def test_reconnect_backfills_the_gap(app: TestClient, fake: FakeHomeAssistant) -> None:
    connected(fake)
    fake.set_state("sensor.t", "20", TEMP)
    wait_for(lambda: values(app, "sensor.t") == [20.0], what="the first point")
    fake.drop_connections(refuse=True)
    state = "stats_homeassistant_connection_state"
    wait_for(lambda: metric(app, state, **{state: "disconnected"}) == 1, what="the disconnect")
    # changes while nobody listens: only the recorder sees them
    fake.set_state("sensor.t", "21", TEMP)
    fake.set_state("sensor.t", "22", TEMP)
    fake.set_state("switch.pump", "on", {})  # a new entity, unknown to the listener
    fake.set_state("sensor.t", "22", {**TEMP, "friendly_name": "T"})  # attributes only
    fake.accept()
    connected(fake, 2)
    # 22 twice: the backfill (last change) and get_states (the attribute update after it)
    wait_for(lambda: values(app, "sensor.t") == [20.0, 21.0, 22.0, 22.0], what="the backfill")
    assert metric(app, "stats_homeassistant_reconnects_total") == 1
    wait_for(lambda: metric(app, "stats_homeassistant_backfilled_points_total") >= 2)
    history = [c for c in fake.commands if c["type"] == "history/history_during_period"]
    assert len(history) == 1
    assert history[0]["include_start_time_state"] is False
    assert history[0]["minimal_response"] is True
    assert "sensor.t" in history[0]["entity_ids"]
    # the new entity came with get_states on the reconnect
    assert texts(app, "switch.pump") == ["on"]
    fake.set_state("sensor.t", "23", TEMP)  # and events flow again
    wait_for(lambda: values(app, "sensor.t")[-1:] == [23.0], what="live events after it")


def test_missing_pong_reconnects(tmp_path: Path, fake: FakeHomeAssistant) -> None:
    settings = ha_settings(tmp_path, fake, homeassistant_ping_s=0.1)
    with TestClient(create_app(settings)) as client:
        connected(fake)
        fake.answer_pings = False
        wait_for(lambda: fake.connections >= 2, what="a reconnection")
        fake.answer_pings = True
        wait_for(lambda: metric(client, "stats_homeassistant_reconnects_total") >= 1)
        pings = [c for c in fake.commands if c["type"] == "ping"]
        assert pings


def test_tenant_setting(tmp_path: Path, fake: FakeHomeAssistant) -> None:
    settings = ha_settings(tmp_path, fake, homeassistant_tenant="home")
    bootstrap = make_settings(tmp_path)
    with TestClient(create_app(bootstrap)) as client:
        new_tenant(client, "home")
    with TestClient(create_app(settings)) as client:
        connected(fake)
        fake.set_state("sensor.t", "5", {})
        home = new_key(client, "read", "home")
        found = wait_for(
            lambda: client.get("/v1/series", params={"device": "sensor.t"}, headers=home).json()[
                "items"
            ],
            what="the series in tenant home",
        )
        assert found[0]["last_value"] == 5.0
        assert series(client, "sensor.t") is None  # not in default


# -- the HTTP endpoint -------------------------------------------------------------------


def test_http_endpoint_writes_to_the_callers_tenant_only(app: TestClient) -> None:
    new_tenant(app, "b")
    writer_b, reader_b, reader_a = new_key(app, "ingest", "b"), new_key(app, "read", "b"), ADMIN
    state = {
        "entity_id": "sensor.pm25",
        "state": "12",
        "attributes": {"unit_of_measurement": "µg/m³"},
        "last_updated": "2024-05-01T11:00:00+00:00",
    }
    response = app.post("/v1/ingest/homeassistant", content=orjson.dumps(state), headers=writer_b)
    assert response.status_code == 202, response.text
    assert response.json()["points"] == 1
    found = app.get("/v1/series", params={"device": "sensor.pm25"}, headers=reader_b).json()
    assert found["items"][0]["unit"] == "µg/m³"
    # tenant A (default) sees nothing of it, and a read key may not write
    assert (
        app.get("/v1/series", params={"device": "sensor.pm25"}, headers=reader_a).json()["items"]
        == []
    )
    refused = app.post("/v1/ingest/homeassistant", content=b"{}", headers=reader_b)
    assert refused.status_code == 403
    assert app.post("/v1/ingest/homeassistant", content=b"{}").status_code == 401
    bad = app.post("/v1/ingest/homeassistant", content=b"[1, 2", headers=writer_b)
    assert bad.status_code == 400
    assert "not valid JSON" in bad.json()["detail"]
    assert "/v1/ingest/homeassistant" not in app.get("/openapi.json").json()["paths"]


# -- the import command ------------------------------------------------------------------

DAY = 86_400.0


def recorded_past(fake: FakeHomeAssistant) -> float:
    """Two days of recorded history and hourly statistics; returns the first day's start."""
    day0 = (time.time() // DAY - 2) * DAY
    for hour in range(0, 48, 6):
        fake.set_state("sensor.t", str(20 + hour / 6), TEMP, at=day0 + hour * 3600 + 60)
    fake.set_state("switch.pump", "on", {}, at=day0 + 3600)
    fake.set_state("switch.pump", "off", {}, at=day0 + DAY + 3600)
    fake.add_statistics(
        "sensor.t",
        "°C",
        [{"start": day0 + h * 3600, "mean": 20.5, "min": 20.0, "max": 21.0} for h in range(48)],
        mean=True,
    )
    fake.add_statistics(
        "sensor.energy",
        "kWh",
        [{"start": day0 + h * 3600, "state": 100.0 + h, "sum": float(h)} for h in range(48)],
        mean=False,
    )
    return day0


def run_cli(args: list[str], tmp_path: Path) -> Any:
    from typer.testing import CliRunner

    from stats_service.cli import app as cli

    env = {"STATS_ADMIN_KEY": ADMIN_KEY, "STATS_LOG_LEVEL": "warning", "COLUMNS": "100"}
    return CliRunner().invoke(cli, args, env=env)


def import_args(fake: FakeHomeAssistant, data_dir: Path, since: str, *extra: str) -> list[str]:
    return [
        "import", "homeassistant", "--url", fake.url, "--token", fake.token,
        "--since", since, "--data-dir", str(data_dir), *extra,
    ]  # fmt: skip


def test_import_command_in_process_is_idempotent(
    tmp_path: Path, fake: FakeHomeAssistant, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    day0 = recorded_past(fake)
    since = time.strftime("%Y-%m-%d", time.gmtime(day0))
    data_dir = tmp_path / "data"
    first = run_cli(import_args(fake, data_dir, since), tmp_path)
    assert first.exit_code == 0, first.output
    assert "imported 3 days of 2 entities and 2 statistics" in first.output
    assert "6/6" in first.stderr and "250 points" in first.stderr  # the progress bar
    history = [c for c in fake.commands if c["type"] == "history/history_during_period"]
    assert len(history) == 3 and history[0]["start_time"].startswith(since)
    stats = [c for c in fake.commands if c["type"] == "recorder/statistics_during_period"]
    assert stats[0]["period"] == "hour"
    again = run_cli(import_args(fake, data_dir, since), tmp_path)
    assert again.exit_code == 0, again.output
    assert "0 history points, 0 statistics points" in again.output  # every body stored already
    with TestClient(create_app(make_settings(tmp_path))) as client:
        assert values(client, "sensor.t") == [20 + h / 6 for h in range(0, 48, 6)]
        assert texts(client, "switch.pump") == ["on", "off"]
        assert values(client, "sensor.t", "state.mean") == [20.5] * 48
        assert series(client, "sensor.t", "state.max")["unit"] == "°C"  # type: ignore[index]
        assert values(client, "sensor.energy", "state.sum") == [float(h) for h in range(48)]
        assert series(client, "sensor.energy", "state.state")["unit"] == "kWh"  # type: ignore[index]


def test_import_command_filters_and_skips_statistics(
    tmp_path: Path, fake: FakeHomeAssistant, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    day0 = recorded_past(fake)
    args = import_args(fake, tmp_path / "data", str(day0), "--no-statistics")
    result = run_cli([*args, "--entities", "switch.*", "--until", str(day0 + DAY)], tmp_path)
    assert result.exit_code == 0, result.output
    assert not [c for c in fake.commands if c["type"].startswith("recorder/")]
    with TestClient(create_app(make_settings(tmp_path))) as client:
        assert texts(client, "switch.pump") == ["on"]  # the second day's change is after --until
        assert series(client, "sensor.t") is None


def test_import_command_errors(tmp_path: Path, fake: FakeHomeAssistant) -> None:
    bad_token = run_cli(
        [*import_args(fake, tmp_path / "data", "now-1d")[:4], "--token", "nope",
         "--since", "now-1d", "--data-dir", str(tmp_path / "data")],
        tmp_path,
    )  # fmt: skip
    assert bad_token.exit_code == 1
    assert "Invalid access token" in bad_token.stderr
    backwards = run_cli(import_args(fake, tmp_path / "data", "now", "--until", "now-1d"), tmp_path)
    assert backwards.exit_code == 2 and "--since must lie before --until" in backwards.stderr


def test_import_command_goes_through_a_running_server(
    tmp_path: Path, fake: FakeHomeAssistant
) -> None:
    import httpx

    from e2e.harness import ADMIN, ServerProcess

    day0 = recorded_past(fake)
    server = ServerProcess(tmp_path / "served").start()
    try:
        result = run_cli(import_args(fake, tmp_path / "served", str(day0)), tmp_path)
        assert result.exit_code == 0, result.output
        assert "through the running server" in result.output
        found = httpx.get(
            f"{server.url}/v1/series", params={"device": "sensor.t", "metric": "state.mean"},
            headers=ADMIN,
        ).json()["items"]  # fmt: skip
        assert found and found[0]["last_value"] == 20.5
        again = run_cli(import_args(fake, tmp_path / "served", str(day0)), tmp_path)
        assert again.exit_code == 0, again.output
        assert re.search(r" ([1-9]\d*) requests \(\1 already stored\)", again.output)
    finally:
        server.close()


def test_stop_writes_what_was_received(tmp_path: Path, fake: FakeHomeAssistant) -> None:
    settings = ha_settings(tmp_path, fake, homeassistant_linger_ms=60_000.0)
    with TestClient(create_app(settings)) as client:
        connected(fake)
        fake.set_state("sensor.late", "9", {})
        wait_for(lambda: metric(client, "stats_homeassistant_pending_events") == 1)
    with TestClient(create_app(make_settings(tmp_path))) as client:
        assert values(client, "sensor.late") == [9.0]


def test_a_url_that_cannot_work_fails_the_start(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, homeassistant_url="ftp://ha", homeassistant_token="t")
    with (
        pytest.raises(ValueError, match="not a Home Assistant URL"),
        TestClient(create_app(settings)),
    ):
        pass


def test_unreachable_home_assistant_is_retried_with_backoff(tmp_path: Path) -> None:
    with FakeHomeAssistant() as down:
        down.refusing = True
        settings = ha_settings(tmp_path, down)
        with TestClient(create_app(settings)) as client:
            wait_for(lambda: down.refused >= 3, what="attempts with backoff")  # 502 each time
            assert down.connections == 0 and client.get("/v1/health").status_code == 200
            down.accept()
            connected(down)
            down.set_state("sensor.t", "1", {})
            assert wait_for(lambda: values(client, "sensor.t")) == [1.0]


def test_restart_backfills_from_the_saved_cursor(tmp_path: Path, fake: FakeHomeAssistant) -> None:
    settings = ha_settings(tmp_path, fake)
    with TestClient(create_app(settings)) as client:
        connected(fake)
        fake.set_state("sensor.t", "20", TEMP)
        wait_for(lambda: values(client, "sensor.t") == [20.0], what="the first point")
    cursor = orjson.loads((settings.data_dir / "homeassistant.cursor.json").read_bytes())
    assert cursor["url"] == fake.url
    fake.set_state("sensor.t", "21", TEMP)  # while StatisticsService is down
    fake.set_state("sensor.t", "22", TEMP)
    with TestClient(create_app(settings)) as client:
        wait_for(lambda: values(client, "sensor.t") == [20.0, 21.0, 22.0], what="the backfill")
        history = [c for c in fake.commands if c["type"] == "history/history_during_period"]
        assert len(history) == 1  # only after the restart: the first start had no cursor
    # another Home Assistant behind the same data dir: the cursor is not taken for it
    with FakeHomeAssistant() as other:
        with TestClient(create_app(ha_settings(tmp_path, other))):
            path = settings.data_dir / "homeassistant.cursor.json"
            wait_for(lambda: orjson.loads(path.read_bytes())["url"] == other.url, what="sync")
        assert not [c for c in other.commands if c["type"] == "history/history_during_period"]


def test_no_token_is_reported_not_tried(tmp_path: Path, fake: FakeHomeAssistant) -> None:
    settings = ha_settings(tmp_path, fake, homeassistant_token=None)
    with TestClient(create_app(settings)) as client:
        state = "stats_homeassistant_connection_state"
        assert metric(client, state, **{state: "auth_invalid"}) == 1
        assert fake.auth_attempts == 0


def test_events_whose_write_failed_come_back_with_the_next_backfill(
    app: TestClient, fake: FakeHomeAssistant
) -> None:
    from stats_service.errors import Overloaded

    services = services_of(app)
    real_ingest = services.pipeline.ingest
    refusing = True

    async def full(principal: Any, protocol: str, body: bytes, **kwargs: Any) -> Any:
        if refusing and b"sensor.lost" in body:
            raise Overloaded("the writer queue is full", retry_after=0.01)
        return await real_ingest(principal, protocol, body, **kwargs)

    connected(fake)
    fake.set_state("sensor.kept", "1", {})
    wait_for(lambda: values(app, "sensor.kept") == [1.0], what="a written event")
    services.pipeline.ingest = full  # type: ignore[method-assign]
    try:
        fake.set_state("sensor.lost", "5", {})
        wait_for(lambda: metric(app, "stats_homeassistant_events_total", outcome="failed") == 1)
        refusing = False
        # written, but the cursor stays before the loss; 2 s ahead (Home Assistant's clock
        # may run ahead of ours), so that a backfill from the last event seen would miss 5
        fake.set_state("sensor.lost", "6", {}, at=time.time() + 2)
        wait_for(lambda: values(app, "sensor.lost") == [6.0], what="the next event")
        fake.drop_connections()
        # 5 is only in the history now (get_states says 6): the backfill brought it back
        wait_for(lambda: values(app, "sensor.lost") == [5.0, 6.0], what="the lost event")
        history = [c for c in fake.commands if c["type"] == "history/history_during_period"]
        assert "sensor.lost" in history[-1]["entity_ids"]
    finally:
        services.pipeline.ingest = real_ingest  # type: ignore[method-assign]
