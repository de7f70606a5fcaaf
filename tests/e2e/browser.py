"""Headless Chromium (Debian's `chromium`, driven by Playwright; never a downloaded
browser) for the dashboard tests: a page that records console errors, failed requests
and page errors, and signs in with a key.

    with open_browser() as browser:
        page, problems = new_page(browser)
        sign_in(page, demo.url, ADMIN_KEY)
        ...
        assert problems == []
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

CHROMIUM = Path(os.environ.get("STATS_TEST_CHROMIUM", "/usr/bin/chromium"))
WAIT_MS = 20_000
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


@contextmanager
def open_browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():  # a failure, never a skip: scripts/services.sh installs it
        pytest.fail(f"no chromium at {CHROMIUM}: apt-get install -y chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            yield browser
        finally:
            browser.close()


def new_page(
    browser: Browser, viewport: dict[str, int] | None = None, **context: object
) -> tuple[Page, list[str]]:
    """A page in a fresh context (its own cookies) and the list its problems go to:
    console errors and uncaught page errors. Downloads are accepted."""
    ctx = browser.new_context(viewport=viewport or DESKTOP, accept_downloads=True, **context)  # type: ignore[arg-type]
    page = ctx.new_page()
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(f"console: {message.text} ({message.location.get('url', '')})")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    return page, problems


def sign_in(page: Page, base_url: str, key: str, next_path: str = "/ui/") -> None:
    """The sign-in form with `key`; returns on the page it leads to."""
    page.goto(f"{base_url}/ui/login?next={next_path}")
    page.fill("#key", key)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(re.escape(next_path) + "$"))
