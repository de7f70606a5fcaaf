"""The `stats-service` admin commands against a running server and against the bare file."""

from __future__ import annotations

import csv
import json
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from .conftest import ServerFactory
from .harness import (
    DatabaseHolder,
    ServerProcess,
    execute,
    run_cli,
    stored_points,
)

pytestmark = [pytest.mark.e2e]


def create_key(data_dir: Path, *args: str) -> str:
    result = run_cli("keys", "create", *args, "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1, f"stdout must hold only the key: {result.stdout!r}"
    assert lines[0].startswith("ss_") and lines[0] == lines[0].strip()
    return lines[0]


def key_id(server: ServerProcess, key: str) -> str:
    with server.client() as client:
        listed = client.get("/v1/admin/keys").json()
    (found,) = [k for k in listed if key.startswith(k["prefix"])]
    return str(found["id"])


def status_with(server: ServerProcess, key: str) -> int:
    """401 for an unknown or revoked key; 403 for a valid read key (admin route)."""
    return httpx.get(
        f"{server.url}/v1/admin/keys", headers={"X-API-Key": key}, timeout=10
    ).status_code


def test_keys_through_the_running_server(server: ServerProcess) -> None:
    data_dir = server.data_dir
    key = create_key(data_dir, "--tenant", "default", "--role", "read")
    assert status_with(server, key) == 403  # known, and only a reader
    kid = key_id(server, key)

    listed = run_cli("keys", "list", "--data-dir", str(data_dir))
    assert listed.returncode == 0, listed.stderr
    assert kid in listed.stdout  # whole, even 80 columns wide: `keys revoke` needs it
    assert key[:10] in listed.stdout
    assert key not in listed.stdout + listed.stderr

    revoked = run_cli("keys", "revoke", kid, "--data-dir", str(data_dir))
    assert revoked.returncode == 0, revoked.stderr
    assert status_with(server, key) == 401  # at once, on the running server

    unknown = run_cli("keys", "create", "--tenant", "nope", "--data-dir", str(data_dir))
    assert unknown.returncode != 0
    assert "tenant 'nope' does not exist" in unknown.stderr
    assert unknown.stdout == ""
    missing = run_cli("keys", "revoke", "key_0000000000000000", "--data-dir", str(data_dir))
    assert missing.returncode != 0
    assert "does not exist" in missing.stderr


def test_keys_on_the_file_when_no_server_runs(server_factory: ServerFactory) -> None:
    server = server_factory().start()
    server.kill()  # a crashed server leaves a stale server.json: it must be ignored
    assert server.server_file.exists()
    data_dir = server.data_dir

    kept = create_key(data_dir, "--tenant", "default", "--role", "read")
    dropped = create_key(data_dir, "--role", "ingest")
    listed = run_cli("keys", "list", "--data-dir", str(data_dir))
    assert listed.returncode == 0, listed.stderr
    assert kept[:10] in listed.stdout and dropped[:10] in listed.stdout
    assert kept not in listed.stdout and dropped not in listed.stdout

    unknown = run_cli("keys", "create", "--tenant", "nope", "--data-dir", str(data_dir))
    assert unknown.returncode != 0
    assert "tenant 'nope' does not exist" in unknown.stderr
    assert unknown.stdout == ""

    server.start()
    dropped_id = key_id(server, dropped)
    server.terminate()
    revoked = run_cli("keys", "revoke", dropped_id, "--data-dir", str(data_dir))
    assert revoked.returncode == 0, revoked.stderr

    server.start()
    assert status_with(server, kept) == 403
    assert status_with(server, dropped) == 401


def test_a_locked_database_fails_fast_with_advice(
    server_factory: ServerFactory, hold_database: Callable[[Path], DatabaseHolder]
) -> None:
    server = server_factory().start()
    key = create_key(server.data_dir)
    server.terminate()
    data_dir = str(server.data_dir)
    holder = hold_database(server.data_dir)

    today = datetime.now(UTC).date().isoformat()
    commands = [
        ("keys", "create", "--data-dir", data_dir),
        ("keys", "list", "--data-dir", data_dir),
        ("keys", "revoke", "key_0000000000000000", "--data-dir", data_dir),
        ("replay", "--from", today, "--to", today, "--data-dir", data_dir),
    ]
    for command in commands:
        started = time.monotonic()
        result = run_cli(*command, timeout=30)
        assert time.monotonic() - started < 15, command
        assert result.returncode != 0, command
        assert "in use by another process" in result.stderr, result.stderr
        assert "stop that process" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
        assert result.stdout == ""

    # a server.json naming a live process that does not answer: a clear message, no hang
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead_port = sock.getsockname()[1]
    server.server_file.write_text(
        json.dumps({"url": f"http://127.0.0.1:{dead_port}", "pid": holder.pid, "token": "x"})
    )
    started = time.monotonic()
    result = run_cli("keys", "list", "--data-dir", data_dir, timeout=30)
    assert time.monotonic() - started < 15
    assert result.returncode != 0
    assert "does not answer" in result.stderr and "retry" in result.stderr, result.stderr
    server.server_file.unlink()

    holder.release()  # nothing was harmed
    server.start()
    assert status_with(server, key) == 403


def ingest_batches(server: ServerProcess, device: str, batches: int, points: int) -> None:
    base = (int(time.time()) - 3600) * 1_000_000
    with server.client() as client:
        for b in range(batches):
            rows = [
                {"ts": base + b * points + j, "values": {f"m{j % 3}": b * 100 + j + 0.5}}
                for j in range(points)
            ]
            response = client.post(
                "/v1/ingest",
                params={"precision": "us"},
                json={"device": device, "points": rows},
                headers={"Idempotency-Key": f"replay-{b}"} if b % 2 else None,
            )
            assert response.status_code == 202, response.text


def test_replay_through_the_server_restores_deleted_points(server: ServerProcess) -> None:
    data_dir = server.data_dir
    ingest_batches(server, "replay-dev", batches=3, points=10)
    server.terminate()
    original = sorted(stored_points(data_dir, "replay-dev"))
    assert len(original) == 30

    device_series = "SELECT id FROM series WHERE device = 'replay-dev'"
    (deleted,) = execute(
        data_dir,
        f"DELETE FROM points WHERE series_id IN ({device_series}) AND epoch_us(ts) % 3 = 0",
    )[0]
    assert deleted > 0
    changed_ts = next(ts for _, _, ts, _ in original if ts % 3 == 1)
    execute(
        data_dir,
        f"UPDATE points SET value = -1 WHERE series_id IN ({device_series}) AND epoch_us(ts) = ?",
        [changed_ts],
    )

    server.start()
    today = datetime.now(UTC).date()
    days = ["--from", str(today - timedelta(days=1)), "--to", str(today)]
    result = run_cli("replay", *days, "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"replayed 3 batches, restored {deleted} points"
    server.terminate()

    again = run_cli("replay", *days, "--data-dir", str(data_dir))  # on the file: a no-op
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "replayed 3 batches, restored 0 points"

    expected = [(d, m, ts, -1.0 if ts == changed_ts else v) for d, m, ts, v in original]
    assert sorted(stored_points(data_dir, "replay-dev")) == expected  # replay never overwrites


def test_export_through_the_server_writes_csv(server: ServerProcess, tmp_path: Path) -> None:
    ingest_batches(server, "export-dev", batches=2, points=12)
    ingest_batches(server, "other-dev", batches=1, points=5)
    out = tmp_path / "export.csv"
    args = ("--device", "export-dev", "--format", "csv", "--data-dir", str(server.data_dir))
    result = run_cli("export", *args, "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""

    with out.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows, out.read_text()
    assert {"time", "device", "metric", "value"} <= set(rows[0])
    assert len(rows) == 24
    assert {r["device"] for r in rows} == {"export-dev"}
    sent = {(f"m{j % 3}", b * 100 + j + 0.5) for b in range(2) for j in range(12)}
    assert {(r["metric"], float(r["value"])) for r in rows} == sent

    missing = tmp_path / "missing.csv"
    failed = run_cli(
        "export",
        "--device",
        "no-such-device",
        "--data-dir",
        str(server.data_dir),
        "-o",
        str(missing),
    )
    assert failed.returncode != 0
    assert "no-such-device" in failed.stderr
    assert not missing.exists(), "a failed export must not leave a file behind"


def test_export_on_the_file_when_no_server_runs(server: ServerProcess, tmp_path: Path) -> None:
    ingest_batches(server, "offline-dev", batches=1, points=6)
    server.terminate()
    through_server = tmp_path / "offline.ndjson"
    args = ("--device", "offline-dev", "--format", "ndjson", "--data-dir", str(server.data_dir))
    result = run_cli("export", *args, "-o", str(through_server))
    assert result.returncode == 0, result.stderr
    lines = through_server.read_text().splitlines()
    assert len(lines) == 6
    assert all('"offline-dev"' in line for line in lines)
