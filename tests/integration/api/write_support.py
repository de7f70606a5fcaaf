"""Helpers for the write-side API tests: reading the store back, holding the writer.

A plain module (not a conftest.py): `from conftest import ...` elsewhere must keep
finding tests/conftest.py.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi.testclient import TestClient

from stats_service.archive.base import Archive
from stats_service.services import Services

T0 = "2024-05-01T12:00:00Z"
T0_US = 1_714_564_800_000_000
MINUTE_US = 60_000_000


def stored(services: Services, metric: str | None = None) -> list[tuple[str, str, int, float]]:
    """(metric, device, ts_us, value) of every stored point, in series/time order."""
    sql = (
        "SELECT s.metric, s.device, epoch_us(p.ts), p.value FROM points p "
        "JOIN series s ON s.id = p.series_id"
    )
    params: list[Any] = []
    if metric is not None:
        sql += " WHERE s.metric = ?"
        params.append(metric)
    with services.store.reader() as cur:
        rows = cur.execute(sql + " ORDER BY s.metric, s.device, p.ts", params).fetchall()
    return [(str(m), str(d), int(t), float(v)) for m, d, t, v in rows]


def count(services: Services, table: str) -> int:
    with services.store.reader() as cur:
        row = cur.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


def batch(
    device: str, n: int, metric: str = "temperature", start_us: int = T0_US
) -> dict[str, Any]:
    """A buffered batch of `n` points one second apart (epoch seconds)."""
    return {
        "device": device,
        "points": [
            {"ts": start_us // 1_000_000 + i, "values": {metric: float(i)}} for i in range(n)
        ],
    }


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """An RFC 9457 problem of this status; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"] and body["title"] and body["detail"]
    return body


class BlockingArchive:
    """The real archive, except that `put` waits until released (the writer calls it
    inside a group commit, before the store transaction): holds the writer mid-commit."""

    def __init__(self, inner: Archive) -> None:
        self.inner = inner
        self.entered = threading.Event()
        self.release = threading.Event()

    def put(self, key: str, data: bytes) -> None:
        self.entered.set()
        assert self.release.wait(30), "the test never released the writer"
        self.inner.put(key, data)

    def get(self, key: str) -> bytes:
        return self.inner.get(key)

    def keys(self, prefix: str) -> Iterator[str]:
        return self.inner.keys(prefix)


@contextmanager
def writer_held(services: Services) -> Iterator[BlockingArchive]:
    """While inside, the writer stops in the first group it takes (until the block ends)."""
    writer = services.writer
    real = writer._archive
    assert real is not None, "the raw archive must be enabled"
    blocking = BlockingArchive(real)
    writer._archive = blocking
    try:
        yield blocking
    finally:
        blocking.release.set()
        writer._archive = real


def wait_until(services: Services, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for a writer-queue condition; `Writer.submit` notifies on every enqueue."""
    with services.writer._cond:
        assert services.writer._cond.wait_for(predicate, timeout), "condition not reached"


@dataclass
class Background:
    """Requests sent from other threads, so that the test can act while they wait."""

    client: TestClient
    threads: list[threading.Thread] = field(default_factory=list)
    responses: dict[str, httpx.Response] = field(default_factory=dict)

    def post(self, name: str, url: str, **kwargs: Any) -> None:
        def run() -> None:
            self.responses[name] = self.client.post(url, **kwargs)

        thread = threading.Thread(target=run, name=f"request-{name}")
        thread.start()
        self.threads.append(thread)

    def join(self) -> dict[str, httpx.Response]:
        for thread in self.threads:
            thread.join(30)
            assert not thread.is_alive(), f"{thread.name} is still waiting"
        return self.responses
