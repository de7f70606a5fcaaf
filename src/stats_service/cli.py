"""The `stats-service` command: serve, demo, keys, replay, export, import, db.

Settings come from STATS_* environment variables and .env; flags override them. Admin
commands talk to the running server of the same data dir when there is one (the
embedded database takes one writing process), and open the database directly otherwise.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from .cli_client import ServerClient, local_services
from .config import Settings
from .errors import ServiceError

app = typer.Typer(
    help="StatisticsService: telemetry ingest, storage and statistics.",
    no_args_is_help=True,
    add_completion=False,
)
keys_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")

DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Data directory (STATS_DATA_DIR).")
]


def _settings(**overrides: Any) -> Settings:
    values = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**values)
    except Exception as exc:  # pydantic's message names the setting
        typer.echo(f"error: invalid settings: {exc}", err=True)
        raise typer.Exit(2) from None


def _fail(message: str, code: int = 1) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Listen address (STATS_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (STATS_PORT).")] = None,
    data_dir: DataDir = None,
) -> None:
    """Run the HTTP service."""
    from .server import run

    run(_settings(host=host, port=port, data_dir=data_dir), demo=False)


@app.command()
def demo(
    host: Annotated[str | None, typer.Option(help="Listen address (STATS_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (STATS_PORT).")] = None,
    data_dir: DataDir = None,
) -> None:
    """Run the service with simulated ESP32 boards, a finished SIR run and StatsD on."""
    from .server import run

    run(_settings(host=host, port=port, data_dir=data_dir), demo=True)


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="Tenant the key belongs to.")] = "default",
    role: Annotated[str, typer.Option(help="ingest, read or admin.")] = "read",
    name: Annotated[str | None, typer.Option(help="A label for the key.")] = None,
    device: Annotated[
        str | None,
        typer.Option(help="Make a device token: an ingest key that writes only as this device."),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Create a key and print only the key itself on stdout."""
    settings = _settings(data_dir=data_dir)
    client = ServerClient.find(settings)
    if device is not None and role == "read":
        role = "ingest"  # the default role does not apply to device tokens
    try:
        if client is not None:
            payload = {"tenant": tenant, "role": role, "name": name, "device": device}
            body = client.post("/v1/admin/keys", payload)
            typer.echo(body["key"])
            return
        with local_services(settings) as services:
            _, raw = services.auth.create_key(tenant, role, name, device)
            typer.echo(raw)
    except ServiceError as exc:
        _fail(exc.detail)


@keys_app.command("list")
def keys_list(data_dir: DataDir = None) -> None:
    """List keys (id, tenant, role, prefix, created, revoked); never the secrets."""
    settings = _settings(data_dir=data_dir)
    client = ServerClient.find(settings)
    rows: list[dict[str, Any]]
    if client is not None:
        try:
            rows = client.get("/v1/admin/keys")
        except ServiceError as exc:
            _fail(exc.detail)
            return
    else:
        with local_services(settings) as services:
            rows = [
                {
                    "id": r.id,
                    "tenant": r.tenant,
                    "role": r.role,
                    "prefix": r.prefix,
                    "name": r.name,
                    "created_at": str(r.created_at),
                    "revoked_at": str(r.revoked_at) if r.revoked_at else None,
                }
                for r in services.store.list_keys(None)
            ]
    from rich.console import Console
    from rich.table import Table

    table = Table()
    for column in ("id", "tenant", "role", "prefix"):  # never cut: `keys revoke` needs the id
        table.add_column(column, no_wrap=True, overflow="ignore")
    for column in ("name", "created", "revoked"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r["id"],
            r["tenant"],
            r["role"],
            r["prefix"] + "…",
            r.get("name") or "",
            str(r["created_at"])[:19],
            str(r["revoked_at"] or "")[:19],
        )
    Console().print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (see `keys list`).")],
    data_dir: DataDir = None,
) -> None:
    """Revoke a key; it stops working at once."""
    settings = _settings(data_dir=data_dir)
    client = ServerClient.find(settings)
    try:
        if client is not None:
            client.delete(f"/v1/admin/keys/{key_id}")
        else:
            with local_services(settings) as services:
                services.auth.revoke_key(key_id, None)
    except ServiceError as exc:
        _fail(exc.detail)
    typer.echo(f"revoked {key_id}", err=True)


@app.command()
def replay(
    from_: Annotated[str, typer.Option("--from", help="First day, YYYY-MM-DD (UTC).")],
    to: Annotated[str, typer.Option(help="Last day, YYYY-MM-DD (UTC), inclusive.")],
    tenant: Annotated[str | None, typer.Option(help="Only this tenant.")] = None,
    data_dir: DataDir = None,
) -> None:
    """Rebuild points from the raw archive; never overwrites a stored point."""
    from .ingest.replay import parse_day
    from .ingest.replay import replay as run_replay

    try:
        start, end = parse_day(from_), parse_day(to)
    except ValueError:
        _fail("--from and --to are days like 2024-05-01")
        return
    settings = _settings(data_dir=data_dir)
    client = ServerClient.find(settings)
    if client is not None:
        try:
            body = client.post(
                "/v1/admin/replay",
                {"from": start.isoformat(), "to": end.isoformat(), "tenant": tenant},
            )
        except ServiceError as exc:
            _fail(exc.detail)
            return
    else:
        with local_services(settings) as services:
            report = run_replay(
                services.archive, services.pipeline, services.writer, start, end, tenant
            )
            body = {"batches": report.batches, "points": report.points, "failed": report.failed}
    typer.echo(f"replayed {body['batches']} batches, restored {body['points']} points")
    for line in body["failed"]:
        typer.echo(f"failed: {line}", err=True)


