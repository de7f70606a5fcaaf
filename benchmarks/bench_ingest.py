"""Bulk HTTP ingest: POST /v1/ingest batches from client processes, points/s.

Shape (TSBS devops "cpu"-like): `--hosts` devices x `--fields` values; every request is
one device with `--per-request` timestamps x `--fields` values (default 500 x 10 =
5,000 points). Requests go out in time order (round r = every host's next window) from
`--clients` processes with `--connections` keep-alive connections each. Bodies are
pre-serialised before the clock starts. One untimed warm-up round creates the series.

    .venv/bin/python benchmarks/bench_ingest.py                 # defaults, ~1-2 min
    .venv/bin/python benchmarks/bench_ingest.py --profile       # + py-spy of the server
    .venv/bin/python benchmarks/bench_ingest.py --peer victoria-metrics

A point is one value. Throughput = points acknowledged with 2xx / wall time. After the
run the server is stopped cleanly and the stored point count is checked in the file.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    ClientResult,
    PySpy,
    Server,
    Shape,
    fmt_int,
    free_port,
    json_bodies,
    line_bodies,
    percentile,
    print_machine,
    print_table,
    proc_cpu_s,
    python_thread_names,
    run_clients,
    scrape_metrics,
    start_us_for,
    thread_cpu_s,
    thread_table,
    wait_http,
    wait_quiet,
    writer_stats,
)
from profile_summary import summarise

TARGET_PPS = 1_000_000


def split_clients(bodies: list[bytes], clients: int) -> list[list[bytes]]:
    return [bodies[i::clients] for i in range(clients)]


def summarise_run(results: list[ClientResult], wall: float,
                  points_per_req: int) -> dict[str, float]:
    ok = sum(r.status.get(202, 0) + r.status.get(200, 0) + r.status.get(204, 0) for r in results)
    lat = [x for r in results for x in r.latencies]
    return {
        "requests": sum(r.requests for r in results),
        "ok": ok,
        "errors": sum(r.errors for r in results),
        "wall": wall,
        "pps": ok * points_per_req / wall if wall else 0.0,
        "rps": ok / wall if wall else 0.0,
        "p50": percentile(lat, 50) * 1000,
        "p99": percentile(lat, 99) * 1000,
    }


def count_points(db: Path) -> int:
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        row = con.execute("SELECT count(*) FROM points").fetchone()
        return int(row[0]) if row else 0
    finally:
        con.close()


def run_service(args: argparse.Namespace, shape: Shape) -> dict[str, float]:
    rounds = args.rounds
    start_us = start_us_for(shape, rounds + 1)
    t0 = time.perf_counter()
    all_bodies = list(json_bodies(shape, rounds + 1, start_us, seed=args.seed))
    warm, bodies = all_bodies[: shape.hosts], all_bodies[shape.hosts :]
    gen_s = time.perf_counter() - t0
    mb = sum(map(len, bodies)) / 1e6
    print(f"service: {len(bodies)} requests x {shape.points_per_request} points "
          f"({mb:.0f} MB JSON, {mb * 1e6 / len(bodies) / 1024:.0f} KiB/request) "
          f"generated in {gen_s:.1f}s", flush=True)
    env = {
        "STATS_ARCHIVE_ENABLED": "true" if args.archive else "false",
        "STATS_COMMIT_LINGER_MS": str(args.linger_ms),
        "STATS_COMMIT_MAX_POINTS": str(args.commit_max_points),
        "STATS_QUEUE_MAX_POINTS": str(args.queue_max_points),
    }
    if args.wait_quiet:
        wait_quiet(args.wait_quiet)
    server = Server(env=env, keep=args.keep, patches=args.patches)
    server.start()
    try:
        headers = server.headers
        path = "/v1/ingest?precision=ms" if args.precision_param else "/v1/ingest"
        warm_res, _ = run_clients(server.url, path, headers, [warm], 4, 120)
        if warm_res[0].errors:
            raise SystemExit(f"warm-up failed: {warm_res[0].first_error}\n{server.log_tail()}")
        cpu0 = proc_cpu_s(server.pid)
        threads0 = thread_cpu_s(server.pid)
        metrics0 = scrape_metrics(server.url)
        child0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        spy = None
        if args.profile:
            out = Path(args.profile_out or tempfile.mktemp(prefix="ingest-", suffix=".txt"))
            spy = PySpy(server.pid, out, duration_s=args.duration + 30,
                        gil=args.profile_mode == "gil").__enter__()
        try:
            results, wall = run_clients(server.url, path, headers,
                                        split_clients(bodies, args.clients),
                                        args.connections, args.duration)
        finally:
            if spy is not None:
                spy.__exit__(None, None, None)
        cpu1 = proc_cpu_s(server.pid)
        threads1 = thread_cpu_s(server.pid)
        metrics1 = scrape_metrics(server.url)
        child1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        names = python_thread_names(server.pid)
        stats = summarise_run(results, wall, shape.points_per_request)
        stats.update(writer_stats(metrics0, metrics1, wall))
        print("\nserver CPU by thread (cores, timed phase):")
        print_table(["thread", "cores"], [(n, f"{c:.2f}") for n, c in
                                          thread_table(threads0, threads1, names, wall)])
        stats["server_cores"] = (cpu1 - cpu0) / wall
        stats["client_cores"] = (
            (child1.ru_utime + child1.ru_stime) - (child0.ru_utime + child0.ru_stime)
        ) / wall
        if any(r.errors for r in results):
            first = next(r.first_error for r in results if r.first_error)
            print(f"  errors: {stats['errors']:.0f}, first: {first}", flush=True)
        data_dir = server.data_dir
        assert data_dir is not None
        server.stop()
        if args.verify:
            stored = count_points(data_dir / "stats.duckdb")
            expected = (len(warm) + stats["ok"]) * shape.points_per_request
            stats["stored"] = stored
            stats["expected"] = expected
        if spy is not None:
            print(f"\npy-spy profile of the server ({args.profile_mode}): {spy.out}")
            print(summarise(spy.out.read_text()))
            if args.profile_mode == "all":
                print("\nthe writer thread alone (its wall time, waits for fsync/GIL included):")
                print(summarise(spy.out.read_text(), thread_filter="stats-writer"))
        return stats
    finally:
        server.stop()
        server.cleanup()


def run_victoria(args: argparse.Namespace, shape: Shape) -> dict[str, float] | None:
    exe = shutil.which("victoria-metrics")
    if exe is None:
        print("victoria-metrics not installed (apt-get install victoria-metrics); skipped")
        return None
    rounds = args.rounds
    start_us = start_us_for(shape, rounds + 1)
    all_bodies = list(line_bodies(shape, rounds + 1, start_us, seed=args.seed))
    warm, bodies = all_bodies[: shape.hosts], all_bodies[shape.hosts :]
    tmp = Path(tempfile.mkdtemp(prefix="vm-bench-"))
    port = free_port()
    log = open(tmp / "vm.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [exe, f"-storageDataPath={tmp / 'data'}", f"-httpListenAddr=127.0.0.1:{port}",
         "-retentionPeriod=100y", "-loggerLevel=ERROR"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/health", 30, proc)
        path = "/write?precision=ms"
        headers = {"Content-Type": "text/plain"}
        run_clients(url, path, headers, [warm], 4, 120)
        cpu0 = proc_cpu_s(proc.pid)
        results, wall = run_clients(url, path, headers, split_clients(bodies, args.clients),
                                    args.connections, args.duration)
        cpu1 = proc_cpu_s(proc.pid)
        ok = sum(r.status.get(204, 0) for r in results)
        lat = [x for r in results for x in r.latencies]
        return {
            "requests": sum(r.requests for r in results), "ok": ok,
            "errors": sum(r.errors for r in results), "wall": wall,
            "pps": ok * shape.points_per_request / wall, "rps": ok / wall,
            "p50": percentile(lat, 50) * 1000, "p99": percentile(lat, 99) * 1000,
            "server_cores": (cpu1 - cpu0) / wall,
        }
    finally:
        proc.terminate()  # our own child, by its handle
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", type=int, default=100, help="devices (one per request)")
    ap.add_argument("--fields", type=int, default=10, help="values per timestamp")
    ap.add_argument("--per-request", type=int, default=500, help="timestamps per request")
    ap.add_argument("--rounds", type=int, default=30,
                    help="timed rounds; each round = one request per host")
    ap.add_argument("--duration", type=float, default=60.0,
                    help="stop the timed phase after this many seconds")
    ap.add_argument("--clients", type=int, default=2, help="client processes")
    ap.add_argument("--connections", type=int, default=8, help="connections per client")
    ap.add_argument("--ts-format", default="epoch_ms",
                    choices=["epoch_s", "epoch_ms", "epoch_us", "rfc3339"])
    ap.add_argument("--decimals", type=int, default=2, help="decimals of the values")
    ap.add_argument("--archive", action=argparse.BooleanOptionalAction, default=True,
                    help="raw archive on (the default of the service) or off")
    ap.add_argument("--linger-ms", type=float, default=2.0, help="STATS_COMMIT_LINGER_MS")
    ap.add_argument("--commit-max-points", type=int, default=250_000)
    ap.add_argument("--queue-max-points", type=int, default=2_000_000)
    ap.add_argument("--verify", action=argparse.BooleanOptionalAction, default=True,
                    help="count the stored points after a clean shutdown")
    ap.add_argument("--profile", action="store_true", help="py-spy record the server")
    ap.add_argument("--profile-out", help="where to write the py-spy raw profile")
    ap.add_argument("--profile-mode", choices=["gil", "all"], default="gil",
                    help="gil: sample only the GIL holder (Python CPU time); all: every "
                         "running thread (includes time blocked in native calls)")
    ap.add_argument("--precision-param", action=argparse.BooleanOptionalAction, default=True,
                    help="send ?precision=ms with epoch_ms timestamps")
    ap.add_argument("--peer", choices=["none", "victoria-metrics"], default="none",
                    help="also measure a peer with the same data over Influx line protocol")
    ap.add_argument("--patches", default="",
                    help="what-if experiments (benchmarks/serve_patched.py), e.g. "
                         "switch,devices,usage,lastts,series,uvloop")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=1,
                    help="timed runs (each on a fresh server); the table shows the median")
    ap.add_argument("--wait-quiet", type=float, default=60.0,
                    help="wait up to this many seconds for other processes to go idle")
    ap.add_argument("--keep", action="store_true", help="keep the data dir")
    args = ap.parse_args()
    if args.ts_format != "epoch_ms":
        args.precision_param = False
    shape = Shape(args.hosts, args.fields, args.per_request, 10.0, args.ts_format, args.decimals)
    print_machine()
    print(f"shape: {args.hosts} hosts x {args.fields} fields, {args.per_request} ts/request "
          f"= {shape.points_per_request} points/request; {args.clients} clients x "
          f"{args.connections} connections; archive={'on' if args.archive else 'off'}; "
          f"ts={args.ts_format}"
          + (f"; WHAT-IF patches: {args.patches}" if args.patches else ""), flush=True)
    runs = []
    for i in range(args.repeat):
        runs.append(run_service(args, shape))
        if args.repeat > 1:
            print(f"run {i + 1}/{args.repeat}: {fmt_int(runs[-1]['pps'])} points/s", flush=True)
    runs.sort(key=lambda r: r["pps"])
    s = runs[len(runs) // 2]
    peer = run_victoria(args, shape) if args.peer == "victoria-metrics" else None
    rows: list[list[object]] = [
        ["bulk ingest throughput (points/s)", f">= {fmt_int(TARGET_PPS)}", fmt_int(s["pps"]),
         "met" if s["pps"] >= TARGET_PPS else f"missed ({s['pps'] / TARGET_PPS:.0%})"],
        *([["all runs (points/s)", "", " / ".join(fmt_int(r["pps"]) for r in runs), ""]]
          if len(runs) > 1 else []),
        [f"requests/s ({shape.points_per_request:,}-point bodies)", "", f"{s['rps']:.1f}", ""],
        ["request latency p50 / p99 (ms)", "", f"{s['p50']:.0f} / {s['p99']:.0f}", ""],
        ["requests ok / sent / errors", "", f"{s['ok']:.0f} / {s['requests']:.0f} / "
         f"{s['errors']:.0f}", ""],
        ["server CPU (cores busy of 2)", "", f"{s['server_cores']:.2f}", ""],
        ["group commits: count, mean ms, points/commit", "",
         f"{s['commits']:.0f}, {s['commit_ms']:.1f}, {fmt_int(s['points_per_commit'])}", ""],
        ["writer thread busy committing (share of wall)", "", f"{s['writer_busy']:.0%}", ""],
        ["client CPU (cores busy)", "", f"{s['client_cores']:.2f}", ""],
        ["wall time of timed phase (s)", "", f"{s['wall']:.1f}", ""],
    ]
    if "stored" in s:
        ok = s["stored"] == s["expected"]
        rows.append(["points stored / acknowledged", "equal",
                     f"{fmt_int(s['stored'])} / {fmt_int(s['expected'])}",
                     "ok" if ok else "MISMATCH"])
    if peer is not None:
        rows.append(["VictoriaMetrics /write points/s", "", fmt_int(peer["pps"]),
                     f"service / VM = {s['pps'] / peer['pps']:.2f}"])
        rows.append(["VictoriaMetrics p50 / p99 (ms), CPU cores", "",
                     f"{peer['p50']:.0f} / {peer['p99']:.0f}, {peer['server_cores']:.2f}", ""])
    print()
    print_table(["metric", "target", "measured", "verdict"], rows)


if __name__ == "__main__":
    main()
