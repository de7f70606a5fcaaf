"""Run the service under uvicorn (and, for `demo`, the simulators beside it)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

import structlog
import uvicorn

from .app import create_app
from .cli_client import new_control_token, remove_server_file, write_server_file
from .config import Settings
from .logs import configure

log = structlog.get_logger(__name__)
# How long a thread may hold the GIL while another waits for it (CPython's default is
# 5 ms). The single writer gives the GIL up at every DuckDB statement and numpy call;
# with parse threads busy, each hand-back cost it up to 5 ms (a group commit took 3-6x
# its own time). 0.5 ms keeps the writer's waits short at little cost to the parsers.
GIL_SWITCH_INTERVAL_S = 0.0005


def _print_admin_key(key: str) -> None:
    print(
        "\n  Admin API key of tenant 'default' (shown once, store it now):\n"
        f"    {key}\n",
        file=sys.stdout,
        flush=True,
    )


def run(settings: Settings, *, demo: bool) -> None:
    configure(settings.log_level, settings.log_format)
    if demo:
        from .demo import with_statsd

        settings = with_statsd(settings)  # the demo shows StatsD too (when its port is free)
    token = new_control_token()
    app = create_app(
        settings,
        control_token=token,
        on_admin_key=_print_admin_key,
        on_stopped=lambda: remove_server_file(settings),
        anonymous_default=demo,  # the stats API's curl examples work without a key
    )
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=30,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(_serve(server, settings, token, demo))


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed (it comes with uvicorn[standard]): less
    time per request on the loop thread. `asyncio.run` alone would bypass uvicorn's choice."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - an install without uvicorn[standard]
        return None
    return uvloop.new_event_loop


async def _serve(server: uvicorn.Server, settings: Settings, token: str, demo: bool) -> None:
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            await task
            raise SystemExit(1)
        await asyncio.sleep(0.05)
    sockets = [s for srv in server.servers for s in srv.sockets]
    port = sockets[0].getsockname()[1] if sockets else settings.port
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host  # noqa: S104
    url = f"http://{host}:{port}"
    write_server_file(settings, url, token)
    print(f"StatisticsService listening on {url} (data in {settings.data_dir})", flush=True)
    sims: asyncio.Task[None] | None = None
    if demo:
        from .demo import run_demo

        sims = asyncio.create_task(run_demo(url, token, settings))
    try:
        while not task.done():
            if server.should_exit and sims is not None:
                sims.cancel()  # stop the simulators before the writer drains
            await asyncio.wait({task}, timeout=0.1)
        await task
    finally:
        if sims is not None:
            sims.cancel()
        remove_server_file(settings)
