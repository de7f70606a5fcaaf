"""Check the Home Assistant connector against a real Home Assistant, not the test fake.

Not part of the test suite: Home Assistant cannot share our environment (the newest
release for Python 3.11 is 2024.3.3, which pins exact versions of aiohttp, httpx, orjson,
urllib3<2 ...). Give it a venv of its own once:

    python3.11 -m venv /tmp/havenv
    /tmp/havenv/bin/pip install homeassistant==2024.3.3 SQLAlchemy==2.0.27 \\
        fnv-hash-fast==0.5.0 psutil-home-assistant==0.0.1 "josepy<1.15"

then, from the repository root:

    .venv/bin/python scripts/homeassistant_real/check.py /tmp/havenv/bin/python

It starts ha_server.py (a Home Assistant core with http, websocket_api, recorder and
history on 127.0.0.1), points a StatisticsService app at it and checks: the current
states on connect, live numeric and text states, units, climate attributes, a removed
entity, ping/pong, the history and statistics commands and their answers through our
parser, a refused token, and `stats-service import homeassistant`. Exits 1 on a mismatch.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from stats_service.app import create_app
from stats_service.cli import app as cli
from stats_service.config import Settings
from stats_service.ingest.protocols.base import ParseContext
from stats_service.ingest.protocols.homeassistant import parse
from stats_service.listeners.homeassistant import history_command
from stats_service.listeners.homeassistant_client import AuthInvalid, Session

ADMIN_KEY = "check-admin-key-0123456789abcdef"
ADMIN = {"X-API-Key": ADMIN_KEY}
HERE = Path(__file__).resolve().parent
TEMP = '{"unit_of_measurement": "°C", "state_class": "measurement"}'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait(check: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise SystemExit(f"FAIL: timed out waiting for {what}")


def expect(label: str, got: object, wanted: object) -> None:
    status = "ok  " if got == wanted else "FAIL"
    print(f"{status} {label}: {got!r}" + ("" if got == wanted else f" (wanted {wanted!r})"))
    if got != wanted:
        raise SystemExit(1)


class RealHomeAssistant:
    def __init__(self, python: str, workdir: Path) -> None:
        config = workdir / "config"
        config.mkdir()
        self.proc = subprocess.Popen(
            [python, str(HERE / "ha_server.py"), str(config), str(free_port())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=(workdir / "ha.log").open("w"),
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"FAIL: Home Assistant did not start; see {workdir / 'ha.log'}")
        info = json.loads(line)
        self.url, self.token, self.version = info["url"], info["token"], info["version"]

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "ok"

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def check_listener(ha: RealHomeAssistant, workdir: Path) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=workdir / "data",
        admin_key=ADMIN_KEY,
        log_level="warning",
        homeassistant_url=ha.url,
        homeassistant_token=ha.token,
        homeassistant_linger_ms=20.0,
    )
    with TestClient(create_app(settings)) as client:
        registry = client.app.state.services.metrics.registry  # type: ignore[attr-defined]
        state = "stats_homeassistant_connection_state"
        wait(lambda: registry.get_sample_value(state, {state: "connected"}) == 1, "connected")

        def series(device: str, metric: str = "state") -> dict[str, Any] | None:
            params = {"device": device, "metric": metric}
            items = client.get("/v1/series", params=params, headers=ADMIN).json()["items"]
            return items[0] if items else None

        def read(device: str, metric: str = "state", kind: str = "points") -> list[Any]:
            found = series(device, metric)
            if found is None:
                return []
            body = client.get(
                f"/v1/series/{found['id']}/{kind}", params={"from": "now-1h"}, headers=ADMIN
            ).json()
            return list(body["value" if kind == "points" else "text"])

        expect("current state on connect", wait(lambda: read("sensor.t"), "get_states"), [20.0])
        expect("unit", series("sensor.t")["unit"], "°C")  # type: ignore[index]
        ha.send(f"set sensor.t 21.5 {TEMP}")
        ha.send('set switch.kettle on {"friendly_name": "Kettle"}')
        ha.send('set sensor.outdoor unavailable {"unit_of_measurement": "°C"}')
        ha.send('set climate.hall heat {"current_temperature": 19.5, "temperature": 21}')
        ha.send("set sensor.gone 4 {}")
        expect("live number", wait(lambda: read("sensor.t")[1:], "live event"), [21.5])
        expect("text state", wait(lambda: read("switch.kettle", kind="states"), "on"), ["on"])
        expect(
            "unavailable is text",
            wait(lambda: read("sensor.outdoor", kind="states"), "unavailable"),
            ["unavailable"],
        )
        expect("unavailable is no number", read("sensor.outdoor"), [])
        wait(lambda: read("climate.hall", kind="states"), "climate")
        expect("climate attribute", read("climate.hall", "current_temperature"), [19.5])
        ha.send("remove sensor.gone")
        events = "stats_homeassistant_events_total"
        wait(lambda: registry.get_sample_value(events, {"outcome": "removed"}) == 1, "removed")
        expect("events written", registry.get_sample_value(events, {"outcome": "written"}), 5.0)


async def check_commands(ha: RealHomeAssistant) -> None:
    session = await Session.open(ha.url, ha.token, on_event=lambda raw, msg: None, on_invalid=print)
    try:
        expect("ping/pong", await session.ping(5), True)
        now = time.time_ns() // 1000
        answer = await session.command(
            history_command(now - 3_600_000_000, now, ["sensor.t", "switch.kettle"])
        )
        print(f"     history answer: {answer.raw[:300]!r}")
        batch = parse(answer.raw, ParseContext(1, now, now + 600_000_000))
        got = (batch.numeric, len(batch.states or []), batch.dropped_count)
        expect("history parsed (points, states, dropped)", got, (2, 1, 0))
        listed = await session.command({"type": "recorder/list_statistic_ids"})
        expect("list_statistic_ids accepted", listed.message["success"], True)
        stats = await session.command(
            {
                "type": "recorder/statistics_during_period",
                "start_time": "2024-01-01T00:00:00Z",
                "statistic_ids": ["sensor.t"],
                "period": "hour",
                "types": ["change", "max", "mean", "min", "state", "sum"],
            }
        )
        expect("statistics_during_period accepted", stats.message["success"], True)
    finally:
        await session.close()
    try:
        await Session.open(ha.url, "not-a-token", on_event=lambda r, m: None, on_invalid=print)
    except AuthInvalid as exc:
        expect("auth_invalid", str(exc), "Invalid access token or password")
    else:
        raise SystemExit("FAIL: a wrong token was accepted")


def check_import(ha: RealHomeAssistant, workdir: Path) -> None:
    args = ["import", "homeassistant", "--url", ha.url, "--token", ha.token,
            "--since", "now-1h", "--data-dir", str(workdir / "imported")]  # fmt: skip
    env = {"STATS_ADMIN_KEY": ADMIN_KEY, "STATS_LOG_LEVEL": "warning"}
    result = CliRunner().invoke(cli, args, env=env)
    print(f"     {result.stdout.strip()}")
    expect("import exit code", result.exit_code, 0)


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        ha = RealHomeAssistant(sys.argv[1], workdir)
        print(f"Home Assistant {ha.version} at {ha.url}")
        try:
            ha.send(f"set sensor.t 20.0 {TEMP}")
            check_listener(ha, workdir)
            ha.send("flush")
            asyncio.run(check_commands(ha))
            check_import(ha, workdir)
        finally:
            ha.close()
    print("all checks passed")


if __name__ == "__main__":
    main()
