"""How the CLI reaches the data: the running server of the data dir, or the file itself.

A serving process writes `<data_dir>/server.json` (mode 0600) with its URL, PID and a
control token that acts as a local super-admin key; it is removed on shutdown. Anyone
who can read it can read the database file too, so it grants nothing new.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import typer

from .config import Settings
from .errors import ServiceError
from .logs import configure
from .services import Services
from .storage.cold_objects import ColdObjects
from .storage.embedded import StoreLocked

CONTROL_HEADER = "X-API-Key"


def new_control_token() -> str:
    return "ctl_" + secrets.token_urlsafe(32)


def write_server_file(settings: Settings, url: str, token: str) -> None:
    path = settings.server_file
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"url": url, "pid": os.getpid(), "token": token}, fh)


def remove_server_file(settings: Settings) -> None:
    try:
        info = json.loads(settings.server_file.read_text())
        if info.get("pid") == os.getpid():
            settings.server_file.unlink()
    except (OSError, ValueError):
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ServerClient:
    """Admin calls to the running server over loopback with its control token."""

    def __init__(self, url: str, token: str, tenant: str | None = None) -> None:
        headers = {CONTROL_HEADER: token}
        if tenant:
            headers["X-Tenant"] = tenant
        self._client = httpx.Client(base_url=url, headers=headers, timeout=600)

    @classmethod
    def find(cls, settings: Settings, tenant: str | None = None) -> ServerClient | None:
        try:
            info = json.loads(settings.server_file.read_text())
        except (OSError, ValueError):
            return None
        if not _alive(int(info.get("pid", 0))):
            return None
        client = cls(info["url"], info["token"], tenant)
        try:
            client._client.get("/v1/health", timeout=5).raise_for_status()
        except httpx.HTTPError:
            typer.echo(
                f"error: a server (pid {info['pid']}) holds {settings.data_dir} but does not "
                f"answer at {info['url']}; wait for it to start or stop it, then retry",
                err=True,
            )
            raise typer.Exit(3) from None
        return client

    def _check(self, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise ServiceError(f"{response.status_code}: {detail}")
        return response.json() if response.content else None

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise self._lost(exc) from None
        return self._check(response)

    def _lost(self, exc: httpx.HTTPError) -> ServiceError:
        return ServiceError(
            f"the server at {self._client.base_url} stopped answering ({exc!r}); "
            "check that it still runs, then retry"
        )

    def get(self, path: str) -> Any:
        return self._request("GET", path)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self._request("POST", path, json=body)

    def delete(self, path: str) -> Any:
        return self._request("DELETE", path)

    def post_bytes(
        self, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[Any, httpx.Headers]:
        """POST raw bytes (a wire format as received); the answer and its headers."""
        try:
            response = self._client.post(path, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise self._lost(exc) from None
        return self._check(response), response.headers

    def close(self) -> None:
        self._client.close()

    def stream(self, path: str, params: dict[str, str]) -> Iterator[bytes]:
        try:
            with self._client.stream("GET", path, params=params) as response:
                if response.status_code >= 400:
                    response.read()
                    self._check(response)
                yield from response.iter_bytes()
        except httpx.HTTPError as exc:
            raise self._lost(exc) from None


@contextmanager
def local_services(settings: Settings) -> Iterator[Services]:
    """Open the data dir directly (no server is running on it)."""
    configure(settings.log_level, settings.log_format)  # logs go to stderr, never stdout
    try:
        services = Services.build(settings)
    except StoreLocked as exc:
        typer.echo(
            f"error: {exc}. Its server.json is missing or stale, so the command cannot go "
            "through it: stop that process or run the command where it runs.",
            err=True,
        )
        raise typer.Exit(3) from None
    objects = ColdObjects.from_settings(settings)  # cold files in a bucket stay readable
    if objects is not None:
        objects.attach(services.store)
    services.start()
    try:
        generated = services.auth.bootstrap()
        if generated is not None:
            typer.echo(f"Admin API key of tenant 'default' (shown once): {generated}", err=True)
        yield services
    finally:
        services.stop()
