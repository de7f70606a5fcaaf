"""InfluxDB line protocol: parsing alone, and end to end over HTTP with InfluxDB 1.6 and
VictoriaMetrics measured in the same run.

Data: TSBS devops cpu-only (`--hosts` hosts, 10 integer fields per line, one line per
host every 10 s, nanosecond timestamps), cut into bodies of `--lines` lines (default
5,000 lines = 50,000 points). A point is one field value.

1. parsing alone: `influx_line.parse` on every body in this process (the per-request
   caches start empty for each body, as in the server), points/s; also the exact reader
   alone and a high-cardinality shape (`--hosts-high` hosts: nearly every line a new
   series in its request).
2. end to end: a real `stats-service serve` (default settings), `POST
   /write?db=bench&precision=n` from `--clients` client processes with `--connections`
   keep-alive connections each; one untimed warm-up round of bodies first (creates the
   series), then the timed bodies. Then the same bodies to InfluxDB 1.6 (`influxd`, temp
   config and data dir, `/write?db=bench&precision=n`) and VictoriaMetrics
   (`/write`), each alone on the machine. Throughput = points acknowledged with 2xx /
   wall time; the service's stored point count is checked in its file afterwards.

    .venv/bin/python benchmarks/bench_influx.py                 # ~3 min
    .venv/bin/python benchmarks/bench_influx.py --profile       # + py-spy of our server

Tools: `apt-get install -y influxdb victoria-metrics` (a missing peer is skipped).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ingest import count_points, split_clients, summarise_run
from common import (
    ADMIN_KEY,
    PySpy,
    Server,
    fmt_int,
    free_port,
    http_json,
    print_machine,
    print_table,
    proc_cpu_s,
    python_thread_names,
    run_clients,
    scrape_metrics,
    thread_cpu_s,
    thread_table,
    tsbs_cpu_bodies,
    wait_http,
    wait_quiet,
    writer_stats,
)
from profile_summary import summarise
from stats_service.ingest.protocols import ParseContext
from stats_service.ingest.protocols.influx_line import parse, parse_exact

TARGET_PPS = 1_000_000
FIELDS = 10
INFLUXD_CONFIG = """\
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"
[meta]
  dir = "{tmp}/meta"
  logging-enabled = false
[data]
  dir = "{tmp}/data"
  wal-dir = "{tmp}/wal"
  query-log-enabled = false
  max-series-per-database = 0
  max-values-per-tag = 0
[monitor]
  store-enabled = false
[subscriber]
  enabled = false
[continuous_queries]
  enabled = false
[http]
  bind-address = "127.0.0.1:{port}"
  log-enabled = false
  max-body-size = 0
"""


# -- data ------------------------------------------------------------------------------


def start_ns(bodies: int, lines: int, hosts: int) -> int:
    """A start such that the data ends an hour before now (never in the future)."""
    span_s = bodies * lines // hosts * 10
    start = int(time.time()) - span_s - 3600
    return (start - start % 60) * 1_000_000_000


def context() -> ParseContext:
    now = time.time_ns() // 1000
    return ParseContext(
        tenant_id=1,
        now_us=now,
        max_future_us=now + 600_000_000,
        precision="ns",
        params={"precision": "ns", "db": "bench"},
    )


# -- 1. parsing alone --------------------------------------------------------------------


def parse_rate(
    bodies: list[bytes],
    run: Callable[[bytes, ParseContext], object],
) -> tuple[float, float, float]:
    """(points/s of the bodies after the first, points/s of the first body, median
    seconds per body after the first). The first body meets cold process-wide caches
    (series keys, entries): like a server's first request from a new fleet."""
    ctx = context()
    times = []
    points = []
    for body in bodies:
        t0 = time.perf_counter()
        batch = run(body, ctx)
        times.append(time.perf_counter() - t0)
        points.append(len(batch))  # type: ignore[arg-type]
    return sum(points[1:]) / sum(times[1:]), points[0] / times[0], statistics.median(times[1:])


