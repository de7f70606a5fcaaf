"""A real Prometheus (Debian's `prometheus`) scrapes our /metrics and remote-writes to us.

The loop closes on itself: Prometheus scrapes the server's own counters every second and
sends them back through POST /api/v1/write with an ingest key (`authorization:
credentials:`), where they become series readable through the API. A second target, a
tiny exporter in this test, serves a series with a `device` label and one series only on
its first scrape, so that Prometheus writes a real stale marker for it: counted, not
stored, and nothing may be refused on the way.

Prometheus applies discovered targets every 5 s (not configurable in 2.42), so the first
samples arrive about 7 s after it starts. In CI (CI=true) a missing prometheus binary
fails the test; elsewhere it is skipped.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from .harness import ADMIN, ServerProcess

pytestmark = [pytest.mark.e2e]
DEADLINE_S = 30.0
EXPORTER_DEVICE = "esp32-lab"


def prometheus_binary() -> str:
    found = shutil.which("prometheus") or (
        "/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None
    )
    if found is None:
        message = "the Debian package `prometheus` is not installed (apt-get install prometheus)"
        if os.environ.get("CI") == "true":
            pytest.fail(message + "; scripts/services.sh installs it in CI")
        pytest.skip(message)
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def config(ours: str, exporter: str, write_url: str, key: str) -> str:
    return f"""
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: stats
    static_configs:
      - targets: ["{ours}"]
  - job_name: lab
    static_configs:
      - targets: ["{exporter}"]
remote_write:
  - url: "{write_url}"
    authorization:
      credentials: "{key}"
    queue_config:
      batch_send_deadline: 1s
      max_samples_per_send: 500
      min_backoff: 100ms
      max_backoff: 1s
"""


class Exporter:
    """A /metrics target on 127.0.0.1 whose `vanishing` series is there once only."""

    def __init__(self) -> None:
        self.scrapes = 0
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                exporter.scrapes += 1
                text = f'lab_temperature_celsius{{device="{EXPORTER_DEVICE}"}} 21.5\n'
                if exporter.scrapes == 1:
                    text += "lab_vanishing 1\n"
                data = text.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


class Prometheus:
    """One prometheus process on a temp dir, ended by PID."""

    def __init__(self, workdir: Path, config_text: str) -> None:
        self.workdir = workdir
        self.config_file = workdir / "prometheus.yml"
        self.config_file.write_text(config_text)
        self.log_path = workdir / "prometheus.log"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, binary: str) -> None:
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={self.config_file}",
                    f"--storage.tsdb.path={self.workdir / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def exporter() -> Iterator[Exporter]:
    target = Exporter()
    yield target
    target.close()


@pytest.fixture
def prometheus_factory(tmp_path: Path) -> Iterator[Callable[[str], Prometheus]]:
    binary = prometheus_binary()
    made: list[Prometheus] = []

    def make(config_text: str) -> Prometheus:
        workdir = tmp_path / f"prometheus{len(made)}"
        workdir.mkdir()
        prometheus = Prometheus(workdir, config_text)
        made.append(prometheus)
        prometheus.start(binary)
        return prometheus

    yield make
    for prometheus in made:
        prometheus.stop()


def poll(what: str, probe: Callable[[], Any], prometheus: Prometheus) -> Any:
    """probe() until it returns something truthy, within DEADLINE_S."""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        assert prometheus.proc is not None
        if prometheus.proc.poll() is not None:
            pytest.fail(f"prometheus exited with {prometheus.proc.returncode}:\n{prometheus.log()}")
        found = probe()
        if found:
            return found
        time.sleep(0.2)
    pytest.fail(f"{what} within {DEADLINE_S}s; prometheus log:\n{prometheus.log()[-4000:]}")


def test_prometheus_remote_writes_what_it_scraped(
    server: ServerProcess,
    exporter: Exporter,
    prometheus_factory: Callable[[str], Prometheus],
) -> None:
    with server.client() as admin:
        made = admin.post("/v1/admin/keys", json={"role": "ingest"})
        assert made.status_code == 201, made.text
        key = made.json()["key"]
    ours = urllib.parse.urlsplit(server.url).netloc
    prometheus = prometheus_factory(
        config(ours, exporter.address, f"{server.url}/api/v1/write", key)
    )

    def series(metric: str) -> list[dict[str, Any]]:
        answer = httpx.get(
            f"{server.url}/v1/series", params={"metric": metric}, headers=ADMIN, timeout=10
        )
        assert answer.status_code == 200, answer.text
        items: list[dict[str, Any]] = answer.json()["items"]
        return items

    def points(sid: str) -> list[float]:
        answer = httpx.get(
            f"{server.url}/v1/series/{sid}/points",
            params={"from": "now-5m", "to": "now+1m"},
            headers=ADMIN,
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        values: list[float] = answer.json()["value"]
        return values

    # our own counter, as Prometheus scraped it from us and sent it back
    def points_counter() -> list[dict[str, Any]]:
        found = series("stats_ingest_points_total")
        return [s for s in found if s["tags"].get("protocol") == "prometheus"]

    [counter] = poll("our own points counter did not come back", points_counter, prometheus)
    assert counter["tags"] == {
        "instance": ours,
        "job": "stats",
        "protocol": "prometheus",
        "tenant": "default",
    }
    assert counter["device"] is None  # no `device` label: no device is made up
    assert counter["last_value"] > 0

    # the scrape's synthetic `up`, one series per target
    ups = poll("`up` of both targets", lambda: len(series("up")) == 2 and series("up"), prometheus)
    assert {u["tags"]["job"] for u in ups} == {"stats", "lab"}
    assert all(set(points(u["id"])) == {1.0} for u in ups)

    # the exporter's `device` label is the device
    [lab] = poll("the exporter's series", lambda: series("lab_temperature_celsius"), prometheus)
    assert lab["device"] == EXPORTER_DEVICE
    assert lab["tags"] == {"device": EXPORTER_DEVICE, "instance": exporter.address, "job": "lab"}
    assert set(points(lab["id"])) == {21.5}

    # `lab_vanishing` was there for one scrape: one point, then a stale marker, not stored
    poll(
        "no stale marker was counted",
        lambda: server.metric("stats_prometheus_stale_markers_total") >= 1,
        prometheus,
    )
    [vanishing] = series("lab_vanishing")
    assert points(vanishing["id"]) == [1.0]
    assert server.metric("stats_ingest_rejected_total") == 0, prometheus.log()[-4000:]
    assert "non-recoverable error" not in prometheus.log()
