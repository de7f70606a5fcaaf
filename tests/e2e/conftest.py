"""End-to-end fixtures: real `stats-service` processes, always ended after the test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .harness import DatabaseHolder, ServerProcess

ServerFactory = Callable[..., ServerProcess]


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[ServerFactory]:
    """Make (not start) servers; every one of them is ended after the test."""
    made: list[ServerProcess] = []

    def make(data_dir: Path | None = None, **kwargs: Any) -> ServerProcess:
        server = ServerProcess(data_dir or tmp_path / f"data{len(made)}", **kwargs)
        made.append(server)
        return server

    yield make
    for server in made:
        server.close()


@pytest.fixture
def server(server_factory: ServerFactory) -> ServerProcess:
    """A running `stats-service serve` with STATS_ADMIN_KEY=ADMIN_KEY."""
    return server_factory().start()


@pytest.fixture
def hold_database() -> Iterator[Callable[[Path], DatabaseHolder]]:
    """Start helper processes that hold a data dir's database; released after the test."""
    holders: list[DatabaseHolder] = []

    def hold(data_dir: Path) -> DatabaseHolder:
        holders.append(DatabaseHolder(data_dir))
        return holders[-1]

    yield hold
    for holder in holders:
        holder.release()
