"""The dashboard's Admin page in a real headless browser against a real
`stats-service demo`: an admin creates a key (its secret shown once), sees it listed,
revokes it; tenants are created (API validation errors shown under the field) and
edited; usage per day is drawn. A read key gets no Admin link and a 403 for the page
and the admin API; a revoked key cannot sign in. No console errors; screenshots."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page

from .browser import PHONE, WAIT_MS, new_page, open_browser, sign_in
from .conftest import ServerFactory
from .harness import ADMIN_KEY

pytestmark = [pytest.mark.e2e]


def ready(page: Page) -> None:
    page.wait_for_selector("body[data-ready=true]", timeout=WAIT_MS)


def key_row(page: Page, name: str) -> str:
    return f'#keys tbody tr[data-name="{name}"]'


def test_admin_page_keys_tenants_usage_and_lesser_roles(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    demo = server_factory(command="demo").start()
    with demo.client() as api, open_browser() as browser:
        page, problems = new_page(browser)
        # the demo opens pages anonymously with a read session: sign in explicitly
        sign_in(page, demo.url, ADMIN_KEY, "/ui/admin")
        ready(page)
        assert page.is_visible("#nav-admin")
        assert page.text_content("#who") == "default · admin"
        assert page.get_attribute("#nav-admin", "aria-current") == "page"
        assert page.locator('#tenants tbody tr[data-tenant="default"]').count() == 1

        # a read key: the secret is shown once, with a copy button and a warning
        page.select_option("#key-form select[name=role]", "read")
        page.fill("#key-form input[name=name]", "e2e reader")
        page.click("#key-form button[type=submit]")
        page.wait_for_selector("#new-key:not([hidden])", timeout=WAIT_MS)
        secret = page.text_content("#new-key-value") or ""
        assert len(secret) >= 20
        assert "will not be shown again" in page.inner_text("#new-key")
        assert page.is_visible("#new-key-copy")
        page.wait_for_selector(key_row(page, "e2e reader"), timeout=WAIT_MS)
        row = page.locator(key_row(page, "e2e reader"))
        assert "read" in row.inner_text() and "active" in row.inner_text()
        with demo.client(secret) as reader:
            assert reader.get("/v1/devices").status_code == 200  # the shown key works
        page.click("#new-key-copy")
        page.wait_for_function("document.querySelector('#new-key-copied').textContent !== ''")

        # a reload does not show the secret again
        page.reload()
        ready(page)
        assert page.is_hidden("#new-key")
        assert secret not in page.content()
        assert page.locator(key_row(page, "e2e reader")).count() == 1

        # revoke, with a confirm step; then listed as revoked
        row = page.locator(key_row(page, "e2e reader"))
        row.locator("[data-action=revoke]").click()
        assert "Revoke?" in row.inner_text()
        row.locator("button", has_text="Cancel").click()
        assert "active" in row.inner_text()
        row.locator("[data-action=revoke]").click()
        row.locator("[data-confirm=revoke]").click()
        page.wait_for_selector(f"{key_row(page, 'e2e reader')}.revoked", timeout=WAIT_MS)
        assert "revoked" in page.locator(key_row(page, "e2e reader")).inner_text()
        with demo.client(secret) as reader:
            assert reader.get("/v1/devices").status_code == 401

        # tenants: the API's validation errors appear under their fields
        page.fill("#tenant-form input[name=name]", "Bad Name")
        page.fill("#tenant-form input[name=retention_days]", "0")
        page.click("#tenant-form button[type=submit]")
        name_error = '#tenant-form .error[data-for="name"]'
        page.wait_for_selector(f"{name_error}:not([hidden])", timeout=WAIT_MS)
        assert "pattern" in (page.text_content(name_error) or "")
        retention_error = page.text_content('#tenant-form .error[data-for="retention_days"]')
        assert "greater than or equal to 1" in (retention_error or "")
        page.fill("#tenant-form input[name=name]", "acme")
        page.fill("#tenant-form input[name=retention_days]", "14")
        page.click("#tenant-form button[type=submit]")
        acme = '#tenants tbody tr[data-tenant="acme"]'
        page.wait_for_selector(acme, timeout=WAIT_MS)
        assert page.input_value("#tenant") == "acme"
        page.wait_for_selector("#keys-empty:not([hidden])", timeout=WAIT_MS)
        page.wait_for_selector("#usage-empty:not([hidden])", timeout=WAIT_MS)
        assert page.is_hidden("#usage-plot") and page.is_hidden("#keys")  # empty states only
        # edit acme's limits: a bad value is refused field by field, a good one saved
        page.locator(acme).get_by_role("button", name="Edit").click()
        page.fill("#tenant-edit input[name=max_series]", "-5")
        page.click("#tenant-edit button[type=submit]")
        page.wait_for_selector('#tenant-edit .error[data-for="max_series"]:not([hidden])')
        assert "greater than or equal to 1" in page.inner_text("#tenant-edit")
        page.screenshot(path=tmp_path / "admin-edit-error.png")
        page.fill("#tenant-edit input[name=max_series]", "500")
        page.fill("#tenant-edit input[name=retention_days]", "60")
        page.check("#tenant-edit input[name=anonymous_read]")
        page.click("#tenant-edit button[type=submit]")
        page.wait_for_function(
            "document.querySelector('#tenants tr[data-tenant=acme]').innerText.includes('500')"
        )
        assert not page.is_visible("#tenant-edit")
        cells = page.locator(f"{acme} td").all_inner_texts()
        assert cells[2:6] == ["60", "500", "100,000", "yes"], cells
        stored = next(t for t in api.get("/v1/admin/tenants").json() if t["name"] == "acme")
        assert (stored["retention_days"], stored["max_series"], stored["anonymous_read"]) == (
            60,
            500,
            True,
        )

        # usage per day of the demo's own tenant: a table and a bar chart with data
        page.select_option("#tenant", "default")
        page.wait_for_function(
            "document.querySelector('#usage-range').textContent.endsWith('tenant default')"
        )
        page.wait_for_selector("#usage tbody tr", timeout=WAIT_MS)
        assert int(page.get_attribute("#usage-plot", "data-days") or 0) == 30
        assert float(page.get_attribute("#usage-plot", "data-total") or 0) > 0
        assert page.locator("#usage-plot .bars path").count() >= 1
        page.screenshot(path=tmp_path / "admin.png", full_page=True)
        page.click("#theme")
        page.wait_for_function("document.documentElement.dataset.theme === 'dark'")
        page.screenshot(path=tmp_path / "admin-dark.png", full_page=True)

        # phone width, dark theme: usable without the page scrolling sideways
        phone, phone_problems = new_page(browser, PHONE, color_scheme="dark")
        sign_in(phone, demo.url, ADMIN_KEY, "/ui/admin")
        ready(phone)
        assert phone.evaluate("document.documentElement.dataset.theme") == "dark"
        assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        phone.select_option("#key-form select[name=role]", "ingest")
        phone.fill("#key-form input[name=name]", "phone key")
        phone.click("#key-form button[type=submit]")
        phone.wait_for_selector("#new-key:not([hidden])", timeout=WAIT_MS)
        phone.screenshot(path=tmp_path / "admin-phone-dark.png", full_page=True)
        phone.locator(f"{key_row(phone, 'phone key')} [data-action=revoke]").click()
        assert phone.locator(f"{key_row(phone, 'phone key')} [data-confirm=revoke]").is_visible()
        phone.screenshot(path=tmp_path / "admin-phone-confirm.png")
        assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        phone.context.close()

        # sign out from the header: back to the sign-in form
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url(re.compile(r"/ui/login$"))
        assert page.is_visible("#key")
        page.context.close()

        # a read key signs in (fresh context): no Admin link, and 403 for the page and the
        # admin API (asked with page.request and fetch, which log nothing to the console)
        read_key = api.post("/v1/admin/keys", json={"role": "read", "name": "viewer"}).json()
        reader, reader_problems = new_page(browser)
        sign_in(reader, demo.url, read_key["key"], "/ui/")
        reader.wait_for_function("document.querySelector('#who').textContent !== ''")
        assert reader.text_content("#who") == "default · read"
        assert reader.is_hidden("#nav-admin")
        forbidden = reader.request.get(f"{demo.url}/ui/admin", max_redirects=0)
        assert forbidden.status == 403
        assert "Not allowed" in forbidden.text() and "<strong>admin</strong>" in forbidden.text()
        keys = reader.request.get(f"{demo.url}/v1/admin/keys")
        assert keys.status == 403 and "'admin' is needed" in keys.json()["detail"]
        # the same from the page's own fetch (with the cookie), and the page in the browser
        status = reader.evaluate(
            "fetch('/v1/admin/keys', {credentials: 'same-origin'}).then((r) => r.status)"
        )
        assert status == 403
        shown = reader.goto(f"{demo.url}/ui/admin")
        assert shown is not None and shown.status == 403
        assert reader.text_content("h1") == "Not allowed"
        reader.wait_for_function("document.querySelector('#who').textContent !== ''")
        assert reader.is_hidden("#nav-admin")
        reader.screenshot(path=tmp_path / "forbidden.png", full_page=True)
        reader.context.close()

        # an admin of another tenant: its own tenant, keys and usage only, no tenant edits
        acme_admin = api.post("/v1/admin/keys", json={"tenant": "acme", "role": "admin"})
        tenant_admin, tenant_admin_problems = new_page(browser)
        sign_in(tenant_admin, demo.url, acme_admin.json()["key"], "/ui/admin")
        ready(tenant_admin)
        assert tenant_admin.is_visible("#nav-admin")
        assert tenant_admin.text_content("#scope") == "tenant acme only"
        assert tenant_admin.is_hidden("#tenant-form")
        assert tenant_admin.is_visible("#tenants-readonly")
        assert tenant_admin.locator("#tenants tbody tr").all_inner_texts()[0].startswith("acme")
        assert tenant_admin.locator("#tenants tbody tr").count() == 1
        assert tenant_admin.get_by_role("button", name="Edit").count() == 0
        assert tenant_admin.is_disabled("#tenant") and tenant_admin.input_value("#tenant") == "acme"
        assert tenant_admin.locator("#keys tbody tr").count() == 1  # its own key
        tenant_admin.fill("#key-form input[name=name]", "acme reader")
        tenant_admin.click("#key-form button[type=submit]")
        tenant_admin.wait_for_selector("#new-key:not([hidden])", timeout=WAIT_MS)
        assert "tenant acme" in tenant_admin.inner_text("#new-key-what")
        tenant_admin.wait_for_selector(key_row(tenant_admin, "acme reader"), timeout=WAIT_MS)
        tenant_admin.wait_for_selector("#usage tbody tr", timeout=WAIT_MS)  # its own requests
        tenant_admin.context.close()

        # a revoked key is refused at sign-in, with the reason on the form
        refused, refused_problems = new_page(browser)
        refused.goto(f"{demo.url}/ui/login?next=/ui/admin")
        refused.fill("#key", secret)
        with refused.expect_response(f"{demo.url}/ui/login") as posted:
            refused.click("button[type=submit]")
        assert posted.value.status == 401
        message = refused.text_content(".login .error[role=alert]") or ""
        assert message == "Sign-in refused: this API key has been revoked"
        assert refused.is_visible("#key")
        refused.context.close()

    # Chromium logs every answer >= 400 of the page's own requests: exactly the ones
    # provoked above on purpose are there, and nothing else
    def failed(status: str, path: str) -> str:
        return (
            "console: Failed to load resource: the server responded with a status of "
            f"{status} ({demo.url}{path})"
        )

    assert problems == [
        failed("400 (Bad Request)", "/v1/admin/tenants"),
        failed("400 (Bad Request)", "/v1/admin/tenants/acme"),
    ]
    assert reader_problems == [
        failed("403 (Forbidden)", "/v1/admin/keys"),
        failed("403 (Forbidden)", "/ui/admin"),
    ]
    assert refused_problems == [failed("401 (Unauthorized)", "/ui/login")]
    assert (phone_problems, tenant_admin_problems) == ([], [])
    assert (tmp_path / "admin-dark.png").stat().st_size > 10_000
