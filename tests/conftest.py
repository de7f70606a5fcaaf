"""Shared fixtures: a real service on a temporary data dir, driven in-process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from stats_service.app import create_app
from stats_service.config import Settings
from stats_service.services import Services

ADMIN_KEY = "test-admin-key-0123456789abcdef"


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": tmp_path / "data",
        "admin_key": ADMIN_KEY,
        "log_level": "warning",
        "commit_linger_ms": 0.0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """The real app (real DuckDB file, real writer thread) behind a TestClient."""
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def services(client: TestClient) -> Services:
    services: Services = client.app.state.services  # type: ignore[attr-defined]
    return services


@pytest.fixture
def admin() -> dict[str, str]:
    return {"X-API-Key": ADMIN_KEY}


def new_key(client: TestClient, role: str, tenant: str = "default") -> dict[str, str]:
    response = client.post(
        "/v1/admin/keys", json={"tenant": tenant, "role": role}, headers={"X-API-Key": ADMIN_KEY}
    )
    assert response.status_code == 201, response.text
    return {"X-API-Key": response.json()["key"]}


def new_tenant(client: TestClient, name: str) -> None:
    response = client.post(
        "/v1/admin/tenants", json={"name": name}, headers={"X-API-Key": ADMIN_KEY}
    )
    assert response.status_code == 201, response.text
