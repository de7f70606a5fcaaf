"""The real `stats-service` process on a temporary data dir, and clients that feed it.

`ServerProcess` starts `stats-service serve` (or `demo`) with `--port 0`, waits for the
`server.json` the process writes once it listens and then for `/v1/health`, and can be
stopped with SIGTERM, killed with SIGKILL and started again on the same data dir.
The fixtures in `conftest.py` end every process they started (by PID).
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import duckdb
import httpx
import orjson

ADMIN_KEY = "e2e-admin-key-0123456789abcdef"
ADMIN = {"X-API-Key": ADMIN_KEY}
EXECUTABLE = Path(sys.executable).parent / "stats-service"
START_TIMEOUT_S = 30.0
# uvicorn re-raises a handled SIGTERM once it has shut down gracefully, so a clean stop
# ends with the signal's own status rather than 0
CLEAN_EXITS = (0, -signal.SIGTERM)


def base_env(admin_key: str | None = ADMIN_KEY, **extra: str) -> dict[str, str]:
    """The parent's environment without any STATS_* variable, plus the test's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STATS_")}
    env["STATS_LOG_LEVEL"] = "warning"
    env["COLUMNS"] = "80"  # what rich assumes when stdout is a pipe
    if admin_key is not None:
        env["STATS_ADMIN_KEY"] = admin_key
    env.update(extra)
    return env


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ServerProcess:
    """One `stats-service serve|demo` process at a time on a fixed data dir."""

    def __init__(
        self,
        data_dir: Path,
        *,
        command: str = "serve",
        admin_key: str | None = ADMIN_KEY,
        env: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.command = command
        self.admin_key = admin_key
        self.extra_env = dict(env or {})
        if command == "demo" and "STATS_STATSD_PORT" not in self.extra_env:
            # the demo turns StatsD on at 8125 by default; demos started side by side by
            # the test workers would race for that port
            self.extra_env["STATS_STATSD_PORT"] = str(free_udp_port())
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.token = ""
        self.starts = 0
        self._log_dir = data_dir.parent / f"{data_dir.name}-logs"
        self._log_dir.mkdir(parents=True, exist_ok=True)

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def server_file(self) -> Path:
        return self.data_dir / "server.json"

    @property
    def pid(self) -> int:
        assert self.proc is not None, "the server is not running"
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = START_TIMEOUT_S) -> ServerProcess:
        """Start the process and return once `/v1/health` answers 200."""
        assert not self.running, "already running"
        self.starts += 1
        self.url = ""
        stdout = open(self.stdout_path, "wb")  # noqa: SIM115 - the child owns it
        stderr = open(self.stderr_path, "wb")  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(
                [str(EXECUTABLE), self.command, "--port", "0", "--data-dir", str(self.data_dir)],
                stdout=stdout,
                stderr=stderr,
                stdin=subprocess.DEVNULL,
                env=base_env(self.admin_key, **self.extra_env),
                cwd=self._log_dir,  # no stray .env is read
            )
        finally:
            stdout.close()
            stderr.close()
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"stats-service exited with {self.proc.returncode} during start-up:\n"
                    f"{self.stderr()[-4000:]}"
                )
            info = self._server_info()
            if info is not None and info.get("pid") == self.proc.pid:
                try:
                    response = httpx.get(f"{info['url']}/v1/health", timeout=2)
                except httpx.HTTPError:
                    response = None
                if response is not None and response.status_code == 200:
                    self.url, self.token = info["url"], info["token"]
                    return
            time.sleep(0.05)
        self.kill()
        raise TimeoutError(
            f"stats-service did not answer /v1/health within {timeout}s:\n{self.stderr()[-4000:]}"
        )

    def _server_info(self) -> dict[str, Any] | None:
        try:
            info: dict[str, Any] = json.loads(self.server_file.read_text())
        except (OSError, ValueError):
            return None
        return info

    def terminate(self, timeout: float = 30.0) -> float:
        """SIGTERM; asserts a clean exit within `timeout` and returns the seconds it took."""
        assert self.proc is not None
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"the server did not exit within {timeout}s of SIGTERM") from None
        self.url = ""  # its port may go to another test's server now
        assert code in CLEAN_EXITS, f"exit status {code} after SIGTERM:\n{self.stderr()[-3000:]}"
        return time.monotonic() - started

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, server.json stays behind."""
        self.url = ""  # its port may go to another test's server now
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def restart(self, timeout: float = START_TIMEOUT_S) -> ServerProcess:
        if self.running:
            self.terminate()
        return self.start(timeout)

    def close(self) -> None:
        """Stop gracefully if possible, otherwise kill; never leaves the process behind."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.kill()

    # -- output ------------------------------------------------------------------------

    @property
    def stdout_path(self) -> Path:
        return self._log_dir / f"stdout-{self.starts}.txt"

    @property
    def stderr_path(self) -> Path:
        return self._log_dir / f"stderr-{self.starts}.txt"

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    # -- talking to it -----------------------------------------------------------------

    def client(self, key: str | None = ADMIN_KEY, **kwargs: Any) -> httpx.Client:
        headers = {"X-API-Key": key} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kwargs)

    def metric(self, name: str) -> float:
        """Sum of a Prometheus sample over its labels (0 when absent)."""
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                total += float(line.rsplit(" ", 1)[1])
        return total