@app.command()
def export(
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write ('-' = stdout).")],
    series: Annotated[str | None, typer.Option(help="Comma-separated series ids.")] = None,
    device: Annotated[str | None, typer.Option(help="Every series of this device.")] = None,
    from_: Annotated[str | None, typer.Option("--from", help="Start (RFC 3339 or now-7d).")] = None,
    to: Annotated[str | None, typer.Option(help="End (RFC 3339 or now).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="csv, json, ndjson or parquet.")] = "csv",
    tenant: Annotated[str, typer.Option(help="Tenant to export from.")] = "default",
    data_dir: DataDir = None,
) -> None:
    """Export points as CSV/JSON/NDJSON/Parquet, streamed."""
    given = {"series": series, "device": device, "from": from_, "to": to, "format": fmt}
    params = {k: v for k, v in given.items() if v is not None}
    settings = _settings(data_dir=data_dir)
    client = ServerClient.find(settings, tenant=tenant)
    sink = sys.stdout.buffer if str(output) == "-" else open(output, "wb")  # noqa: SIM115
    done = False
    try:
        if client is not None:
            for chunk in client.stream("/v1/export", params):
                sink.write(chunk)
        else:
            from .export_local import local_export

            with local_services(settings) as services:
                for chunk in local_export(services, tenant, params):
                    sink.write(chunk)
        done = True
    except ServiceError as exc:
        _fail(exc.detail)
    finally:
        if sink is not sys.stdout.buffer:
            sink.close()
            if not done:
                output.unlink(missing_ok=True)  # no empty or partial file is left behind


import_app = typer.Typer(help="Import history from other systems.", no_args_is_help=True)
app.add_typer(import_app, name="import")


@import_app.command("homeassistant")
def import_homeassistant(
    since: Annotated[str, typer.Option(help="Start: YYYY-MM-DD (UTC), RFC 3339 or now-7d.")],
    until: Annotated[str | None, typer.Option(help="End (excluded); default now.")] = None,
    url: Annotated[
        str | None, typer.Option(help="Home Assistant base URL (STATS_HOMEASSISTANT_URL).")
    ] = None,
    token: Annotated[
        str | None, typer.Option(help="Long-lived access token (STATS_HOMEASSISTANT_TOKEN).")
    ] = None,
    entities: Annotated[
        list[str] | None,
        typer.Option(help="Entity ids or globs such as sensor.* (repeatable); default all."),
    ] = None,
    statistics: Annotated[
        bool, typer.Option("--statistics/--no-statistics", help="Also import hourly statistics.")
    ] = True,
    tenant: Annotated[
        str | None, typer.Option(help="Tenant to write to (STATS_HOMEASSISTANT_TENANT).")
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Import Home Assistant's recorded states and statistics; re-running stores the same."""
    from .ha_import import cli_import

    cli_import(
        _settings(data_dir=data_dir),
        since=since,
        until=until,
        url=url,
        token=token,
        entities=entities or [],
        statistics=statistics,
        tenant=tenant,
    )


db_app = typer.Typer(help="Maintain the database file.", no_args_is_help=True)
app.add_typer(db_app, name="db")


def _mib(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MiB"


@db_app.command("reclaim")
def db_reclaim(
    data_dir: DataDir = None,
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for open reads (none offline).")
    ] = 5.0,
) -> None:
    """Give the database file's free blocks back to the disk (server stopped).

    Copies the database into a new file and swaps it in; a running server does the
    same by itself after compaction runs (reclaim_min_free_mb, reclaim_min_free_ratio).
    """
    from .logs import configure
    from .storage.embedded import EmbeddedStore, StoreLocked

    settings = _settings(data_dir=data_dir)
    configure(settings.log_level, settings.log_format)  # logs go to stderr, never stdout
    if ServerClient.find(settings) is not None:
        _fail("the server is running on this data dir; stop it first (it reclaims by itself)")
    if not settings.db_path.exists():
        _fail(f"no database at {settings.db_path}")
    try:
        store = EmbeddedStore(
            settings.db_path,
            memory_limit=settings.duckdb_memory_limit,
            threads=settings.duckdb_threads,
        )
    except StoreLocked as exc:
        _fail(str(exc))
        return
    try:
        size = store.database_size()
        typer.echo(
            f"before: {_mib(size.file_bytes)}, {size.free_blocks} of {size.total_blocks} "
            f"blocks free ({_mib(size.free_bytes)})"
        )
        report = store.reclaim(busy_timeout_s=timeout)
    finally:
        store.close()
    if not report.done:
        _fail(f"reclaim {report.status}; the file is unchanged")
    typer.echo(
        f"after: {_mib(report.bytes_after)} ({_mib(report.reclaimed_bytes)} given back "
        f"in {report.seconds:.1f} s)"
    )


def _anomaly_commands() -> None:
    from .cli_anomalies import register

    register(app)  # features, train, score


_anomaly_commands()


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
