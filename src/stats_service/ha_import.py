"""`stats-service import homeassistant`: past states and long-term statistics of a Home
Assistant instance, read over its WebSocket API and written day by day.

Each day is one `history/history_during_period` request (every recorded change, as the
live listener's backfill asks for it) and, unless turned off, one
`recorder/statistics_during_period` request (hourly mean/min/max/state/sum/change rows).
Every answer is written as a `homeassistant` body through the same pipeline as live
events: through the running server (POST /v1/ingest/homeassistant with the control
token) when one holds the data dir, else in this process. The Idempotency-Key of a body
is its SHA-256, so a re-run skips identical bodies and rewrites changed ones with the
same points at the same times (last write wins): importing twice stores the same data.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from .cli_client import ServerClient
from .config import Settings
from .ingest.timestamps import format_us
from .listeners.homeassistant import (
    ENTITIES_PER_REQUEST,
    entity_filter,
    history_bodies,
    history_command,
    wanted,
)
from .listeners.homeassistant_client import Session
from .model import Principal
from .services import Services

DAY_US = 86_400 * 1_000_000
STATISTICS_PER_REQUEST = 100
STATISTIC_TYPES = ["change", "max", "mean", "min", "state", "sum"]


class Sink(Protocol):
    """Where bodies go: returns the points written (0 for a body already stored)."""

    async def write(self, body: bytes, key: str) -> int: ...


class PipelineSink:
    """In this process, straight into the pipeline (no server runs on the data dir)."""

    def __init__(self, services: Services, principal: Principal) -> None:
        self._services = services
        self._principal = principal

    async def write(self, body: bytes, key: str) -> int:
        result = await self._services.pipeline.ingest(
            self._principal, "homeassistant", body, idempotency_key=key
        )
        return 0 if result.replayed else result.points


class ServerSink:
    """Through the running server of the data dir, over loopback with its control token."""

    def __init__(self, client: ServerClient) -> None:
        self._client = client

    async def write(self, body: bytes, key: str) -> int:
        # the body as Home Assistant sent it; a retry is told by a header
        headers = {"Idempotency-Key": key, "Content-Type": "application/json"}
        answer, answered = self._client.post_bytes(
            "/v1/ingest/homeassistant", body, headers
        )  # raises ServiceError on 4xx/5xx
        if answered.get("Idempotent-Replayed") == "true":
            return 0
        return int(answer.get("points", 0)) if isinstance(answer, dict) else 0


@dataclass(frozen=True, slots=True)
class ImportPlan:
    url: str
    token: str
    since_us: int
    until_us: int
    entities: str = ""  # comma-separated glob patterns; empty: every entity
    statistics: bool = True


@dataclass(slots=True)
class ImportReport:
    days: int = 0
    history_points: int = 0
    statistics_points: int = 0
    bodies: int = 0
    skipped: int = 0  # bodies already stored by an earlier run
    entities: int = 0
    statistic_ids: int = 0
    failed: list[str] = field(default_factory=list)


Progress = Callable[[str, int, int], None]  # (what comes next, points so far, steps done)


def body_key(body: bytes) -> str:
    return "homeassistant-import-" + hashlib.sha256(body).hexdigest()[:40]


def days(since_us: int, until_us: int) -> Iterator[tuple[int, int]]:
    start = since_us
    while start < until_us:
        end = min(start + DAY_US, until_us)
        yield start, end
        start = end


def steps(plan: ImportPlan) -> int:
    """How many requests the import makes, for a progress bar."""
    count = sum(1 for _ in days(plan.since_us, plan.until_us))
    return count * (2 if plan.statistics else 1)


async def run_import(
    plan: ImportPlan, sink: Sink, progress: Progress | None = None
) -> ImportReport:
    report = ImportReport()
    patterns = entity_filter(plan.entities)
    exact = [p for p in patterns if not any(c in p for c in "*?[")]
    session = await Session.open(
        plan.url, plan.token, on_event=lambda raw, msg: None, on_invalid=lambda why: None
    )
    try:
        states = (await session.command({"type": "get_states"})).result or []
        ids = [s.get("entity_id") for s in states if isinstance(s, dict)]
        entities = sorted(
            {i for i in ids if isinstance(i, str) and wanted(i, patterns)} | set(exact)
        )
        metas: list[dict[str, Any]] = []
        if plan.statistics:
            listed = (await session.command({"type": "recorder/list_statistic_ids"})).result
            metas = [
                m
                for m in listed or []
                if isinstance(m, dict) and wanted(str(m.get("statistic_id")), patterns)
            ]
        report.entities, report.statistic_ids = len(entities), len(metas)

        async def write(body: bytes) -> int:
            points = await sink.write(body, body_key(body))
            report.bodies += 1
            if not points:
                report.skipped += 1
            return points

        done = 0

        def tell(what: str) -> None:
            if progress:
                progress(what, report.history_points + report.statistics_points, done)

        for start, end in days(plan.since_us, plan.until_us):
            report.days += 1
            day = format_us(start)[:10]
            tell(f"history {day}")
            for i in range(0, len(entities), ENTITIES_PER_REQUEST):
                answer = await session.command(
                    history_command(start, end, entities[i : i + ENTITIES_PER_REQUEST]),
                    timeout=300,
                )
                for body in history_bodies(answer):
                    report.history_points += await write(body)
            done += 1
            if plan.statistics:
                tell(f"statistics {day}")
                report.statistics_points += await _statistics(session, metas, start, end, write)
                done += 1
        tell("done")
    finally:
        await session.close()
    return report


async def _statistics(
    session: Session,
    metas: list[dict[str, Any]],
    start: int,
    end: int,
    write: Callable[[bytes], Awaitable[int]],
) -> int:
    points = 0
    for i in range(0, len(metas), STATISTICS_PER_REQUEST):
        group = metas[i : i + STATISTICS_PER_REQUEST]
        answer = await session.command(
            {
                "type": "recorder/statistics_during_period",
                "start_time": format_us(start),
                "end_time": format_us(end),
                "statistic_ids": [m["statistic_id"] for m in group],
                "period": "hour",
                "types": STATISTIC_TYPES,
            },
            timeout=300,
        )
        if not answer.result:
            continue
        # the units come from the statistics' metadata: it travels in the same body
        units = orjson.dumps({"type": "result", "success": True, "result": group})
        points += await write(b"[" + units + b"," + answer.raw + b"]")
    return points


# -- the command line ------------------------------------------------------------------


def _time(param: str, text: str, now_us: int) -> int:
    from .query.params import parse_time

    value = text.strip()
    if len(value) == 10 and value[4] == "-" and value[7] == "-":
        value += "T00:00:00Z"  # a day: its start in UTC
    return parse_time(param, value, now_us)


def cli_import(
    settings: Settings,
    *,
    since: str,
    until: str | None,
    url: str | None,
    token: str | None,
    entities: list[str],
    statistics: bool,
    tenant: str | None,
) -> None:
    """What `stats-service import homeassistant` does; exits with a message on errors."""
    import asyncio
    import time

    import typer
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bar

    from .cli_client import local_services
    from .errors import ServiceError
    from .listeners.homeassistant_client import HomeAssistantError

    def fail(message: str, code: int = 1) -> None:
        typer.echo(f"error: {message}", err=True)
        raise typer.Exit(code)

    url = url or settings.homeassistant_url
    token = token or settings.homeassistant_token
    tenant = tenant or settings.homeassistant_tenant
    if not url or not token:
        fail("give --url and --token (or STATS_HOMEASSISTANT_URL / STATS_HOMEASSISTANT_TOKEN)", 2)
        return
    now_us = time.time_ns() // 1000
    try:
        since_us = _time("since", since, now_us)
        until_us = _time("until", until, now_us) if until else now_us
    except ServiceError as exc:
        fail(exc.detail, 2)
        return
    if since_us >= until_us:
        fail("--since must lie before --until", 2)
    plan = ImportPlan(url, token, since_us, until_us, ",".join(entities), statistics)
    console = Console(stderr=True)
    columns = (
        TextColumn("{task.description:<22}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[points]} points"),
        TimeElapsedColumn(),
    )

    async def run(sink: Sink) -> ImportReport:
        with Bar(*columns, console=console) as bar:
            task = bar.add_task("connecting", total=steps(plan), points=0)

            def progress(what: str, points: int, done: int) -> None:
                bar.update(task, description=what, completed=done, points=points)

            return await run_import(plan, sink, progress)

    client = ServerClient.find(settings, tenant=tenant)
    try:
        if client is not None:
            try:
                report = asyncio.run(run(ServerSink(client)))
            finally:
                client.close()
            route = "through the running server"
        else:
            with local_services(settings) as services:
                sink = PipelineSink(services, services.auth.principal_for(tenant))
                report = asyncio.run(run(sink))
            route = f"into {settings.data_dir}"
    except HomeAssistantError as exc:
        fail(f"Home Assistant: {exc}")
        return
    except ServiceError as exc:
        fail(exc.detail)
        return
    typer.echo(
        f"imported {report.days} days of {report.entities} entities and "
        f"{report.statistic_ids} statistics {route} (tenant {tenant}): "
        f"{report.history_points} history points, {report.statistics_points} statistics "
        f"points, {report.bodies} requests ({report.skipped} already stored)"
    )
