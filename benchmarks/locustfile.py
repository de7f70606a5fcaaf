"""Load test of the stats_service API (docs/stats-api.md): devices posting their stats.

    locust -f benchmarks/locustfile.py --headless -u 200 -r 50 -t 60s \
        --host http://127.0.0.1:8000

Each simulated device registers a user and a device once (`POST /users/`,
`POST /devices/`), then posts `{"x": .., "y": .., "z": ..}` to
`POST /devices/{id}/stats/` as fast as the server answers (no think time; set
STATS_LOCUST_WAIT_S for a pause between posts). Every 2xx means the reading is durable.

The key: STATS_API_KEY (an ingest key: `stats-service keys create --role ingest`) is sent
as `X-API-Key`; without it the calls are keyless, which works against
`stats-service demo` or a tenant with `anonymous_write` and `anonymous_read`.

docs/benchmarks.md (section 9) has the numbers and how they were measured.
"""

from __future__ import annotations

import os
import random
import uuid

from locust import FastHttpUser, between, constant, task

KEY = os.environ.get("STATS_API_KEY")
HEADERS = {"Content-Type": "application/json", **({"X-API-Key": KEY} if KEY else {})}
WAIT_S = float(os.environ.get("STATS_LOCUST_WAIT_S", "0"))


class Device(FastHttpUser):  # type: ignore[misc]
    wait_time = between(WAIT_S / 2, WAIT_S * 1.5) if WAIT_S > 0 else constant(0)

    def on_start(self) -> None:
        email = f"load-{uuid.uuid4().hex[:12]}@example.com"
        user = self.client.post(
            "/users/", json={"name": "load", "email": email}, headers=HEADERS, name="/users/"
        )
        user.raise_for_status()
        device = self.client.post(
            "/devices/", json={"user_id": user.json()["id"]}, headers=HEADERS, name="/devices/"
        )
        device.raise_for_status()
        self.device_id = device.json()["id"]
        self.rng = random.Random(self.device_id)

    @task
    def post_stats(self) -> None:
        rng = self.rng
        self.client.post(
            f"/devices/{self.device_id}/stats/",
            json={
                "x": round(rng.gauss(0, 1), 4),
                "y": round(rng.gauss(5, 2), 4),
                "z": round(rng.uniform(-10, 10), 4),
            },
            headers=HEADERS,
            name="/devices/{id}/stats/",
        )