# -- helpers ------------------------------------------------------------------------------


def run_cli(
    *args: str, admin_key: str | None = ADMIN_KEY, timeout: float = 60.0, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `stats-service ARGS` to completion (a hang fails the test via the timeout)."""
    return subprocess.run(
        [str(EXECUTABLE), *args],
        capture_output=True,
        text=True,
        env=base_env(admin_key),
        timeout=timeout,
        cwd=cwd or tempfile.gettempdir(),  # no stray .env is read
        stdin=subprocess.DEVNULL,
    )


LOCK_HOLDER = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])
con.execute("SELECT count(*) FROM points").fetchall()
print("held", flush=True)
sys.stdin.read()  # until the test closes our stdin
con.close()
"""


class DatabaseHolder:
    """Another process (not a server: no server.json) holding the database read-write."""

    def __init__(self, data_dir: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", LOCK_HOLDER, str(data_dir / "stats.duckdb")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.strip() == "held", self.proc.stderr.read() if self.proc.stderr else line

    @property
    def pid(self) -> int:
        return self.proc.pid

    def release(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def stored_points(data_dir: Path, device_prefix: str = "") -> list[tuple[str, str, int, float]]:
    """(device, metric, ts in epoch µs, value) of every stored point; the server must be down."""
    con = duckdb.connect(str(data_dir / "stats.duckdb"), read_only=True)
    try:
        rows = con.execute(
            "SELECT s.device, s.metric, epoch_us(p.ts), p.value FROM points p "
            "JOIN series s ON s.id = p.series_id WHERE s.device LIKE ? || '%'",
            [device_prefix],
        ).fetchall()
    finally:
        con.close()
    return [(str(d), str(m), int(t), float(v)) for d, m, t, v in rows]


def execute(data_dir: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    """Run one statement on the data dir's database (read-write); the server must be down."""
    con = duckdb.connect(str(data_dir / "stats.duckdb"))
    try:
        rows: list[tuple[Any, ...]] = con.execute(sql, params or []).fetchall()
    finally:
        con.close()
    return rows


PointKey = tuple[str, str, int]  # device, metric, ts (epoch µs)


class Feeder(threading.Thread):
    """Posts numbered batches of unique points, each with its own Idempotency-Key.

    Every point (device, metric, ts) and value is unique, so a lost or doubled point is
    visible. `acked` maps each point of a 2xx-acknowledged batch to its value. With
    `until_acked` a batch is retried with the SAME key (following `server.url` across
    restarts) until it is acknowledged; without it the feeder gives up on the batch in
    flight when asked to stop.
    """

    def __init__(
        self,
        server: ServerProcess,
        device: str,
        *,
        batch_points: int = 50,
        metrics: int = 5,
        until_acked: bool = True,
        key: str = ADMIN_KEY,
    ) -> None:
        super().__init__(name=f"feeder-{device}", daemon=True)
        self.server = server
        self.device = device
        self.batch_points = batch_points
        self.metrics = metrics
        self.until_acked = until_acked
        self.key = key
        self.base_us = (int(time.time()) - 7200) * 1_000_000
        self.acked: dict[PointKey, float] = {}
        self.acked_batches = 0
        self.replayed = 0
        self.failures = 0
        self.unexpected: list[str] = []
        self._halt = threading.Event()
        self._prefix = uuid.uuid4().hex[:8]

    def batch(self, seq: int) -> tuple[bytes, dict[PointKey, float]]:
        points: dict[PointKey, float] = {}
        rows = []
        for j in range(self.batch_points):
            ts = self.base_us + seq * self.batch_points + j
            metric = f"m{j % self.metrics}"
            value = seq * 1000 + j + 0.5
            points[(self.device, metric, ts)] = value
            rows.append({"ts": ts, "values": {metric: value}})
        return orjson.dumps({"device": self.device, "points": rows}), points

    def stop(self, timeout: float = 60.0) -> None:
        """Finish (with `until_acked`: get acknowledged) the batch in flight, then stop."""
        self._halt.set()
        self.join(timeout)
        assert not self.is_alive(), f"{self.name} did not stop within {timeout}s"

    def run(self) -> None:
        rng = random.Random()
        with httpx.Client(timeout=30) as client:
            seq = 0
            while not self._halt.is_set():
                body, points = self.batch(seq)
                if self._send(client, body, f"{self._prefix}-{seq}", rng):
                    self.acked.update(points)
                    self.acked_batches += 1
                seq += 1

    def _send(self, client: httpx.Client, body: bytes, key: str, rng: random.Random) -> bool:
        headers = {
            "X-API-Key": self.key,
            "Idempotency-Key": key,
            "Content-Type": "application/json",
        }
        while True:
            url = self.server.url
            try:
                if not url:
                    raise httpx.ConnectError("the server is restarting")
                response = client.post(
                    f"{url}/v1/ingest", params={"precision": "us"}, content=body, headers=headers
                )
            except httpx.HTTPError:
                response = None
            if response is not None and response.is_success:
                if response.headers.get("idempotent-replayed") == "true":
                    self.replayed += 1
                return True
            if response is not None and response.status_code not in (429, 503):
                self.unexpected.append(f"{response.status_code} {response.text[:300]}")
                return False
            self.failures += 1
            if self._halt.is_set() and not self.until_acked:
                return False
            time.sleep(rng.uniform(0.01, 0.05))


def assert_exactly_once(
    stored: list[tuple[str, str, int, float]], acked: dict[PointKey, float]
) -> None:
    """Every acknowledged point is stored exactly once with the value that was sent."""
    counts: dict[PointKey, int] = {}
    values: dict[PointKey, float] = {}
    for device, metric, ts, value in stored:
        key = (device, metric, ts)
        counts[key] = counts.get(key, 0) + 1
        values[key] = value
    doubled = {k: n for k, n in counts.items() if n > 1}
    assert not doubled, f"{len(doubled)} points stored more than once, e.g. {next(iter(doubled))}"
    missing = [k for k in acked if k not in counts]
    assert not missing, (
        f"{len(missing)} of {len(acked)} acknowledged points lost, e.g. {missing[0]}"
    )
    wrong = [(k, values[k], v) for k, v in acked.items() if values[k] != v]
    assert not wrong, f"{len(wrong)} points hold another value, e.g. {wrong[0]}"
