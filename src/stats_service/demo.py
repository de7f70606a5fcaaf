"""`stats-service demo`: virtual ESP32 boards and one finished SIR epidemic run.

Everything goes through the real HTTP ingest path with an ingest key created over the
admin API, exactly as a device would send it.
"""

from __future__ import annotations

import asyncio
import math
import random
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
        day = 2 * math.pi * (t % 86400) / 86400
        temp = self.base_temp + 2.5 * math.sin(day + self.phase) + rng.gauss(0, 0.15)
        humidity = 45 - 8 * math.sin(day + self.phase) + rng.gauss(0, 0.8)
        self.battery = max(3.3, self.battery - rng.uniform(0, 0.00005))
        return {
            "device": self.name,
            "tags": {"board": "esp32", "site": "home"},
            "metrics": {
                "temperature": {"value": round(temp, 2), "unit": "°C"},
                "humidity": {"value": round(min(100.0, max(0.0, humidity)), 1), "unit": "%"},
                "battery": {"value": round(self.battery, 3), "unit": "V"},
            },
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


def sir_payload(now: float, run_id: str) -> dict[str, object]:
    """A finished SIR run: one simulated day per minute of wall time, ending now."""
    days = 160
    rows = sir(population=10_000, infected=10, beta=0.3, gamma=0.1, days=days)
    start = now - days * 60
    return {
        "device": "sim-sir",
        "tags": {"run": run_id, "model": "sir"},
        "units": {"susceptible": "people", "infected": "people", "recovered": "people"},
        "points": [
            {
                "ts": round(start + d * 60, 3),
                "values": {
                    "susceptible": round(float(row[0]), 2),
                    "infected": round(float(row[1]), 2),
                    "recovered": round(float(row[2]), 2),
                },
            }
            for d, row in enumerate(rows)
        ],
    }


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


async def run_demo(url: str, control_token: str, settings: Settings) -> None:
    rng = random.Random(42)
    boards = [
        Board(f"esp32-{i + 1:02d}", 20.0 + 1.5 * i, phase=i * 0.9)
        for i in range(settings.demo_devices)
    ]
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        key = await _ingest_key(client, control_token)
        headers = {"X-API-Key": key}
        run_id = f"sir-demo-{uuid.uuid4().hex[:8]}"
        response = await client.post(
            "/v1/ingest?precision=s", json=sir_payload(time.time(), run_id), headers=headers
        )
        print(f"demo: SIR run {run_id} stored ({response.status_code})", flush=True)
        print(
            f"demo: {len(boards)} boards posting every {settings.demo_interval_s:g}s; try\n"
            f"  curl -H 'X-API-Key: <admin key>' {url}/v1/devices",
            flush=True,
        )
        while True:
            started = time.monotonic()
            for board in boards:
                try:
                    await client.post(
                        "/v1/ingest",
                        json=board.reading(time.time(), rng),
                        headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
                    )
                except httpx.HTTPError as exc:
                    log.warning("demo_post_failed", device=board.name, error=str(exc))
            elapsed = time.monotonic() - started
            await asyncio.sleep(max(0.0, settings.demo_interval_s - elapsed))
