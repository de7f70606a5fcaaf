"""The cold tier's S3-compatible bucket against a real S3 server on 127.0.0.1 (moto's
server mode, started here as a subprocess and ended by its PID): days move to objects
keyed per tenant and day, reads through the HTTP API answer the same from the local
cache, the cache stays within its bound and fetches again what it evicted, an upload to
a stopped server leaves the rows hot until a later run succeeds, retention deletes and
trims objects, and start-up reconciliation deletes objects the catalog does not know."""

from __future__ import annotations

import io
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from itertools import count
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import httpx
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from test_cold import DAYS, NOW, SPAN, fill, post, reads, series_ids, stamp

from conftest import ADMIN_KEY, make_settings, new_key, new_tenant
from stats_service.app import create_app
from stats_service.jobs.compaction import CompactionMetrics, Compactor
from stats_service.jobs.retention import apply_retention
from stats_service.services import Services
from stats_service.storage import cold
from stats_service.storage.cold_objects import ColdObjects, parse_url

PREFIX = "archive/stats"
BUCKETS = count()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class S3Server:
    """One moto_server process; `stop` and `start` again on the same port simulate an
    outage (moto keeps its buckets in memory: they are gone after a restart)."""

    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        program = Path(sys.executable).parent / "moto_server"
        assert program.is_file(), (
            f"{program} is missing: install the dev extras (scripts/bootstrap.sh --dev)"
        )
        self.proc = subprocess.Popen(
            [str(program), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(self.url + "/", timeout=1)
                return
            except httpx.HTTPError:
                assert self.proc.poll() is None, "moto_server exited at start"
                assert time.monotonic() < deadline, "moto_server did not answer within 20 s"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    server = S3Server(free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def bucket(s3: S3Server) -> str:
    name = f"cold-{next(BUCKETS)}"
    s3.client().create_bucket(Bucket=name)
    return name


def objects_for(s3: S3Server, bucket: str, cache: Path, cache_bytes: int = 1 << 30) -> ColdObjects:
    return ColdObjects(
        endpoint_url=s3.url,
        bucket=bucket,
        prefix=PREFIX,
        region="us-east-1",
        access_key_id="testing",
        secret_access_key="testing",
        cache_dir=cache,
        cache_bytes=cache_bytes,
        timeout_s=2.0,
        evict_grace_s=0.0,  # evict at once: the tests read one request at a time
    )


def compactor(
    services: Services, objects: ColdObjects, registry: CollectorRegistry | None = None
) -> Compactor:
    return Compactor(
        services.store,
        CompactionMetrics(registry or CollectorRegistry()),
        timedelta(hours=1),
        services.settings.cold_path,
        cold_after_days=7,
        objects=objects,
    )


def keys(s3: S3Server, bucket: str) -> list[str]:
    listed = s3.client().list_objects_v2(Bucket=bucket).get("Contents", [])
    return sorted(str(item["Key"]) for item in listed)


def object_rows(s3: S3Server, bucket: str, key: str) -> int:
    body = s3.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    return int(pq.read_table(io.BytesIO(body)).num_rows)


def hot_rows(services: Services) -> int:
    with services.store.reader() as cur:
        return int(cur.execute("SELECT count(*) FROM points").fetchall()[0][0])


def catalog(services: Services) -> list[tuple[str, int]]:
    with services.store.reader() as cur:
        rows = cur.execute("SELECT path, rows FROM cold_files ORDER BY tenant_id, day").fetchall()
    return [(str(r[0]), int(r[1])) for r in rows]


def parquet_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.parquet"))


def test_days_move_to_the_bucket_and_reads_do_not_change(
    s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    """The whole wiring as configured: settings -> the app's fetcher -> HTTP reads."""
    settings = make_settings(
        tmp_path,
        compaction_enabled=False,
        cold_s3_bucket=bucket,
        cold_s3_endpoint_url=s3.url,
        cold_s3_prefix=PREFIX,
        cold_s3_access_key_id="testing",
        cold_s3_secret_access_key="testing",
    )
    with TestClient(create_app(settings)) as client:
        services: Services = client.app.state.services  # type: ignore[attr-defined]
        admin = {"X-API-Key": ADMIN_KEY}
        fill(client, admin)
        before = reads(client, admin)
        objects = ColdObjects.from_settings(settings)
        assert objects is not None
        registry = CollectorRegistry()
        report = compactor(services, objects, registry).run(NOW)
        assert report.moved == 2 and report.compacted == 1
        assert keys(s3, bucket) == [
            f"{PREFIX}/tenant=1/day=2024-05-01.parquet",
            f"{PREFIX}/tenant=1/day=2024-05-02.parquet",
        ]
        assert object_rows(s3, bucket, f"{PREFIX}/tenant=1/day=2024-05-01.parquet") == 2 * 96
        listed = catalog(services)
        assert [parse_url(p).key for p, _ in listed] == keys(s3, bucket)
        assert [rows for _, rows in listed] == [2 * 96, 2 * 96]
        assert parquet_files(settings.cold_path) == []  # local copies went to the cache
        cache = settings.cold_s3_cache_path
        assert len(parquet_files(cache)) == 2
        assert hot_rows(services) == 2 * 96
        assert registry.get_sample_value("stats_cold_files_total") == 2
        for cached in cache.rglob("*.parquet"):
            cached.unlink()  # reads must fetch from the bucket
        assert reads(client, admin) == before
        assert len(parquet_files(cache)) == 2
        unbounded = client.get(
            "/v1/export", params={"metric": "temp", "format": "csv"}, headers=admin
        )
        assert len(unbounded.text.splitlines()) == 1 + 2 * 3 * 96


def test_the_cache_stays_bounded_and_fetches_evicted_files_again(
    client: TestClient, services: Services, admin: dict[str, str], s3: S3Server, bucket: str
) -> None:
    fill(client, admin)
    before = reads(client, admin)
    cache = services.settings.data_dir / "cache"
    compactor(services, objects_for(s3, bucket, cache)).run(NOW)
    largest = max(p.stat().st_size for p in cache.rglob("*.parquet"))
    objects = objects_for(s3, bucket, cache, cache_bytes=largest)  # room for one file
    objects.attach(services.store)
    for cached in cache.rglob("*.parquet"):
        cached.unlink()
    sid = series_ids(client, admin)[0]

    def day_points(day: int) -> list[float]:
        span = {"from": f"2024-05-0{day}T00:00:00Z", "to": f"2024-05-0{day}T23:59:59Z"}
        got = client.get(f"/v1/series/{sid}/points", params=span, headers=admin)
        assert got.status_code == 200, got.text
        return list(got.json()["value"])

    first = day_points(1)
    assert parquet_files(cache) == [f"tenant=1/{p}" for p in _names(cache, "2024-05-01")]
    second = day_points(2)
    assert [p.split("/")[1][:14] for p in parquet_files(cache)] == ["day=2024-05-02"]
    assert day_points(1) == first and len(first) == 96  # evicted, fetched again
    assert [p.split("/")[1][:14] for p in parquet_files(cache)] == ["day=2024-05-01"]
    # A damaged cached copy (wrong size) is not trusted: fetched again.
    (damaged,) = list(cache.rglob("*.parquet"))
    damaged.write_bytes(damaged.read_bytes()[:100])
    assert day_points(1) == first and day_points(2) == second
    # A query needing more than the bound keeps what it needs, answers, then shrinks.
    assert reads(client, admin) == before
    assert sum(p.stat().st_size for p in cache.rglob("*.parquet")) <= 2 * largest


def _names(cache: Path, day: str) -> list[str]:
    return sorted(p.name for p in (cache / "tenant=1").glob(f"day={day}.*.parquet"))


def test_a_failed_upload_leaves_the_rows_hot_and_a_later_run_moves_them(
    client: TestClient, services: Services, admin: dict[str, str], tmp_path: Path
) -> None:
    down = S3Server(free_port())
    down.start()
    down.client().create_bucket(Bucket="outage")
    down.stop()  # the server is gone when the move runs
    fill(client, admin)
    before = reads(client, admin)
    registry = CollectorRegistry()
    objects = objects_for(down, "outage", tmp_path / "cache")
    mover = compactor(services, objects, registry)
    report = mover.run(NOW)
    assert report.moved == 0 and report.compacted == 1
    assert registry.get_sample_value("stats_cold_upload_failures_total") == 2
    assert hot_rows(services) == 3 * 2 * 96 and catalog(services) == []
    with services.store.reader() as cur:
        tiers = cur.execute("SELECT DISTINCT tier FROM partitions").fetchall()
    assert tiers == [("hot",)]
    assert reads(client, admin) == before
    # Start-up reconciliation removes the local files the failed moves left.
    assert cold.reconcile(services.store, services.settings.cold_path)["removed"] == 2
    down.start()  # back, with an empty memory: the bucket is created again
    try:
        down.client().create_bucket(Bucket="outage")
        report = mover.run(NOW)
        assert report.moved == 2
        assert keys(down, "outage") == [
            f"{PREFIX}/tenant=1/day=2024-05-01.parquet",
            f"{PREFIX}/tenant=1/day=2024-05-02.parquet",
        ]
        assert hot_rows(services) == 2 * 96
        objects.attach(services.store)
        assert reads(client, admin) == before
    finally:
        down.stop()
    # The bucket unreachable: a read needing an object not cached is a clear 503,
    # start-up reconciliation logs and goes on; recent (hot) data stays readable.
    for cached in objects.cache_dir.rglob("*.parquet"):
        cached.unlink()
    sid = series_ids(client, admin)[0]
    cold_read = client.get(f"/v1/series/{sid}/points", params=SPAN, headers=admin)
    assert cold_read.status_code == 503, cold_read.text
    assert "cold tier objects not readable" in cold_read.text
    recent = {"from": "2024-05-18T00:00:00Z", "to": "2024-05-19T00:00:00Z"}
    hot_read = client.get(f"/v1/series/{sid}/points", params=recent, headers=admin)
    assert hot_read.status_code == 200 and len(hot_read.json()["t"]) == 96
    assert cold.reconcile(services.store, services.settings.cold_path, objects) == {
        "removed": 0,
        "missing": 0,
    }


def test_a_late_write_into_a_cold_day_is_re_exported_to_the_bucket(
    client: TestClient, services: Services, admin: dict[str, str], s3: S3Server, bucket: str
) -> None:
    fill(client, admin)
    objects = objects_for(s3, bucket, services.settings.data_dir / "cache")
    objects.attach(services.store)
    compactor(services, objects).run(NOW)
    key = f"{PREFIX}/tenant=1/day=2024-05-01.parquet"
    first = s3.client().head_object(Bucket=bucket, Key=key)["ETag"]
    for cached in objects.cache_dir.rglob("*.parquet"):
        cached.unlink()  # the re-export must fetch the old object to merge over it
    post(client, admin, "a", [(stamp(DAYS[0], 0), -5.0), (stamp(DAYS[0], 30), -6.0)])
    before = reads(client, admin)
    assert compactor(services, objects).run(NOW).moved == 1
    assert object_rows(s3, bucket, key) == 2 * 96 + 1
    head = s3.client().head_object(Bucket=bucket, Key=key)["ETag"]
    assert head != first
    path = next(p for p, _ in catalog(services) if parse_url(p).key == key)
    assert parse_url(path).etag == head.strip('"')
    assert _names(objects.cache_dir, "2024-05-01") == [
        f"day=2024-05-01.{head.strip(chr(34))}.parquet"
    ]
    assert hot_rows(services) == 2 * 96
    assert reads(client, admin) == before


def test_retention_deletes_and_trims_objects(
    client: TestClient, services: Services, admin: dict[str, str], s3: S3Server, bucket: str
) -> None:
    fill(client, admin)
    objects = objects_for(s3, bucket, services.settings.data_dir / "cache")
    objects.attach(services.store)
    compactor(services, objects).run(NOW)
    services.store.update_tenant("default", retention_days=18)
    later = NOW + timedelta(hours=12)  # cutoff 2024-05-02 12:00
    deleted = apply_retention(services.store, services.metrics, later, 24.0, objects)
    assert deleted["default"] == 2 * 96 + 2 * 48
    key = f"{PREFIX}/tenant=1/day=2024-05-02.parquet"
    assert keys(s3, bucket) == [key]
    assert object_rows(s3, bucket, key) == 2 * 48
    ((path, rows),) = catalog(services)
    etag = s3.client().head_object(Bucket=bucket, Key=key)["ETag"].strip('"')
    assert parse_url(path).etag == etag and rows == 2 * 48
    assert _names(objects.cache_dir, "2024-05-01") == []  # cached copy of the dropped day
    stats = client.get("/v1/stats", params={**SPAN, "metric": "temp"}, headers=admin).json()
    assert [s["count"] for s in stats["series"]] == [48 + 96, 48 + 96]
    assert apply_retention(services.store, services.metrics, later, 24.0, objects)["default"] == 0
    services.store.update_tenant("default", retention_days=1)
    apply_retention(services.store, services.metrics, later, 24.0, objects)
    assert keys(s3, bucket) == [] and catalog(services) == []


def test_object_keys_and_reads_are_per_tenant(
    client: TestClient, services: Services, admin: dict[str, str], s3: S3Server, bucket: str
) -> None:
    new_tenant(client, "acme")
    acme = new_key(client, "admin", "acme")
    fill(client, admin)
    post(client, acme, "x", [(stamp(DAYS[0], 60), 1.5)])
    objects = objects_for(s3, bucket, services.settings.data_dir / "cache")
    objects.attach(services.store)
    compactor(services, objects).run(NOW)
    assert keys(s3, bucket) == [
        f"{PREFIX}/tenant=1/day=2024-05-01.parquet",
        f"{PREFIX}/tenant=1/day=2024-05-02.parquet",
        f"{PREFIX}/tenant=2/day=2024-05-01.parquet",
    ]
    assert object_rows(s3, bucket, f"{PREFIX}/tenant=2/day=2024-05-01.parquet") == 1
    for cached in objects.cache_dir.rglob("*.parquet"):
        cached.unlink()
    mine = reads(client, acme)
    assert mine["stats"]["series"][0]["count"] == 1
    assert [p.split("/")[0] for p in parquet_files(objects.cache_dir)] == ["tenant=2"]
    assert all(
        client.get(f"/v1/series/{s}/points", headers=acme).status_code == 404
        for s in series_ids(client, admin)
    )


def test_reconcile_deletes_unknown_objects_and_adopts_a_newer_upload(
    client: TestClient, services: Services, admin: dict[str, str], s3: S3Server, bucket: str
) -> None:
    fill(client, admin)
    objects = objects_for(s3, bucket, services.settings.data_dir / "cache")
    objects.attach(services.store)
    compactor(services, objects).run(NOW)
    before = reads(client, admin)
    api = s3.client()
    key = f"{PREFIX}/tenant=1/day=2024-05-01.parquet"
    body = api.get_object(Bucket=bucket, Key=key)["Body"].read()
    # A move whose upload finished but whose commit did not: no catalog row.
    api.put_object(Bucket=bucket, Key=f"{PREFIX}/tenant=1/day=2024-04-01.parquet", Body=body)
    # A re-export that uploaded but did not commit: same rows, another ETag.
    again = io.BytesIO()
    pq.write_table(pq.read_table(io.BytesIO(body)), again, compression="snappy")
    api.put_object(Bucket=bucket, Key=key, Body=again.getvalue())
    result = cold.reconcile(services.store, services.settings.cold_path, objects)
    assert result == {"removed": 1, "missing": 0}
    assert keys(s3, bucket) == [key, f"{PREFIX}/tenant=1/day=2024-05-02.parquet"]
    adopted = next(p for p, _ in catalog(services) if parse_url(p).key == key)
    assert parse_url(adopted).etag == api.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')
    assert reads(client, admin) == before
    api.delete_object(Bucket=bucket, Key=key)
    assert cold.reconcile(services.store, services.settings.cold_path, objects)["missing"] == 1


def test_settings_without_a_bucket_keep_cold_files_local(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    assert ColdObjects.from_settings(settings) is None
    secret = make_settings(tmp_path, cold_s3_bucket="b", cold_s3_secret_access_key="hush")
    assert "hush" not in repr(secret) and secret.cold_s3_cache_path == (
        tmp_path / "data" / "cold-cache"
    )
