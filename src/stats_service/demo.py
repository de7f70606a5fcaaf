"""`stats-service demo`: virtual ESP32 boards and one finished SIR epidemic run.

Everything goes through the real HTTP ingest path with an ingest key created over the
admin API, exactly as a device would send it. The demo also turns the StatsD listener on
and reports its own numbers there (each POST's latency, posts, errors), as an application
instrumented with a StatsD client would.
"""

from __future__ import annotations

import asyncio
import math
import random
import socket
import time
import uuid
from dataclasses import dataclass

import httpx
import numpy as np
import structlog

from .config import Settings

log = structlog.get_logger(__name__)
DEMO_KEY_NAME = "demo simulator"


@dataclass
class Board:
    """A simulated ESP32 with a temperature/humidity sensor on a battery."""

    name: str
    base_temp: float
    phase: float
    battery: float = 4.15

    def reading(self, t: float, rng: random.Random) -> dict[str, object]:
        return {  # the temperature/v1 device contract (docs/contracts/temperature-v1.md)
            "schema": "temperature/v1",
            "device": self.name,
            **self._measure(t, rng, drain=0.00005),
        }

    def history(self, now: float, hours: float, rng: random.Random) -> dict[str, object]:
        """Readings of the past `hours`, one a minute, as a buffered batch of the contract
        (the battery was fuller then: it drains towards its level now)."""
        times = [now - 60.0 * k for k in range(int(hours * 60), 0, -1)]
        level = self.battery
        self.battery = min(4.2, level + 0.00005 * len(times))
        readings = [{"ts": round(t, 3), **self._measure(t, rng, drain=0.00005)} for t in times]
        self.battery = level
        return {"schema": "temperature/v1", "device": self.name, "readings": readings}

    def _measure(self, t: float, rng: random.Random, drain: float) -> dict[str, float]:
        day = 2 * math.pi * (t % 86400) / 86400
        temp = self.base_temp + 2.5 * math.sin(day + self.phase) + rng.gauss(0, 0.15)
        humidity = 45 - 8 * math.sin(day + self.phase) + rng.gauss(0, 0.8)
        self.battery = max(3.3, self.battery - rng.uniform(0, drain))
        return {
            "temperature": round(temp, 2),
            "humidity": round(min(100.0, max(0.0, humidity)), 1),
            "battery": round(self.battery, 3),
        }


def sir(population: int, infected: int, beta: float, gamma: float, days: int) -> np.ndarray:
    """Deterministic SIR model, one row (S, I, R) per day, integrated in 10 steps a day."""
    s, i, r = float(population - infected), float(infected), 0.0
    rows = np.zeros((days + 1, 3))
    rows[0] = (s, i, r)
    dt = 0.1
    for day in range(1, days + 1):
        for _ in range(10):
            new_inf = beta * s * i / population * dt
            new_rec = gamma * i * dt
            s, i, r = s - new_inf, i + new_inf - new_rec, r + new_rec
        rows[day] = (s, i, r)
    return rows


SIR_DAYS = 160
HISTORY_BATCH = 5_000  # readings per buffered batch (the contract takes up to 10,000)


def sir_run(now: float, run_id: str) -> tuple[dict[str, object], dict[str, object]]:
    """A SIR run (contract epidemic-run/v1): its start and its steps. One simulated day is
    one minute of stored time (`tick_seconds`), and the last day is now."""
    rows = sir(population=10_000, infected=10, beta=0.3, gamma=0.1, days=SIR_DAYS)
    origin = now - SIR_DAYS * 60
    start: dict[str, object] = {
        "schema": "epidemic-run/v1",
        "id": run_id,
        "model": "sir",
        "name": "demo: SIR, R0 = 3",
        "device": "sim-sir",
        "time_origin": round(origin, 3),
        "tick_seconds": 60,
        "parameters": {
            "population": 10_000,
            "beta": 0.3,
            "gamma": 0.1,
            "initial_infected": 10,
            "solver": "euler, dt = 0.1 day",
        },
    }
    steps: dict[str, object] = {
        "schema": "epidemic-run/v1",
        "steps": [
            {
                "t": d,
                "susceptible": round(float(row[0]), 2),
                "infected": round(float(row[1]), 2),
                "recovered": round(float(row[2]), 2),
            }
            for d, row in enumerate(rows)
        ],
    }
    return start, steps


