"""What the write side reports: Prometheus metrics on /metrics and per-day usage."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from write_support import T0, batch

from conftest import new_key, new_tenant
from stats_service.services import Services


def scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_ingest_counters_by_protocol_and_tenant(
    client: TestClient, services: Services, admin: dict[str, str]
) -> None:
    new_tenant(client, "acme")
    acme = new_key(client, "ingest", "acme")
    assert client.post("/v1/ingest", json=batch("d", 3), headers=admin).status_code == 202
    assert client.post("/v1/ingest", json=batch("d", 2), headers=admin).status_code == 202
    assert client.post("/v1/ingest", json=batch("a", 4), headers=acme).status_code == 202
    assert client.post("/v1/ingest", json={"device": "a"}, headers=acme).status_code == 400
    assert client.post("/v1/ingest", content=b"{", headers=acme).status_code == 400
    client.patch("/v1/admin/tenants/acme", json={"max_batch_points": 1}, headers=admin)
    assert client.post("/v1/ingest", json=batch("a", 2), headers=acme).status_code == 413

    m = scrape(client)
    json_default = {"protocol": "json", "tenant": "default"}
    json_acme = {"protocol": "json", "tenant": "acme"}
    assert value(m, "stats_ingest_points_total", **json_default) == 5
    assert value(m, "stats_ingest_points_total", **json_acme) == 4
    assert value(m, "stats_ingest_batches_total", **json_default) == 2
    assert value(m, "stats_ingest_batches_total", **json_acme) == 1
    assert value(m, "stats_ingest_rejected_total", **json_acme, reason="ValidationFailed") == 1
    assert value(m, "stats_ingest_rejected_total", **json_acme, reason="BadRequest") == 1
    assert value(m, "stats_ingest_rejected_total", **json_acme, reason="PayloadTooLarge") == 1
    assert value(m, "stats_ingest_rejected_total", **json_default, reason="BadRequest") == 0
    assert value(m, "stats_ingest_rejected_points_total", **json_acme) >= 3
    assert value(m, "stats_writer_committed_points_total") == 9


def test_latency_queue_and_commit_metrics(client: TestClient, admin: dict[str, str]) -> None:
    for _ in range(3):
        assert client.post("/v1/ingest", json=batch("d", 2), headers=admin).status_code == 202
    client.get("/v1/admin/keys", headers=admin)
    m = scrape(client)
    route = {"method": "POST", "route": "/v1/ingest", "status": "202"}
    assert value(m, "stats_http_request_duration_seconds_count", **route) == 3
    assert value(m, "stats_http_request_duration_seconds_bucket", **route, le="+Inf") == 3
    assert value(m, "stats_http_request_duration_seconds_sum", **route) > 0
    keys = {"method": "GET", "route": "/v1/admin/keys", "status": "200"}
    assert value(m, "stats_http_request_duration_seconds_count", **keys) == 1
    assert ("stats_writer_queue_points", ()) in m
    assert value(m, "stats_writer_queue_points") == 0  # everything acked is committed
    assert value(m, "stats_writer_commit_duration_seconds_count") >= 3
    assert value(m, "stats_writer_commit_duration_seconds_bucket", le="+Inf") >= 3


def test_usage_per_day(client: TestClient, services: Services, admin: dict[str, str]) -> None:
    new_tenant(client, "acme")
    ingest = new_key(client, "ingest")
    read = new_key(client, "read")
    acme = new_key(client, "ingest", "acme")
    sent = 0
    for n in (3, 2):
        body = json.dumps(batch("d", n)).encode()
        headers = ingest | {"Content-Type": "application/json"}
        assert client.post("/v1/ingest", content=body, headers=headers).status_code == 202
        sent += len(body)
    bad = {"device": "d", "ts": T0, "metrics": {"t": "x"}}
    assert client.post("/v1/ingest", json=bad, headers=ingest).status_code == 400
    retry = ingest | {"Idempotency-Key": "u-1"}
    body = json.dumps(batch("e", 1)).encode()
    for _ in range(2):  # the retry is a request, not new points or bytes
        assert client.post("/v1/ingest", content=body, headers=retry).status_code == 202
    sent += len(body)
    assert client.post("/v1/ingest", json=batch("a", 7), headers=acme).status_code == 202

    before = datetime.now(UTC).date()
    response = client.get("/v1/usage", headers=read)  # the not yet flushed counts included
    assert response.status_code == 200, response.text
    days = response.json()["days"]
    assert len(days) == 1 and days[0]["day"] in {before.isoformat(), _today()}
    assert days[0] == days[0] | {"points": 6, "bytes": sent, "rejected": 1}
    # 4 admin calls above (a tenant, 3 keys), 5 ingests and this read; not acme's
    assert days[0]["requests"] == 10

    # the request counters are flushed to the store with the next commit
    assert client.post("/v1/ingest", json=batch("f", 1), headers=ingest).status_code == 202
    again = client.get("/v1/usage", headers=read).json()["days"][0]
    assert again["points"] == 7 and again["requests"] == 12
    with services.store.reader() as cur:
        stored = cur.execute("SELECT sum(points), sum(rejected) FROM usage WHERE tenant_id = 1")
        assert stored.fetchone() == (7, 1)


def _today() -> str:
    return datetime.now(UTC).date().isoformat()
