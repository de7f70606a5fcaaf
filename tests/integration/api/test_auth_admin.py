"""API keys, roles, tenants and the admin API, against the real app and DuckDB file."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
import zstandard
from fastapi.testclient import TestClient
from write_support import T0, assert_problem, count

from conftest import ADMIN_KEY, make_settings, new_key, new_tenant
from stats_service.app import create_app
from stats_service.services import Services

READING = {"device": "d1", "ts": T0, "metrics": {"t": 1.0}}
ADMIN_ONLY = [
    ("GET", "/v1/admin/tenants", None),
    ("POST", "/v1/admin/tenants", {"name": "nope"}),
    ("PATCH", "/v1/admin/tenants/default", {"retention_days": 5}),
    ("GET", "/v1/admin/keys", None),
    ("POST", "/v1/admin/keys", {"role": "read"}),
    ("DELETE", "/v1/admin/keys/key_0000", None),
    ("POST", "/v1/admin/replay", {"from": "2024-05-01", "to": "2024-05-01"}),
]


def ingest(client: TestClient, headers: dict[str, str]) -> httpx.Response:
    return client.post("/v1/ingest", json=READING, headers=headers)


def bearer(headers: dict[str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {headers['X-API-Key']}"}


def read_endpoints(client: TestClient) -> list[str]:
    """Every GET endpoint of the read API present in this build (path parameters filled)."""
    paths = client.get("/openapi.json").json()["paths"]
    found = []
    for path, operations in paths.items():
        if (
            "get" in operations
            and path.startswith("/v1/")
            and not path.startswith(("/v1/admin", "/v1/health", "/v1/ready"))
        ):
            found.append(re.sub(r"\{[^}]+\}", "1", path))
    return sorted(found)


# -- 401 ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-API-Key": ""},
        {"X-API-Key": "ss_unknown-key-000000000000000000000000000"},
        {"Authorization": "Bearer ss_unknown-key-000000000000000000000000000"},
        {"Authorization": f"Basic {ADMIN_KEY}"},
        {"Authorization": "Bearer "},
        {"X-API-Key": ADMIN_KEY + "x"},
    ],
    ids=["none", "empty", "unknown", "unknown-bearer", "basic", "empty-bearer", "near-miss"],
)
def test_missing_or_unknown_key_is_401(client: TestClient, headers: dict[str, str]) -> None:
    for method, url, body in [("POST", "/v1/ingest", READING), *ADMIN_ONLY]:
        response = client.request(method, url, json=body, headers=headers)
        problem = assert_problem(response, 401)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert "X-API-Key" in problem["detail"] or "unknown" in problem["detail"]
    for url in read_endpoints(client):
        assert_problem(client.get(url, headers=headers), 401)


def test_both_header_forms_are_accepted(client: TestClient, admin: dict[str, str]) -> None:
    key = new_key(client, "ingest")
    assert ingest(client, key).status_code == 202
    assert ingest(client, bearer(key)).status_code == 202
    lower = {"Authorization": f"bearer {key['X-API-Key']}"}
    assert ingest(client, lower).status_code == 202
    assert client.get("/v1/admin/keys", headers=bearer(admin)).status_code == 200


def test_revoked_key_is_401_at_once(
    client: TestClient, services: Services, admin: dict[str, str]
) -> None:
    key = new_key(client, "ingest")
    assert ingest(client, key).status_code == 202  # now in the auth cache
    assert ingest(client, bearer(key)).status_code == 202
    (record,) = [
        k for k in client.get("/v1/admin/keys", headers=admin).json() if k["role"] == "ingest"
    ]
    revoked = client.delete(f"/v1/admin/keys/{record['id']}", headers=admin)
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    for headers in (key, bearer(key)):
        problem = assert_problem(ingest(client, headers), 401)
        assert "revoked" in problem["detail"]
    # revoking again changes nothing; the key stays listed (without its secret)
    again = client.delete(f"/v1/admin/keys/{record['id']}", headers=admin)
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"]


def test_revoked_admin_key_loses_admin_at_once(client: TestClient, admin: dict[str, str]) -> None:
    other = new_key(client, "admin")
    assert client.get("/v1/admin/keys", headers=other).status_code == 200
    keys = client.get("/v1/admin/keys", headers=other).json()
    mine = [k for k in keys if k["prefix"] == other["X-API-Key"][:10]]
    assert client.delete(f"/v1/admin/keys/{mine[0]['id']}", headers=other).status_code == 200
    assert_problem(client.get("/v1/admin/keys", headers=other), 401)
    assert client.get("/v1/admin/keys", headers=admin).status_code == 200


# -- 403 ----------------------------------------------------------------------------------


def test_ingest_role_may_only_ingest(client: TestClient) -> None:
    key = new_key(client, "ingest")
    assert ingest(client, key).status_code == 202
    for method, url, body in ADMIN_ONLY:
        problem = assert_problem(client.request(method, url, json=body, headers=key), 403)
        assert "'ingest'" in problem["detail"] and "'admin' is needed" in problem["detail"]
    endpoints = read_endpoints(client)
    assert "/v1/usage" in endpoints
    for url in endpoints:
        problem = assert_problem(client.get(url, headers=key), 403)
        assert "'read' is needed" in problem["detail"], url


def test_read_role_may_not_ingest_or_administer(client: TestClient, services: Services) -> None:
    key = new_key(client, "read")
    problem = assert_problem(ingest(client, key), 403)
    assert "'read'" in problem["detail"] and "'ingest' is needed" in problem["detail"]
    assert_problem(ingest(client, bearer(key)), 403)
    for method, url, body in ADMIN_ONLY:
        assert_problem(client.request(method, url, json=body, headers=key), 403)
    assert client.get("/v1/usage", headers=key).status_code == 200
    assert count(services, "points") == 0


def test_admin_may_do_everything_in_its_tenant(client: TestClient, admin: dict[str, str]) -> None:
    assert ingest(client, admin).status_code == 202
    assert client.get("/v1/usage", headers=admin).status_code == 200


# -- tenant admins ------------------------------------------------------------------------


def test_admin_of_another_tenant_manages_only_its_own(
    client: TestClient, services: Services, admin: dict[str, str]
) -> None:
    new_tenant(client, "acme")
    new_tenant(client, "globex")
    acme = new_key(client, "admin", "acme")
    default_ingest = new_key(client, "ingest")

    # may not create tenants, change them, or make keys for others
    assert_problem(client.post("/v1/admin/tenants", json={"name": "x"}, headers=acme), 403)
    patch = client.patch("/v1/admin/tenants/globex", json={"retention_days": 1}, headers=acme)
    assert_problem(patch, 403)
    for tenant in ("default", "globex"):
        body = {"tenant": tenant, "role": "admin"}
        problem = assert_problem(client.post("/v1/admin/keys", json=body, headers=acme), 403)
        assert "acme" in problem["detail"]
    replay = {"from": "2024-05-01", "to": "2024-05-01", "tenant": "default"}
    assert_problem(client.post("/v1/admin/replay", json=replay, headers=acme), 403)

    # sees only itself
    tenants = client.get("/v1/admin/tenants", headers=acme).json()
    assert [t["name"] for t in tenants] == ["acme"]
    keys = client.get("/v1/admin/keys", headers=acme).json()
    assert {k["tenant"] for k in keys} == {"acme"}
    own = client.get("/v1/admin/keys", params={"tenant": "acme"}, headers=acme)
    assert own.json() == keys
    for tenant in ("default", "globex"):
        listing = client.get("/v1/admin/keys", params={"tenant": tenant}, headers=acme)
        assert "acme" in assert_problem(listing, 403)["detail"]

    # manages its own keys
    created = client.post("/v1/admin/keys", json={"role": "ingest", "name": "fleet"}, headers=acme)
    assert created.status_code == 201, created.text
    assert created.json()["tenant"] == "acme"
    explicit = client.post("/v1/admin/keys", json={"tenant": "acme", "role": "read"}, headers=acme)
    assert explicit.status_code == 201
    assert ingest(client, {"X-API-Key": created.json()["key"]}).status_code == 202
    assert client.delete(f"/v1/admin/keys/{created.json()['id']}", headers=acme).status_code == 200
    assert_problem(ingest(client, {"X-API-Key": created.json()["key"]}), 401)

    # another tenant's key is not found (and stays valid)
    default_keys = client.get("/v1/admin/keys", headers=admin).json()
    other = next(k for k in default_keys if k["tenant"] == "default")
    assert_problem(client.delete(f"/v1/admin/keys/{other['id']}", headers=acme), 404)
    assert ingest(client, default_ingest).status_code == 202

    # the data went to the key's tenant
    with services.store.reader() as cur:
        rows = cur.execute(
            "SELECT t.name, count(*) FROM points p JOIN series s ON s.id = p.series_id "
            "JOIN tenants t ON t.id = s.tenant_id GROUP BY t.name ORDER BY t.name"
        ).fetchall()
    assert rows == [("acme", 1), ("default", 1)]


def test_superuser_sees_every_tenant_and_key(client: TestClient, admin: dict[str, str]) -> None:
    new_tenant(client, "acme")
    new_key(client, "ingest", "acme")
    assert {t["name"] for t in client.get("/v1/admin/tenants", headers=admin).json()} == {
        "default",
        "acme",
    }
    assert {k["tenant"] for k in client.get("/v1/admin/keys", headers=admin).json()} == {
        "default",
        "acme",
    }
    only = client.get("/v1/admin/keys", params={"tenant": "acme"}, headers=admin).json()
    assert [k["tenant"] for k in only] == ["acme"]
    body = {"tenant": "nowhere", "role": "read"}
    assert_problem(client.post("/v1/admin/keys", json=body, headers=admin), 404)
    listing = client.get("/v1/admin/keys", params={"tenant": "nowhere"}, headers=admin)
    assert_problem(listing, 404)


# -- tenants ------------------------------------------------------------------------------


def test_tenant_crud(client: TestClient, admin: dict[str, str], settings: Any) -> None:
    created = client.post(
        "/v1/admin/tenants", json={"name": "acme-2", "retention_days": 7}, headers=admin
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["name"] == "acme-2"
    assert body["retention_days"] == 7
    assert body["max_series"] == settings.max_series
    assert body["max_batch_points"] == settings.max_batch_points
    plain = client.post("/v1/admin/tenants", json={"name": "plain"}, headers=admin).json()
    assert plain["retention_days"] == settings.retention_days

    duplicate = client.post("/v1/admin/tenants", json={"name": "acme-2"}, headers=admin)
    problem = assert_problem(duplicate, 409)
    assert "acme-2" in problem["detail"]

    changed = client.patch(
        "/v1/admin/tenants/acme-2",
        json={"retention_days": 90, "max_series": 10, "max_batch_points": 500},
        headers=admin,
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["retention_days"], changed.json()["max_series"]) == (90, 10)
    listed = {t["name"]: t for t in client.get("/v1/admin/tenants", headers=admin).json()}
    assert listed["acme-2"]["retention_days"] == 90
    assert listed["acme-2"]["max_batch_points"] == 500
    only_one = client.patch("/v1/admin/tenants/acme-2", json={"retention_days": 3}, headers=admin)
    assert only_one.json()["max_series"] == 10  # unchanged fields stay

    assert_problem(
        client.patch("/v1/admin/tenants/nowhere", json={"retention_days": 3}, headers=admin), 404
    )


@pytest.mark.parametrize(
    "body",
    [
        {"name": "Bad Name"},
        {"name": ""},
        {"name": "-dash"},
        {"name": "x" * 64},
        {"name": "ok\n"},
        {"name": "ok", "retention_days": 0},
        {},
    ],
)
def test_bad_tenant_is_a_400_problem_with_locations(
    client: TestClient, admin: dict[str, str], body: dict[str, Any]
) -> None:
    problem = assert_problem(client.post("/v1/admin/tenants", json=body, headers=admin), 400)
    assert problem["errors"]
    assert all(e["loc"].startswith("body") for e in problem["errors"])


def test_bad_patch_and_bad_key_role_are_400(client: TestClient, admin: dict[str, str]) -> None:
    patch = client.patch("/v1/admin/tenants/default", json={"retention_days": 0}, headers=admin)
    assert assert_problem(patch, 400)["errors"][0]["loc"] == "body.retention_days"
    key = client.post("/v1/admin/keys", json={"role": "root"}, headers=admin)
    assert assert_problem(key, 400)["errors"][0]["loc"] == "body.role"


# -- keys: secrets are shown once and never stored -------------------------------------------


def test_key_listing_never_contains_secrets(client: TestClient, admin: dict[str, str]) -> None:
    raw = [new_key(client, role)["X-API-Key"] for role in ("ingest", "read", "admin")]
    response = client.get("/v1/admin/keys", headers=admin)
    assert response.status_code == 200
    for key in response.json():
        assert set(key) == {
                "id", "tenant", "role", "prefix", "name", "created_at", "revoked_at", "device"
            }
    for secret in [*raw, ADMIN_KEY]:
        assert secret not in response.text
        assert hashlib.sha256(secret.encode()).hexdigest() not in response.text
    assert {k["prefix"] for k in response.json()} >= {r[:10] for r in raw}


def test_no_raw_key_is_stored_anywhere(tmp_path: Path) -> None:
    """Open the database file after the app stopped: no table and no byte holds a key."""
    settings = make_settings(tmp_path)
    admin = {"X-API-Key": ADMIN_KEY}
    raw: list[str] = [ADMIN_KEY]
    with TestClient(create_app(settings)) as client:
        new_tenant(client, "acme")
        for tenant in ("default", "acme"):
            for role in ("ingest", "read", "admin"):
                raw.append(new_key(client, role, tenant)["X-API-Key"])
        for key in raw:  # every key used once, in both header forms
            client.get("/v1/admin/keys", headers={"X-API-Key": key})
            client.post("/v1/ingest", json=READING, headers=bearer({"X-API-Key": key}))
        keys = client.get("/v1/admin/keys", headers=admin).json()
        client.delete(f"/v1/admin/keys/{keys[-1]['id']}", headers=admin)
    assert len(set(raw)) == 7

    db = settings.db_path
    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
        assert {"api_keys", "tenants", "points", "idempotency", "usage"} <= set(tables)
        text = []
        for table in tables:
            for row in con.execute(f'SELECT * FROM "{table}"').fetchall():
                text.append(" ".join(str(v) for v in row))
        hashes = {r[0] for r in con.execute("SELECT key_hash FROM api_keys").fetchall()}
    finally:
        con.close()
    dump = "\n".join(text)
    assert hashes == {hashlib.sha256(k.encode()).hexdigest() for k in raw}  # the right file
    files = _every_file_decompressed(settings.data_dir)
    assert db in files and len(files) >= 2  # the database and the raw archive at least
    for key in raw:
        assert key not in dump
        for path, data in files.items():
            assert key.encode() not in data, f"a raw key is in {path}"


def _every_file_decompressed(root: Path) -> dict[Path, bytes]:
    """Every file under the data dir; archive objects decompressed."""
    found = {}
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            if path.name.endswith(".zst"):
                data = (
                    zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True).read()
                )
            found[path] = data
    return found


def test_control_token_of_the_local_cli(tmp_path: Path) -> None:
    """The serving process's control token is a system admin; X-Tenant picks a tenant."""
    token = "control-token-0123456789abcdef0123"
    with TestClient(create_app(make_settings(tmp_path), control_token=token)) as client:
        services: Services = client.app.state.services  # type: ignore[attr-defined]
        system = {"Authorization": f"Bearer {token}"}
        assert (
            client.post("/v1/admin/tenants", json={"name": "acme"}, headers=system).status_code
            == 201
        )
        as_acme = system | {"X-Tenant": "acme"}
        assert client.post("/v1/ingest", json=READING, headers=as_acme).status_code == 202
        assert client.post("/v1/ingest", json=READING, headers=system).status_code == 202
        with services.store.reader() as cur:
            rows = cur.execute(
                "SELECT t.name FROM series s JOIN tenants t ON t.id = s.tenant_id ORDER BY 1"
            ).fetchall()
        assert rows == [("acme",), ("default",)]
        assert_problem(client.get("/v1/admin/keys", headers=system | {"X-Tenant": "nope"}), 404)
        assert_problem(client.get("/v1/admin/keys", headers={"X-Tenant": "acme"}), 401)
        for odd in ("clé-ünïcode".encode("latin-1"), b"\xff" * 40):
            assert_problem(client.get("/v1/admin/keys", headers={"X-API-Key": odd}), 401)


def test_unknown_routes_and_methods_are_problems(client: TestClient, admin: dict[str, str]) -> None:
    assert_problem(client.get("/v1/nothing-here", headers=admin), 404)
    response = client.get("/v1/ingest", headers=admin)
    assert assert_problem(response, 405)["title"] == "Method not allowed"
    bad_json = client.post(
        "/v1/admin/tenants",
        content=b"{",
        headers=admin | {"Content-Type": "application/json"},
    )
    assert assert_problem(bad_json, 400)["errors"]
