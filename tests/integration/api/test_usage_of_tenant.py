"""GET /v1/usage?tenant=: admins of `default` read any tenant's usage per day; other
callers only their own."""

from __future__ import annotations

from fastapi.testclient import TestClient

from conftest import new_key, new_tenant

READING = {"device": "d1", "metrics": {"t": 1.0, "h": 2.0}}


def test_an_admin_of_default_reads_another_tenants_usage(
    client: TestClient, admin: dict[str, str]
) -> None:
    new_tenant(client, "acme")
    acme = new_key(client, "ingest", "acme")
    assert client.post("/v1/ingest", json=READING, headers=acme).status_code == 202
    own = client.get("/v1/usage", headers=admin).json()["days"]
    assert sum(d["points"] for d in own) == 0  # the default tenant wrote nothing
    answer = client.get("/v1/usage", params={"tenant": "acme"}, headers=admin)
    assert answer.status_code == 200, answer.text
    days = answer.json()["days"]
    assert len(days) == 1 and days[0]["points"] == 2 and days[0]["requests"] == 1
    # naming one's own tenant is the same as naming none
    named = client.get("/v1/usage", params={"tenant": "default"}, headers=admin).json()
    assert [d["points"] for d in named["days"]] == [d["points"] for d in own]
    missing = client.get("/v1/usage", params={"tenant": "nope"}, headers=admin)
    assert missing.status_code == 404 and "nope" in missing.json()["detail"]


def test_other_callers_may_not_name_another_tenant(
    client: TestClient, admin: dict[str, str]
) -> None:
    new_tenant(client, "acme")
    read_default = new_key(client, "read")
    acme_admin = new_key(client, "admin", "acme")
    refused = client.get("/v1/usage", params={"tenant": "acme"}, headers=read_default)
    assert refused.status_code == 403 and "default" in refused.json()["detail"]
    other = client.get("/v1/usage", params={"tenant": "default"}, headers=acme_admin)
    assert other.status_code == 403
    own = client.get("/v1/usage", params={"tenant": "acme"}, headers=acme_admin)
    assert own.status_code == 200 and own.json()["days"][0]["requests"] >= 1
