"""The stats_service seed's curl examples, verbatim, against a real `stats-service demo`
(keyless: the demo allows anonymous calls for tenant `default`) and against
`stats-service serve` (401: anonymous access is off by default)."""

from __future__ import annotations

import json
import re
import subprocess
import time
from typing import Any

import pytest

from .conftest import ServerFactory
from .harness import ADMIN

pytestmark = [pytest.mark.e2e]

# Copied from the seed document (and docs/stats-api.md) as written; only the host and
# the elided device id (`8cb7...`) are replaced before running.
SEED_EXAMPLES = """\
# Создание пользователя
curl -X POST "http://localhost:8000/users/" \\
     -H "Content-Type: application/json" \\
     -d '{"name": "User1", "email": "user1@test.com"}'

# Создание устройства
curl -X POST "http://localhost:8000/devices/" \\
     -H "Content-Type: application/json" \\
     -d '{"user_id": 1}'

# Отправка метрик
curl -X POST "http://localhost:8000/devices/8cb7.../stats/" \\
     -H "Content-Type: application/json" \\
     -d '{"x": 1.5, "y": 2.3, "z": 3.8}'

# Получение аналитики
curl "http://localhost:8000/devices/8cb7.../analytics/?start=2025-01-01T00:00:00&end=2025-12-31T23:59:59"
"""


def seed_commands() -> list[str]:
    return [
        block.split("\n", 1)[1].strip()
        for block in SEED_EXAMPLES.strip().split("\n\n")
        if block.startswith("#")
    ]


def run(command: str, url: str, device: str = "") -> tuple[int, Any]:
    """Run one example with bash and curl; (HTTP status, JSON body)."""
    command = command.replace("http://localhost:8000", url).replace("8cb7...", device)
    command += " -s -w '\\n%{http_code}'"
    done = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, timeout=30, check=True
    )
    body, _, status = done.stdout.rpartition("\n")
    return int(status), json.loads(body)


def poll(url: str, task_id: str) -> dict[str, Any]:
    started = time.monotonic()
    while True:
        status, task = run(f'curl "{url}/tasks/{task_id}"', url)
        assert status == 200, task
        if task["state"] in ("SUCCESS", "FAILURE"):
            result: dict[str, Any] = task
            return result
        assert time.monotonic() - started < 30, f"task still {task['state']}"
        time.sleep(0.1)


def test_the_seed_examples_work_verbatim_against_the_demo(server_factory: ServerFactory) -> None:
    demo = server_factory(command="demo").start()
    started = time.monotonic()
    while "without an API key" not in demo.stdout():  # the demo's note on keyless calls
        assert time.monotonic() - started < 10, demo.stdout()
        time.sleep(0.05)
    create_user, create_device, post_stats, analytics = seed_commands()

    status, user = run(create_user, demo.url)
    assert status == 200 and user["id"] == 1 and user["email"] == "user1@test.com", user
    status, device = run(create_device, demo.url)
    assert status == 200 and device["user_id"] == 1, device
    device_id = device["id"]
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}", device_id)
    status, ok = run(post_stats, demo.url, device_id)
    assert (status, ok) == (200, {"status": "ok"})
    status, task = run(analytics, demo.url, device_id)
    # the task's state when answered: PENDING, unless a free worker already took it
    assert status == 202 and task["state"] in {"PENDING", "STARTED", "SUCCESS"}, task

    done = poll(demo.url, task["task_id"])
    assert done["state"] == "SUCCESS" and done["progress"] == 1
    # the seed asks about 2025; the reading was sent now, without a timestamp
    now_year = time.gmtime().tm_year
    expected_count = 1 if now_year == 2025 else 0
    assert {f: s["count"] for f, s in done["result"]["fields"].items()} == dict.fromkeys(
        ("x", "y", "z"), expected_count
    )
    this_year = analytics.replace("2025-", f"{now_year}-")
    status, task = run(this_year, demo.url, device_id)
    fields = poll(demo.url, task["task_id"])["result"]["fields"]
    assert fields["x"] == {
        "min": 1.5, "max": 1.5, "sum": 1.5, "median": 1.5, "count": 1, "mean": 1.5,
        "stddev": None,
    }  # fmt: skip
    assert fields["z"]["sum"] == 3.8

    status, readings = run(f'curl "{demo.url}/stats/{device_id}/"', demo.url)
    assert status == 200
    assert [(r["x"], r["y"], r["z"]) for r in readings] == [(1.5, 2.3, 3.8)]
    status, again = run(create_user, demo.url)
    assert status == 400 and "already exists" in again["detail"]
    with demo.client() as client:  # the reading is an ordinary series of the tenant
        series = client.get("/v1/series", params={"device": device_id}, headers=ADMIN).json()
        assert sorted(s["metric"] for s in series["items"]) == ["x", "y", "z"]
    demo.terminate()


def test_the_seed_examples_need_a_key_against_serve(server_factory: ServerFactory) -> None:
    server = server_factory().start()
    for command in seed_commands():
        status, body = run(command, server.url, "8cb7a9d2-0000-4000-8000-000000000000")
        assert status == 401, body
        assert "API key is required" in body["detail"]
    with server.client() as client:  # with a key, the same calls work
        made = client.post(
            "/users/", json={"name": "User1", "email": "user1@test.com"}, headers=ADMIN
        )
        assert made.status_code == 200 and made.json()["id"] == 1
