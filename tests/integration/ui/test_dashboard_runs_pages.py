"""The Runs pages of the dashboard: served only with a session, each with its own script
and the API's base URL; their static modules are served as JavaScript."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from conftest import ADMIN_KEY

PAGES = {
    "/ui/runs": "/ui/static/runs.js",
    "/ui/runs/compare?ids=a,b": "/ui/static/compare.js",
    "/ui/runs/sir-1": "/ui/static/run.js",
    "/ui/runs/no-such-run": "/ui/static/run.js",
}


@pytest.mark.parametrize("path", list(PAGES))
def test_runs_pages_need_a_session(client: TestClient, path: str) -> None:
    answer = client.get(path, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/ui/login?next=/ui/runs")


def test_runs_pages_are_served_with_their_script(client: TestClient) -> None:
    signed = client.post("/ui/login", data={"key": ADMIN_KEY, "next": "/ui/runs"})
    assert signed.status_code == 200
    for path, script in PAGES.items():
        page = client.get(path)
        assert page.status_code == 200, path
        assert page.headers["cache-control"] == "no-store"
        assert f'<script type="module" src="{script}"></script>' in page.text, path
        assert '<meta name="stats-api-base" content="">' in page.text
        assert "{{" not in page.text  # header and base filled in
        assert 'id="error"' in page.text and 'id="theme"' in page.text
    for script in {*PAGES.values(), "/ui/static/runs_common.js"}:
        answer = client.get(script)
        assert answer.status_code == 200, script
        assert answer.headers["content-type"].startswith("text/javascript")
        assert "import " in answer.text
    # the charts of the run and compare pages need Plotly; the list does not
    assert "plotly.min.js" in client.get("/ui/runs/sir-1").text
    assert "plotly.min.js" in client.get("/ui/runs/compare?ids=a,b").text
    assert "plotly.min.js" not in client.get("/ui/runs").text
