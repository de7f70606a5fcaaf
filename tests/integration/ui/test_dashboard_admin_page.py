"""The dashboard's Admin page (/ui/admin) in-process: only sessions whose key has role
admin get it; lesser roles get the 403 page; a session whose admin key was revoked is
sent back to the sign-in form."""

from __future__ import annotations

from fastapi.testclient import TestClient

from conftest import ADMIN_KEY, new_key, new_tenant
from stats_service.ui.sessions import COOKIE

ADMIN = {"X-API-Key": ADMIN_KEY}


def sign_in(client: TestClient, key: str) -> None:
    answer = client.post(
        "/ui/login", data={"key": key, "next": "/ui/admin"}, follow_redirects=False
    )
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/ui/admin"


def test_signed_out_the_admin_page_redirects_to_sign_in(client: TestClient) -> None:
    page = client.get("/ui/admin", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == "/ui/login?next=/ui/admin"
    assert COOKIE not in page.headers.get("set-cookie", "")


def test_an_admin_session_gets_the_page_with_its_script(client: TestClient) -> None:
    sign_in(client, ADMIN_KEY)
    page = client.get("/ui/admin", follow_redirects=False)
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    for part in ('src="/ui/static/admin.js"', 'id="tenants"', 'id="keys"', 'id="usage"'):
        assert part in page.text
    assert 'id="nav-admin"' in page.text  # the shared header
    script = client.get("/ui/static/admin.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    # an admin of another tenant gets the page too (it then shows that tenant only)
    new_tenant(client, "acme")
    client.cookies.clear()
    sign_in(client, new_key(client, "admin", "acme")["X-API-Key"])
    assert client.get("/ui/admin", follow_redirects=False).status_code == 200


def test_read_and_ingest_sessions_get_the_forbidden_page(client: TestClient) -> None:
    sign_in(client, new_key(client, "read")["X-API-Key"])
    page = client.get("/ui/admin", follow_redirects=False)
    assert page.status_code == 403
    assert "Not allowed" in page.text and "<strong>admin</strong>" in page.text
    assert "admin.js" not in page.text
    # the API refuses the admin routes to the same cookie as well
    assert client.get("/v1/admin/keys").status_code == 403
    assert client.get("/ui/", follow_redirects=False).status_code == 200  # still signed in


def test_a_revoked_admin_key_sends_the_session_to_sign_in(client: TestClient) -> None:
    created = client.post(
        "/v1/admin/keys", json={"role": "admin", "name": "second admin"}, headers=ADMIN
    ).json()
    sign_in(client, created["key"])
    assert client.get("/ui/admin", follow_redirects=False).status_code == 200
    revoked = client.delete(f"/v1/admin/keys/{created['id']}", headers=ADMIN)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    page = client.get("/ui/admin", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == "/ui/login?next=/ui/admin"
    assert client.get("/ui/session").status_code == 401  # the session was dropped
