"""A 5-million-point export streams in bounded memory (RSS sampled while it runs)."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import psutil
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from read_fixtures import S, add_series, us

from conftest import new_key
from stats_service.services import Services

pytestmark = pytest.mark.slow
POINTS_PER_SERIES = 1_000_000
SERIES = 5
RSS_GROWTH_LIMIT = 250 * 2**20  # the exported CSV is ~400 MB; memory must not follow it


class PeakRss:
    """Samples this process' RSS every few milliseconds in a thread."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self.start = self.peak = self._process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def seed(services: Services) -> None:
    tenant = services.store.get_tenant("default")
    assert tenant is not None
    t0 = us("2024-05-01T00:00:00Z")
    ts = pa.array(t0 + np.arange(POINTS_PER_SERIES, dtype=np.int64) * S, pa.timestamp("us"))
    for i in range(SERIES):
        sid = add_series(services.store, tenant.id, "load", {"device": f"node-{i}"})
        table = pa.table(
            {
                "series_id": pa.array(np.full(POINTS_PER_SERIES, sid, dtype=np.int64)),
                "ts": ts,
                "value": pa.array(np.random.default_rng(i).random(POINTS_PER_SERIES)),
            }
        )
        with services.store.transaction() as con:
            con.register("new_points", table)
            con.execute("INSERT INTO points SELECT * FROM new_points")
            con.unregister("new_points")
    with services.store.transaction() as con:
        con.execute("CHECKPOINT")


@pytest.mark.parametrize("fmt", ["csv", "ndjson", "parquet"])
def test_five_million_points_export_in_bounded_memory(
    client: TestClient, services: Services, fmt: str
) -> None:
    seed(services)
    read = new_key(client, "read")
    received = lines = 0
    started = time.perf_counter()
    with (
        PeakRss() as rss,
        client.stream("GET", f"/v1/export?metric=load&format={fmt}", headers=read) as response,
    ):
        assert response.status_code == 200
        tail = b""
        for chunk in response.iter_bytes():
            received += len(chunk)
            if fmt != "parquet":
                lines += chunk.count(b"\n")
                tail = (tail + chunk)[-200:]
    seconds = time.perf_counter() - started
    growth = rss.peak - rss.start
    print(f"{fmt}: {received / 2**20:.0f} MB in {seconds:.1f} s, RSS +{growth / 2**20:.0f} MB")
    assert growth < RSS_GROWTH_LIMIT
    total = SERIES * POINTS_PER_SERIES
    if fmt == "csv":
        assert lines == total + 1
    elif fmt == "ndjson":
        assert lines == total
        last = json.loads(tail.splitlines()[-1])
        assert last["time"] == "2024-05-12T13:46:39.000000Z"
    else:
        assert received > 10 * 2**20
