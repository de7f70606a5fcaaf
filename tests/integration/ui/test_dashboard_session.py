"""The dashboard's pages, sign-in with an API key, the session cookie and its CSRF token,
against the real app and DuckDB file."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from conftest import ADMIN_KEY, make_settings, new_key
from stats_service.app import create_app
from stats_service.ui.sessions import COOKIE

ADMIN = {"X-API-Key": ADMIN_KEY}
READING = {"device": "esp32-01", "metrics": {"temperature": 21.5}}


def sign_in(client: TestClient, key: str = ADMIN_KEY, next_path: str = "/ui/") -> str:
    answer = client.post("/ui/login", data={"key": key, "next": next_path}, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    csrf: str = client.get("/ui/session").json()["csrf"]
    return csrf


def test_root_redirects_to_the_dashboard_and_pages_need_a_sign_in(client: TestClient) -> None:
    root = client.get("/", follow_redirects=False)
    assert (root.status_code, root.headers["location"]) == (307, "/ui/")
    for path in ("/ui/", "/ui/devices/esp32-01"):
        page = client.get(path, follow_redirects=False)
        assert page.status_code == 303
        assert page.headers["location"].startswith("/ui/login?next=/ui/")
    assert client.get("/ui/session").status_code == 401
    form = client.get("/ui/login?next=/ui/devices/x")
    assert form.status_code == 200 and 'name="key"' in form.text
    assert 'value="/ui/devices/x"' in form.text


def test_sign_in_sets_an_http_only_strict_cookie_without_the_key(client: TestClient) -> None:
    answer = client.post(
        "/ui/login", data={"key": ADMIN_KEY, "next": "/ui/devices/a"}, follow_redirects=False
    )
    assert (answer.status_code, answer.headers["location"]) == (303, "/ui/devices/a")
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower()
    assert ADMIN_KEY not in cookie
    page = client.get("/ui/")
    assert page.status_code == 200 and "overview.js" in page.text
    session = client.get("/ui/session").json()
    assert session["tenant"] == "default" and session["role"] == "admin"
    assert session["anonymous"] is False and len(session["csrf"]) >= 32


def test_a_bad_key_is_refused_and_next_never_leaves_the_dashboard(client: TestClient) -> None:
    refused = client.post("/ui/login", data={"key": "nope"}, follow_redirects=False)
    assert refused.status_code == 401 and "unknown API key" in refused.text
    assert COOKIE not in refused.headers.get("set-cookie", "")
    empty = client.post("/ui/login", data={"key": ""}, follow_redirects=False)
    assert empty.status_code == 400
    ingest_only = new_key(client, "ingest")["X-API-Key"]
    assert client.post("/ui/login", data={"key": ingest_only}).status_code == 401
    for target in ("https://elsewhere.example/", "//elsewhere.example/", "/v1/devices"):
        answer = client.post(
            "/ui/login", data={"key": ADMIN_KEY, "next": target}, follow_redirects=False
        )
        assert answer.headers["location"] == "/ui/"


def test_the_cookie_reads_the_api_and_writes_need_the_csrf_token(client: TestClient) -> None:
    assert client.get("/v1/devices").status_code == 401
    csrf = sign_in(client)
    assert client.post("/v1/ingest", json=READING, headers=ADMIN).status_code == 202
    assert [d["name"] for d in client.get("/v1/devices").json()["items"]] == ["esp32-01"]
    refused = client.post("/v1/ingest", json=READING)
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    wrong = client.post("/v1/ingest", json=READING, headers={"X-CSRF-Token": "x" * 43})
    assert wrong.status_code == 403
    accepted = client.post("/v1/ingest", json=READING, headers={"X-CSRF-Token": csrf})
    assert accepted.status_code == 202
    # X-API-Key still decides alone when it is sent
    bad_key = client.get("/v1/devices", headers={"X-API-Key": "unknown"})
    assert bad_key.status_code == 401


def test_sign_out_needs_the_token_and_ends_the_session(client: TestClient) -> None:
    csrf = sign_in(client)
    cookie = client.cookies[COOKIE]
    assert client.post("/ui/logout", data={"csrf": "wrong"}).status_code == 403
    assert client.get("/v1/devices").status_code == 200
    out = client.post("/ui/logout", data={"csrf": csrf}, follow_redirects=False)
    assert (out.status_code, out.headers["location"]) == (303, "/ui/login")
    assert client.get("/v1/devices").status_code == 401
    client.cookies.set(COOKIE, cookie)  # the old id is gone on the server too
    assert client.get("/v1/devices").status_code == 401
    assert client.get("/ui/session").status_code == 401


def test_a_revoked_key_ends_its_sessions(client: TestClient) -> None:
    created = client.post("/v1/admin/keys", json={"role": "read"}, headers=ADMIN).json()
    sign_in(client, created["key"])
    assert client.get("/v1/devices").status_code == 200
    revoked = client.delete(f"/v1/admin/keys/{created['id']}", headers=ADMIN)
    assert revoked.status_code in (200, 204)
    assert client.get("/v1/devices").status_code == 401


def test_anonymous_read_opens_the_dashboard_without_sign_in(client: TestClient) -> None:
    patched = client.patch(
        "/v1/admin/tenants/default", json={"anonymous_read": True}, headers=ADMIN
    )
    assert patched.status_code == 200
    client.app.state.services.auth.forget_tenants()  # type: ignore[attr-defined]
    page = client.get("/ui/", follow_redirects=False)
    assert page.status_code == 200 and COOKIE in page.headers["set-cookie"]
    session = client.get("/ui/session").json()
    assert session["anonymous"] is True and session["role"] == "read"
    assert client.get("/v1/devices").status_code == 200
    # reading only: a write with the anonymous session's own token is still refused
    write = client.post("/v1/ingest", json=READING, headers={"X-CSRF-Token": session["csrf"]})
    assert write.status_code == 403


def test_static_files_and_the_bundled_plotly(client: TestClient) -> None:
    for name, kind in (("common.js", "javascript"), ("dashboard.css", "css")):
        answer = client.get(f"/ui/static/{name}")
        assert answer.status_code == 200 and kind in answer.headers["content-type"]
    plotly = client.get("/ui/static/plotly.min.js")
    assert plotly.status_code == 200 and len(plotly.content) > 1_000_000
    for missing in ("nope.js", "..%2Fsessions.py", ".hidden.js", "sessions.py"):
        assert client.get(f"/ui/static/{missing}").status_code == 404
    assert "/ui/" not in str(client.get("/openapi.json").json()["paths"])


def test_the_public_url_is_the_pages_api_base(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, public_url="https://stats.example.org/")
    with TestClient(create_app(settings)) as client:
        sign_in(client)
        page = client.get("/ui/").text
        assert '<meta name="stats-api-base" content="https://stats.example.org">' in page
    with pytest.raises(ValidationError):
        make_settings(tmp_path, public_url='javascript:alert("x")')


def test_without_a_public_url_the_pages_use_their_own_origin(client: TestClient) -> None:
    sign_in(client)
    page = client.get("/ui/devices/esp32-01").text
    assert '<meta name="stats-api-base" content="">' in page