def parse_alone(args: argparse.Namespace) -> dict[str, float]:
    n = args.parse_bodies
    bodies = tsbs_cpu_bodies(args.hosts, args.lines, n, start_ns(n, args.lines, args.hosts))
    fast, cold, median_s = parse_rate(bodies, parse)
    exact, _, _ = parse_rate(bodies[:4], parse_exact)
    high_bodies = tsbs_cpu_bodies(
        args.hosts_high, args.lines, 12, start_ns(12, args.lines, args.hosts_high), seed=2
    )
    high, high_cold, _ = parse_rate(high_bodies, parse)
    return {
        "fast": fast,
        "cold": cold,
        "exact": exact,
        "high": high,
        "high_cold": high_cold,
        "median_ms": median_s * 1000,
    }


# -- 2. end to end -----------------------------------------------------------------------


def run_service(
    args: argparse.Namespace, warm: list[bytes], bodies: list[bytes]
) -> dict[str, float]:
    if args.wait_quiet:
        wait_quiet(args.wait_quiet)
    server = Server(keep=args.keep)
    server.start()
    try:
        if "/write" not in _routes(server):
            raise SystemExit("the server has no /write endpoint")
        path = "/write?db=bench&precision=n"
        headers = {"X-API-Key": ADMIN_KEY, "Content-Type": "text/plain; charset=utf-8"}
        warm_res, _ = run_clients(server.url, path, headers, [warm], 2, 300)
        if warm_res[0].errors:
            raise SystemExit(f"warm-up failed: {warm_res[0].first_error}\n{server.log_tail()}")
        cpu0, threads0 = proc_cpu_s(server.pid), thread_cpu_s(server.pid)
        metrics0 = scrape_metrics(server.url)
        spy = None
        if args.profile:
            out = Path(tempfile.mktemp(prefix="influx-", suffix=".txt"))
            spy = PySpy(server.pid, out, duration_s=args.duration + 30).__enter__()
        try:
            results, wall = run_clients(
                server.url,
                path,
                headers,
                split_clients(bodies, args.clients),
                args.connections,
                args.duration,
            )
        finally:
            if spy is not None:
                spy.__exit__(None, None, None)
        cpu1, threads1 = proc_cpu_s(server.pid), thread_cpu_s(server.pid)
        metrics1 = scrape_metrics(server.url)
        names = python_thread_names(server.pid)
        stats = summarise_run(results, wall, args.lines * FIELDS)
        stats.update(writer_stats(metrics0, metrics1, wall))
        stats["server_cores"] = (cpu1 - cpu0) / wall
        if any(r.errors for r in results):
            first = next(r.first_error for r in results if r.first_error)
            print(f"  service errors: {stats['errors']:.0f}, first: {first}", flush=True)
        if names:  # py-spy names the threads
            print("\nour server, CPU by thread (cores, timed phase):")
            print_table(
                ["thread", "cores"],
                [(n, f"{c:.2f}") for n, c in thread_table(threads0, threads1, names, wall)],
            )
        data_dir = server.data_dir
        assert data_dir is not None
        server.stop()
        stats["stored"] = count_points(data_dir / "stats.duckdb")
        stats["expected"] = (len(warm) + stats["ok"]) * args.lines * FIELDS
        if spy is not None:
            print(f"\npy-spy profile of our server: {spy.out}")
            print(summarise(spy.out.read_text()))
        return stats
    finally:
        server.stop()
        server.cleanup()


def _routes(server: Server) -> set[str]:
    status, _ = http_json("POST", server.url + "/write?db=bench", {"X-API-Key": ADMIN_KEY}, b"")
    return {"/write"} if status in (204, 400) else set()


