"""A tenant's own scheduled-scoring interval: set, shown and cleared through
PATCH /v1/admin/tenants/{name}; the scoring job reads it (tests/integration/jobs)."""

from __future__ import annotations

from fastapi.testclient import TestClient
from write_support import assert_problem

from conftest import ADMIN_KEY, new_tenant
from stats_service.services import Services
from stats_service.storage.models import tenant_interval

ADMIN = {"X-API-Key": ADMIN_KEY}


def interval_of(services: Services, tenant_id: int) -> float | None:
    with services.store.reader() as cur:
        return tenant_interval(cur, tenant_id)


def test_set_show_and_clear(client: TestClient, services: Services) -> None:
    new_tenant(client, "acme")
    acme = services.auth.tenant("acme").id
    changed = client.patch(
        "/v1/admin/tenants/acme", json={"scoring_interval_s": 600}, headers=ADMIN
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["scoring_interval_s"] == 600
    assert interval_of(services, acme) == 600
    listed = {t["name"]: t for t in client.get("/v1/admin/tenants", headers=ADMIN).json()}
    assert listed["acme"]["scoring_interval_s"] == 600
    assert listed["default"]["scoring_interval_s"] is None
    # other fields alone leave it as it is; 0 gives the tenant the server's setting back
    kept = client.patch("/v1/admin/tenants/acme", json={"retention_days": 9}, headers=ADMIN)
    assert kept.json()["scoring_interval_s"] == 600
    cleared = client.patch("/v1/admin/tenants/acme", json={"scoring_interval_s": 0}, headers=ADMIN)
    assert cleared.json()["scoring_interval_s"] is None
    assert interval_of(services, acme) is None


def test_bad_intervals_are_refused_naming_the_field(client: TestClient) -> None:
    for bad in (-1, 31 * 86400 + 1, "hourly"):
        answer = client.patch(
            "/v1/admin/tenants/default", json={"scoring_interval_s": bad}, headers=ADMIN
        )
        assert assert_problem(answer, 400)["errors"][0]["loc"] == "body.scoring_interval_s"