async def _post_run(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    """Start, fill and finish the demo's SIR run over the runs endpoints."""
    run_id = f"sir-demo-{uuid.uuid4().hex[:8]}"
    start, steps = sir_run(time.time(), run_id)
    answer = await client.post("/v1/runs", json=start, headers=headers)
    answer.raise_for_status()
    answer = await client.post(f"/v1/runs/{run_id}/steps", json=steps, headers=headers)
    answer.raise_for_status()
    end = {"schema": "epidemic-run/v1", "status": "finished", "message": "reached day 160"}
    answer = await client.post(f"/v1/runs/{run_id}/finish", json=end, headers=headers)
    answer.raise_for_status()
    return run_id


async def _post_history(
    client: httpx.AsyncClient,
    control_token: str,
    headers: dict[str, str],
    boards: list[Board],
    settings: Settings,
    rng: random.Random,
) -> None:
    """The past readings of each board that has none stored yet (a first start)."""
    now = time.time()
    for board in boards:
        known = await client.get(f"/v1/devices/{board.name}", headers={"X-API-Key": control_token})
        if known.status_code != 404:
            continue
        batch = board.history(now, settings.demo_history_h, rng)
        readings: list[object] = batch.pop("readings")  # type: ignore[assignment]
        for part, at in enumerate(range(0, len(readings), HISTORY_BATCH)):
            answer = await client.post(
                "/v1/contracts/temperature",
                json={**batch, "readings": readings[at : at + HISTORY_BATCH]},
                headers={**headers, "Idempotency-Key": f"demo-history-{board.name}-{part}"},
            )
            if answer.status_code != 202:
                log.warning("demo_history_failed", device=board.name, detail=answer.text[:500])
                break


async def _ingest_key(client: httpx.AsyncClient, control_token: str) -> str:
    """A fresh ingest key for the simulators; the previous run's is revoked."""
    admin = {"X-API-Key": control_token}
    listed = await client.get("/v1/admin/keys", headers=admin)
    for key in listed.json():
        if key["name"] == DEMO_KEY_NAME and key["revoked_at"] is None:
            await client.delete(f"/v1/admin/keys/{key['id']}", headers=admin)
    response = await client.post(
        "/v1/admin/keys",
        json={"tenant": "default", "role": "ingest", "name": DEMO_KEY_NAME},
        headers={"X-API-Key": control_token},
    )
    response.raise_for_status()
    return str(response.json()["key"])


def with_statsd(settings: Settings) -> Settings:
    """The demo's settings: StatsD on, unless it was switched off explicitly. When its
    port is taken (another StatsD daemon, a second demo) the demo runs without it and
    says so, rather than not starting."""
    if "statsd_enabled" in settings.model_fields_set and not settings.statsd_enabled:
        return settings
    host, port = settings.statsd_host, settings.statsd_port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.bind((host, port))
    except OSError as exc:
        log.warning("demo_statsd_unavailable", host=host, port=port, error=str(exc))
        print(
            f"demo: warning: UDP port {host}:{port} is taken ({exc.strerror}); running without "
            "the StatsD listener (set STATS_STATSD_PORT to a free port to see it)",
            flush=True,
        )
        return settings.model_copy(update={"statsd_enabled": False})
    return settings.model_copy(update={"statsd_enabled": True})


class StatsdReporter:
    """The simulator's own numbers as DogStatsD lines, one datagram per round."""

    def __init__(self, settings: Settings) -> None:
        host = settings.statsd_host
        self.host = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104
        self.port = settings.statsd_port
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        self.lines: list[str] = []

    def send(self) -> None:
        if self.lines:
            try:
                self._sock.sendto("\n".join(self.lines).encode(), (self.host, self.port))
            except OSError as exc:  # UDP: a lost report is not worth more than a warning
                log.warning("demo_statsd_send_failed", error=str(exc))
            self.lines.clear()

    def close(self) -> None:
        self._sock.close()


async def run_demo(url: str, control_token: str, settings: Settings) -> None:
    statsd = StatsdReporter(settings) if settings.statsd_enabled else None
    try:
        await _run(url, control_token, settings, statsd)
    finally:
        if statsd is not None:
            statsd.close()


async def _run(
    url: str, control_token: str, settings: Settings, statsd: StatsdReporter | None
) -> None:
    rng = random.Random(42)
    boards = [
        Board(f"esp32-{i + 1:02d}", 20.0 + 1.5 * i, phase=i * 0.9)
        for i in range(settings.demo_devices)
    ]
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        key = await _ingest_key(client, control_token)
        headers = {"X-API-Key": key}
        try:
            run_id = await _post_run(client, headers)
            print(
                f"demo: SIR run {run_id} stored; try\n"
                f"  curl -H 'X-API-Key: <read key>' {url}/v1/runs/{run_id}/summary",
                flush=True,
            )
        except httpx.HTTPError as exc:  # the boards still run
            detail = exc.response.text[:500] if isinstance(exc, httpx.HTTPStatusError) else ""
            log.warning("demo_run_failed", error=str(exc), detail=detail)
            print(f"demo: warning: the SIR run was not stored: {exc} {detail}", flush=True)
        if settings.demo_history_h > 0:
            await _post_history(client, control_token, headers, boards, settings, rng)
        print(
            f"demo: {len(boards)} boards posting every {settings.demo_interval_s:g}s; try\n"
            f"  curl -H 'X-API-Key: <admin key>' {url}/v1/devices",
            flush=True,
        )
        print(
            "demo: note: the stats API (/users/, /devices/, /stats/, /tasks/; "
            "docs/stats-api.md) and InfluxDB-style writes of tenant 'default' accept requests "
            "without an API key while the demo runs; try\n"
            f"  curl -X POST {url}/users/ -H 'Content-Type: application/json' "
            """-d '{"name": "User1", "email": "user1@test.com"}'""",
            flush=True,
        )
        if statsd is not None:
            print(
                f"demo: StatsD on udp://{statsd.host}:{statsd.port}, flushed every "
                f"{settings.statsd_flush_s:g}s (series demo.ingest.*); try\n"
                f"  echo 'my.counter:1|c' | nc -u -w0 {statsd.host} {statsd.port}",
                flush=True,
            )
        while True:
            started = time.monotonic()
            for board in boards:
                sent = time.monotonic()
                outcome = "posts"
                try:
                    await client.post(
                        "/v1/contracts/temperature",
                        json=board.reading(time.time(), rng),
                        headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
                    )
                except httpx.HTTPError as exc:
                    outcome = "errors"
                    log.warning("demo_post_failed", device=board.name, error=str(exc))
                if statsd is not None:
                    took_ms = (time.monotonic() - sent) * 1000
                    statsd.lines.append(f"demo.ingest.latency:{took_ms:.3f}|ms|#app:demo")
                    statsd.lines.append(f"demo.ingest.{outcome}:1|c|#app:demo")
            if statsd is not None:
                statsd.lines.append(f"demo.boards:{len(boards)}|g|#app:demo")
                statsd.send()
            elapsed = time.monotonic() - started
            await asyncio.sleep(max(0.0, settings.demo_interval_s - elapsed))