def run_peer(
    name: str,
    cmd: list[str],
    url: str,
    tmp: Path,
    health: str,
    setup: Callable[[], None],
    path: str,
    args: argparse.Namespace,
    warm: list[bytes],
    bodies: list[bytes],
) -> dict[str, float]:
    if args.wait_quiet:
        wait_quiet(args.wait_quiet)
    with open(tmp / "peer.log", "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_http(url + health, 60, proc)
        setup()
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        warm_res, _ = run_clients(url, path, headers, [warm], 2, 300)
        if warm_res[0].errors:
            raise SystemExit(f"{name} warm-up failed: {warm_res[0].first_error}")
        cpu0 = proc_cpu_s(proc.pid)
        results, wall = run_clients(
            url, path, headers, split_clients(bodies, args.clients), args.connections, args.duration
        )
        cpu1 = proc_cpu_s(proc.pid)
        stats = summarise_run(results, wall, args.lines * FIELDS)
        stats["server_cores"] = (cpu1 - cpu0) / wall
        if any(r.errors for r in results):
            first = next(r.first_error for r in results if r.first_error)
            print(f"  {name} errors: {stats['errors']:.0f}, first: {first}", flush=True)
        return stats
    finally:
        proc.terminate()  # our own child, by its handle
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


def run_influxdb(
    args: argparse.Namespace, warm: list[bytes], bodies: list[bytes]
) -> dict[str, float] | None:
    exe = shutil.which("influxd")
    if exe is None:
        print("influxd not installed (apt-get install influxdb); skipped")
        return None
    tmp = Path(tempfile.mkdtemp(prefix="influxdb-bench-"))
    port = free_port()
    config = tmp / "influxdb.conf"
    config.write_text(INFLUXD_CONFIG.format(tmp=tmp, port=port, rpc_port=free_port()))
    url = f"http://127.0.0.1:{port}"

    def create_db() -> None:
        status, body = http_json("POST", url + "/query?q=CREATE+DATABASE+bench", {}, b"")
        if status != 200:
            raise SystemExit(f"influxd: CREATE DATABASE failed: {status} {body}")

    return run_peer(
        "InfluxDB",
        [exe, "-config", str(config)],
        url,
        tmp,
        "/ping",
        create_db,
        "/write?db=bench&precision=n",
        args,
        warm,
        bodies,
    )


def run_victoria(
    args: argparse.Namespace, warm: list[bytes], bodies: list[bytes]
) -> dict[str, float] | None:
    exe = shutil.which("victoria-metrics")
    if exe is None:
        print("victoria-metrics not installed (apt-get install victoria-metrics); skipped")
        return None
    tmp = Path(tempfile.mkdtemp(prefix="vm-bench-"))
    port = free_port()
    cmd = [
        exe,
        f"-storageDataPath={tmp / 'data'}",
        f"-httpListenAddr=127.0.0.1:{port}",
        "-retentionPeriod=100y",
        "-loggerLevel=ERROR",
    ]
    return run_peer(
        "VictoriaMetrics",
        cmd,
        f"http://127.0.0.1:{port}",
        tmp,
        "/health",
        lambda: None,
        "/write?db=bench",
        args,
        warm,
        bodies,
    )


# -- main ------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hosts", type=int, default=100, help="TSBS scale (hosts)")
    ap.add_argument(
        "--hosts-high", type=int, default=4000, help="hosts of the high-cardinality parse row"
    )
    ap.add_argument("--lines", type=int, default=5000, help="lines per body")
    ap.add_argument("--parse-bodies", type=int, default=60, help="bodies parsed in-process")
    ap.add_argument("--bodies", type=int, default=200, help="timed bodies per HTTP run")
    ap.add_argument("--clients", type=int, default=2, help="client processes")
    ap.add_argument(
        "--connections", type=int, default=4, help="keep-alive connections per client process"
    )
    ap.add_argument("--duration", type=float, default=90.0, help="time limit per HTTP run (s)")
    ap.add_argument(
        "--peers", default="influxdb,victoria-metrics", help="comma-separated peers, or none"
    )
    ap.add_argument("--parse-only", action="store_true", help="skip the HTTP runs")
    ap.add_argument("--profile", action="store_true", help="py-spy record of our server")
    ap.add_argument(
        "--wait-quiet",
        type=float,
        default=60.0,
        help="wait (s, at most) for other processes to go idle before each run",
    )
    ap.add_argument("--keep", action="store_true", help="keep our server's data dir")
    args = ap.parse_args()

    print_machine()
    p = parse_alone(args)
    rows: list[list[str]] = [
        [
            f"parse alone, TSBS cpu {args.hosts} hosts (points/s)",
            "several M",
            fmt_int(p["fast"]),
            f"{p['median_ms']:.1f} ms per {args.lines}-line body (median)",
        ],
        ["  first body (process caches cold)", "", fmt_int(p["cold"]), ""],
        ["parse alone, exact reader only (points/s)", "", fmt_int(p["exact"]), "reference"],
        [
            f"parse alone, TSBS cpu {args.hosts_high} hosts (points/s)",
            "",
            fmt_int(p["high"]),
            f"first body {fmt_int(p['high_cold'])}",
        ],
    ]
    if not args.parse_only:
        t0 = time.perf_counter()
        total = args.bodies + -(-args.hosts // args.lines) + 1
        every = tsbs_cpu_bodies(
            args.hosts, args.lines, total, start_ns(total, args.lines, args.hosts)
        )
        warm, bodies = every[: total - args.bodies], every[total - args.bodies :]
        mb = sum(map(len, bodies)) / 1e6
        print(
            f"\nHTTP: {len(bodies)} bodies x {args.lines * FIELDS} points ({mb:.0f} MB), "
            f"{args.clients} clients x {args.connections} connections, generated in "
            f"{time.perf_counter() - t0:.1f}s",
            flush=True,
        )
        s = run_service(args, warm, bodies)
        verdict = "met" if s["pps"] >= TARGET_PPS else f"missed ({s['pps'] / TARGET_PPS:.0%})"
        rows += [
            ["end to end, our POST /write (points/s)", ">= 1,000,000", fmt_int(s["pps"]), verdict],
            [
                "  requests ok / sent, latency p50 / p99 (ms)",
                "",
                f"{s['ok']:.0f} / {s['requests']:.0f}, {s['p50']:.0f} / {s['p99']:.0f}",
                "",
            ],
            ["  server CPU (cores busy of 2)", "", f"{s['server_cores']:.2f}", ""],
            [
                "  group commits: count, mean ms, points/commit",
                "",
                f"{s['commits']:.0f}, {s['commit_ms']:.1f}, {s['points_per_commit']:,.0f}",
                f"writer committing {s['writer_busy']:.0%} of the time",
            ],
            [
                "  points stored / acknowledged",
                "equal",
                f"{s['stored']:,} / {s['expected']:,.0f}",
                "ok" if s["stored"] == s["expected"] else "MISMATCH",
            ],
        ]
        peers = [x for x in args.peers.split(",") if x and x != "none"]
        for peer in peers:
            run = run_influxdb if peer == "influxdb" else run_victoria
            label = "InfluxDB 1.6" if peer == "influxdb" else "VictoriaMetrics"
            r = run(args, warm, bodies)
            if r is None:
                continue
            rows += [
                [
                    f"{label} POST /write (points/s)",
                    "",
                    fmt_int(r["pps"]),
                    f"ours / {label} = {s['pps'] / r['pps']:.2f}",
                ],
                [
                    f"  {label} p50 / p99 (ms), server cores",
                    "",
                    f"{r['p50']:.0f} / {r['p99']:.0f}, {r['server_cores']:.2f}",
                    "",
                ],
            ]
    print()
    print_table(["metric", "target", "measured", "verdict"], rows)


if __name__ == "__main__":
    main()
