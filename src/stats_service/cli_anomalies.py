"""`stats-service features|train|score`: the anomaly scoring pipeline from the shell.

Like the other admin commands they go through the running server of the data dir when
there is one (train and score become tasks, followed with a progress bar until they
finish) and open the database file otherwise (the pipeline runs in this process, with
a progress bar per series). Exit codes: 0 done (also: no windows), 1 failed (unknown
series or tenant, no trained model, ...), 2 invalid options, 3 the data dir is held
by a process that does not answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from .cli_client import ServerClient, local_services
from .config import Settings
from .errors import BadRequest, ServiceError

Tenant = Annotated[str, typer.Option(help="Tenant whose series these are.")]
SeriesOpt = Annotated[str | None, typer.Option("--series", help="Series ids, comma-separated.")]
DeviceOpt = Annotated[str | None, typer.Option(help="Every series of this device.")]
MetricOpt = Annotated[str | None, typer.Option(help="Every series of this metric.")]
FromOpt = Annotated[
    str | None, typer.Option("--from", help="Start (RFC 3339, epoch, now-7d); default to-1d.")
]
ToOpt = Annotated[str | None, typer.Option(help="End, excluded (RFC 3339, now); default now.")]
WindowOpt = Annotated[str, typer.Option(help="Window width: 60s, 5m, 1h...")]

DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Data directory (STATS_DATA_DIR).")
]
TASK_POLL_S = 0.2


def _fail(message: str, code: int = 1) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _code(exc: ServiceError) -> int:
    """2 for invalid options (a 400, local or from the server), else 1."""
    return 2 if isinstance(exc, BadRequest) or exc.detail.startswith("400:") else 1


def _bar(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def _selection(
    series: str | None, device: str | None, metric: str | None, from_: str | None, to: str | None
) -> dict[str, Any]:
    if series is None and device is None and metric is None:
        _fail("choose series: --series <ids>, --device <name> and/or --metric <name>", 2)
    if series is not None and (device is not None or metric is not None):
        _fail("give either --series or --device/--metric, not both", 2)
    body: dict[str, Any] = {}
    if series is not None:
        body["series"] = [s.strip() for s in series.split(",") if s.strip()]
    if device is not None:
        body["device"] = device
    if metric is not None:
        body["metric"] = metric
    if from_ is not None:
        body["from"] = from_
    if to is not None:
        body["to"] = to
    return body


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except ServiceError as exc:
        _fail(exc.detail, _code(exc))


def _local_ids(services: Any, tenant: str, body: dict[str, Any]) -> tuple[int, list[int], Any]:
    """(tenant id, series ids, time range) for the pipeline in this process."""
    from .query.params import parse_series_ids, time_range
    from .query.series import SeriesFilter, select_series

    tenant_id = services.auth.tenant(tenant).id
    span = time_range(body.get("from"), body.get("to"), time.time_ns() // 1000)
    ids = parse_series_ids("series", ",".join(body["series"])) if "series" in body else None
    where = SeriesFilter(device=body.get("device"), metric=body.get("metric"))
    with services.store.reader() as cur:
        found = select_series(cur, tenant_id, ids, where)
    return tenant_id, [s.id for s in found], span


def _series_progress(bar: Progress, label: str) -> Callable[[int, int], None]:
    task = bar.add_task(label, total=None)

    def report(done: int, total: int) -> None:
        bar.update(task, completed=done, total=max(total, 1))

    return report


def _follow(client: ServerClient, task: dict[str, Any], label: str, console: Console) -> Any:
    """Poll GET /tasks/{id} with a progress bar; the result, or exit 1 with its error."""
    with _bar(console) as bar:
        shown = bar.add_task(label, total=1.0)
        while task["state"] not in ("SUCCESS", "FAILURE"):
            bar.update(shown, completed=float(task.get("progress") or 0.0))
            time.sleep(TASK_POLL_S)
            task = client.get(f"/tasks/{task['task_id']}")
        bar.update(shown, completed=1.0)
    if task["state"] == "FAILURE":
        _fail(str(task.get("error") or "the task failed"))
    return task["result"]


# -- the commands ------------------------------------------------------------------------


def features(
    tenant: Tenant = "default",
    series: SeriesOpt = None,
    device: DeviceOpt = None,
    metric: MetricOpt = None,
    from_: FromOpt = None,
    to: ToOpt = None,
    window: WindowOpt = "300s",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Window features (count, mean, std, median, MAD, min, max, range, ...) per series."""
    settings = _settings(data_dir)
    body = _selection(series, device, metric, from_, to)
    console = Console(stderr=True)
    client = ServerClient.find(settings, tenant=tenant)
    with _errors():
        if client is not None:
            query = {k: (",".join(v) if isinstance(v, list) else v) for k, v in body.items()}
            result = client.get("/v1/anomalies/features?" + urlencode(query | {"window": window}))
        else:
            from .analytics import pipeline
            from .query.params import parse_duration

            window_us = parse_duration("window", window)
            with local_services(settings) as services, _bar(console) as bar:
                tenant_id, ids, span = _local_ids(services, tenant, body)
                result = pipeline.features(
                    services.store,
                    tenant_id,
                    ids,
                    span.from_us,
                    span.to_us,
                    window_us=window_us,
                    max_points=settings.analysis_max_points,
                    progress=_series_progress(bar, "features"),
                )
    if as_json:
        typer.echo(orjson.dumps(result).decode())
    out = Console()
    for entry in result["series"]:
        rows = entry["windows"]
        if not rows:
            console.print(
                f"no windows: series {entry['series_id']} ({entry['label']}) has no points "
                "in the range"
            )
            continue
        if as_json:
            continue
        table = Table(title=f"{entry['label']} (series {entry['series_id']}), {window} windows")
        names = ("count", "mean", "std", "median", "mad", "min", "max", "range")
        table.add_column("window start (UTC)", no_wrap=True)
        for name in names:
            table.add_column(name, justify="right")
        for row in rows:
            table.add_row(row["window_start"][:19], *(_fmt(row.get(n)) for n in names))
        out.print(table)


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def train(
    tenant: Tenant = "default",
    series: SeriesOpt = None,
    device: DeviceOpt = None,
    metric: MetricOpt = None,
    from_: FromOpt = None,
    to: ToOpt = None,
    window: WindowOpt = "300s",
    detector: Annotated[str | None, typer.Option(help="Detector (default: ensemble).")] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(help="A detector parameter, name=value (repeatable): --param window=96."),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Fit a detector on each series' points and save the model (again: replaces it)."""
    from .analytics.detectors import DEFAULT

    settings = _settings(data_dir)
    body = _selection(series, device, metric, from_, to)
    params: dict[str, Any] = {}
    for item in param or []:
        name, sep, text = item.partition("=")
        if not sep or not name:
            _fail(f"--param {item!r}: write name=value", 2)
        try:
            params[name] = orjson.loads(text)
        except orjson.JSONDecodeError:
            params[name] = text
    chosen = detector or DEFAULT
    console = Console(stderr=True)
    client = ServerClient.find(settings, tenant=tenant)
    with _errors():
        if client is not None:
            task = client.post(
                "/v1/anomalies/train",
                body | {"window": window, "detector": chosen, "params": params},
            )
            result = _follow(client, task, f"training {chosen}", console)
        else:
            from .analytics import pipeline
            from .query.params import parse_duration

            window_us = parse_duration("window", window)
            with local_services(settings) as services, _bar(console) as bar:
                tenant_id, ids, span = _local_ids(services, tenant, body)
                result = pipeline.train(
                    services.store,
                    settings.model_path,
                    tenant_id,
                    ids,
                    span.from_us,
                    span.to_us,
                    detector=chosen,
                    params=params,
                    window_us=window_us,
                    max_points=settings.analysis_max_points,
                    progress=_series_progress(bar, f"training {chosen}"),
                )
    for model in result["models"]:
        metrics = model["metrics"]
        typer.echo(
            f"trained {model['detector']} for {model.get('label', '')} (series "
            f"{model['series_id']}) on {metrics['points']} points "
            f"{model['train_from'][:19]}..{model['train_to'][:19]}: {model['path']}"
        )


def score(
    tenant: Tenant = "default",
    series: SeriesOpt = None,
    device: DeviceOpt = None,
    metric: MetricOpt = None,
    from_: FromOpt = None,
    to: ToOpt = None,
    detector: Annotated[
        str | None, typer.Option(help="Use this detector's model (default: the newest).")
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Score the closed windows of each series with its trained model (upserted)."""
    settings = _settings(data_dir)
    body = _selection(series, device, metric, from_, to)
    console = Console(stderr=True)
    client = ServerClient.find(settings, tenant=tenant)
    with _errors():
        if client is not None:
            task = client.post("/v1/anomalies/score", body | {"detector": detector})
            result = _follow(client, task, "scoring", console)
        else:
            from .analytics import pipeline

            with local_services(settings) as services, _bar(console) as bar:
                tenant_id, ids, span = _local_ids(services, tenant, body)
                result = pipeline.score(
                    services.store,
                    tenant_id,
                    ids,
                    span.from_us,
                    span.to_us,
                    detector=detector,
                    max_points=settings.analysis_max_points,
                    progress=_series_progress(bar, "scoring"),
                )
    typer.echo(
        f"scored {result['windows']} windows ({result['points']} points) of "
        f"{result['series']} series; {result['alarms']} new anomalies"
    )
    if result.get("untrained"):
        typer.echo(f"not scored (no model): series {', '.join(result['untrained'])}", err=True)
    if result["windows"] == 0:
        typer.echo("no closed window with points in the range", err=True)


def _settings(data_dir: Path | None) -> Settings:
    from .cli import _settings as settings_of

    return settings_of(data_dir=data_dir)


def register(app: typer.Typer) -> None:
    app.command("features")(features)
    app.command("train")(train)
    app.command("score")(score)
