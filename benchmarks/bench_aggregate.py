"""Bucketed aggregates over 1 day of 10-second data: 1 series and 100 series.

    .venv/bin/python benchmarks/bench_aggregate.py
    .venv/bin/python benchmarks/bench_aggregate.py --extra-hosts 90   # 1,000 series stored

Loads `--hosts` x `--fields` series (default 10 x 10 = 100) with one day of 10 s data
through the real ingest path (POST /v1/ingest), plus `--extra-hosts` hosts of the same
day that are stored but never queried (a bigger table to scan). Then, with keep-alive
HTTP on 127.0.0.1:

- 1 series: GET /v1/series/{id}/aggregate?from=&to=&bucket=1m&fn=mean,max,p95, repeated;
- 100 series: the same for each of the 100 series, one after the other (the total);
- a multi-series endpoint, if the API offers one (looked up in /openapi.json).

After a clean shutdown the same work is timed in-process on the DuckDB file: the SQL of
query/aggregate.py alone, and `query.aggregate.aggregate()` for all 100 ids in one call
(what a multi-series endpoint would cost). Without the HTTP endpoint (older trees) only
the direct DuckDB numbers are printed.
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    PySpy,
    Server,
    Shape,
    fmt_int,
    json_bodies,
    print_machine,
    print_table,
    route_seconds,
    run_clients,
    wait_quiet,
)

TARGET_ONE_MS = 20.0
TARGET_HUNDRED_MS = 200.0
DAY_S = 86_400
AGG_PATH = "/v1/series/{series_id}/aggregate"


def rfc3339(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def load(server: Server, shape: Shape, hosts_total: int, start_us: int, clients: int) -> int:
    """One day of data for `hosts_total` hosts through POST /v1/ingest; returns points."""
    per_day = int(DAY_S / shape.interval_s)
    rounds = -(-per_day // shape.per_request)
    full = Shape(hosts_total, shape.fields, shape.per_request, shape.interval_s,
                 shape.ts_format, shape.decimals)
    bodies = list(json_bodies(full, rounds, start_us))
    results, wall = run_clients(server.url, "/v1/ingest?precision=ms", server.headers,
                                [bodies[i::clients] for i in range(clients)], 4, 900)
    errors = sum(r.errors for r in results)
    if errors:
        first = next(r.first_error for r in results if r.first_error)
        raise SystemExit(f"load failed: {errors} errors, first: {first}")
    points = len(bodies) * full.points_per_request
    print(f"loaded {fmt_int(points)} points ({hosts_total} hosts x {shape.fields} fields x "
          f"{rounds * shape.per_request} timestamps) in {wall:.1f}s "
          f"({fmt_int(points / wall)} points/s)", flush=True)
    return points


def series_ids(tenant_id: int, hosts: int, shape: Shape) -> list[int]:
    from stats_service.model import SeriesKey

    return [
        SeriesKey(tenant_id, name, (("device", f"host_{h}"),)).series_id
        for h in range(hosts)
        for name in shape.field_names()
    ]


class Client:
    """One keep-alive connection; `get` returns (status, body, seconds)."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=60)
        self.headers = headers

    def get(self, path: str) -> tuple[int, bytes, float]:
        t0 = time.perf_counter()
        self.conn.request("GET", path, headers=self.headers)
        resp = self.conn.getresponse()
        body = resp.read()
        return resp.status, body, time.perf_counter() - t0

    def close(self) -> None:
        self.conn.close()


def http_bench(server: Server, ids: list[int], params: dict[str, str],
               repeat: int, profile: Path | None = None) -> dict[str, float]:
    client = Client(server.url, {"X-API-Key": server.headers["X-API-Key"]})
    query = "?" + urlencode(params)
    try:
        status, body, _ = client.get(AGG_PATH.format(series_id=ids[0]) + query)
        if status != 200:
            raise SystemExit(f"aggregate answered {status}: {body[:300]!r}")
        for _ in range(3):  # warm-up
            client.get(AGG_PATH.format(series_id=ids[0]) + query)
        one = []
        c0, s0 = route_seconds(server.url, AGG_PATH)
        for _ in range(repeat):
            status, body, dt = client.get(AGG_PATH.format(series_id=ids[0]) + query)
            assert status == 200, body[:300]
            one.append(dt)
        c1, s1 = route_seconds(server.url, AGG_PATH)
        totals = []
        spy = None
        if profile is not None:
            spy = PySpy(server.pid, profile, gil=False, rate=200, duration_s=300).__enter__()
        try:
            for _ in range(max(3, repeat // 10)):
                t0 = time.perf_counter()
                for sid in ids:
                    status, body, _ = client.get(AGG_PATH.format(series_id=sid) + query)
                    assert status == 200, body[:300]
                totals.append(time.perf_counter() - t0)
        finally:
            if spy is not None:
                spy.__exit__(None, None, None)
        c2, s2 = route_seconds(server.url, AGG_PATH)
        return {
            "one_server": (s1 - s0) / (c1 - c0) * 1000 if c1 > c0 else float("nan"),
            "hundred_server": (s2 - s1) / (c2 - c1) * len(ids) * 1000 if c2 > c1 else float("nan"),
            "one_median": statistics.median(one) * 1000,
            "one_p95": sorted(one)[int(0.95 * (len(one) - 1))] * 1000,
            "hundred_median": statistics.median(totals) * 1000,
            "hundred_best": min(totals) * 1000,
            "bytes": len(body),
        }
    finally:
        client.close()


def direct_bench(db: Path, tenant_id: int, ids: list[int], from_us: int, to_us: int,
                 functions: tuple[str, ...], repeat: int) -> dict[str, float]:
    import duckdb

    from stats_service.query import aggregate as agg
    from stats_service.query.buckets import Buckets
    from stats_service.query.params import TimeRange

    con = duckdb.connect(str(db), read_only=True, config={"threads": 2})
    try:
        query = agg.AggregateQuery(
            span=TimeRange(from_us, to_us), buckets=Buckets(60_000_000, "UTC"),
            functions=functions, bucket_label="1m",
        )
        sql = agg.aggregate_sql(query)

        def timed(fn: object, n: int) -> float:
            fn()  # type: ignore[operator]
            runs = []
            for _ in range(n):
                t0 = time.perf_counter()
                fn()  # type: ignore[operator]
                runs.append(time.perf_counter() - t0)
            return statistics.median(runs) * 1000

        out = {
            "sql_one": timed(lambda: con.execute(
                sql, [tenant_id, ids[:1], from_us, to_us]).fetchnumpy(), repeat),
            "sql_hundred": timed(lambda: con.execute(
                sql, [tenant_id, ids, from_us, to_us]).fetchnumpy(), max(3, repeat // 4)),
            "fn_one": timed(lambda: agg.aggregate(con, tenant_id, ids[:1], query), repeat),
            "fn_hundred": timed(lambda: agg.aggregate(con, tenant_id, ids, query),
                                max(3, repeat // 4)),
        }
        row = con.execute("SELECT count(*) FROM points").fetchone()
        out["rows"] = float(row[0]) if row else 0.0
        return out
    finally:
        con.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", type=int, default=10, help="queried hosts")
    ap.add_argument("--fields", type=int, default=10, help="series per host")
    ap.add_argument("--extra-hosts", type=int, default=0,
                    help="hosts stored in the same day but never queried")
    ap.add_argument("--bucket", default="1m")
    ap.add_argument("--fn", default="mean,max,p95")
    ap.add_argument("--repeat", type=int, default=30, help="timed repetitions")
    ap.add_argument("--clients", type=int, default=2, help="loader processes")
    ap.add_argument("--profile", action="store_true",
                    help="py-spy (every thread, waits left out) during the sequential loop")
    ap.add_argument("--profile-out", default="/tmp/aggregate-profile.txt")
    ap.add_argument("--wait-quiet", type=float, default=60.0,
                    help="wait up to this many seconds for other processes to go idle")
    args = ap.parse_args()
    shape = Shape(args.hosts, args.fields, 480, 10.0, "epoch_ms", 2)
    print_machine()
    if args.wait_quiet:
        wait_quiet(args.wait_quiet)
    now = int(time.time())
    end_s = now - 3600 - now % 60
    start_us = (end_s - DAY_S) * 1_000_000
    from_us, to_us = start_us, start_us + DAY_S * 1_000_000
    params = {"from": rfc3339(from_us), "to": rfc3339(to_us), "bucket": args.bucket,
              "fn": args.fn}
    server = Server()
    server.start()
    http_res: dict[str, float] | None = None
    multi = ""
    try:
        rows = load(server, shape, args.hosts + args.extra_hosts, start_us, args.clients)
        routes = server.routes()
        tenant_id = 1  # the `default` tenant, first one created
        ids = series_ids(tenant_id, args.hosts, shape)
        if AGG_PATH in routes:
            prof = Path(args.profile_out) if args.profile else None
            http_res = http_bench(server, ids, params, args.repeat, prof)
        else:
            print(f"NOTE: {AGG_PATH} is not in this tree's API; timing DuckDB directly only")
        multi = ", ".join(p for p in routes if "aggregate" in p and "{series_id}" not in p)
        data_dir = server.data_dir
        assert data_dir is not None
        server.stop()
        fns = tuple(f.strip() for f in args.fn.split(","))
        direct = direct_bench(data_dir / "stats.duckdb", tenant_id, ids, from_us, to_us, fns,
                              args.repeat)
    finally:
        server.stop()
        server.cleanup()
    n = len(ids)
    print(f"\n{fmt_int(direct['rows'])} points stored ({fmt_int(rows)} loaded); query: "
          f"{params['from']} .. {params['to']}, bucket={args.bucket}, fn={args.fn}; "
          f"multi-series aggregate endpoint: {multi or 'none in the API'}\n")
    table: list[list[object]] = []
    if http_res is not None:
        table += [
            ["1 series, HTTP (median / p95 ms)", f"< {TARGET_ONE_MS:.0f}",
             f"{http_res['one_median']:.1f} / {http_res['one_p95']:.1f}",
             "met" if http_res["one_median"] < TARGET_ONE_MS else "missed"],
            [f"{n} series, {n} sequential HTTP requests (total ms, median / best)",
             f"< {TARGET_HUNDRED_MS:.0f}",
             f"{http_res['hundred_median']:.0f} / {http_res['hundred_best']:.0f}",
             "met" if http_res["hundred_median"] < TARGET_HUNDRED_MS else "missed"],
            ["1 series, server time (middleware histogram, mean ms)", f"< {TARGET_ONE_MS:.0f}",
             f"{http_res['one_server']:.1f}",
             "met" if http_res["one_server"] < TARGET_ONE_MS else "missed"],
            [f"{n} series, server time summed over {n} requests (ms)",
             f"< {TARGET_HUNDRED_MS:.0f}", f"{http_res['hundred_server']:.0f}",
             "met" if http_res["hundred_server"] < TARGET_HUNDRED_MS else "missed"],
            ["response size of 1 series (bytes)", "", fmt_int(http_res["bytes"]), ""],
        ]
    table += [
        ["1 series, DuckDB SQL only (ms)", f"< {TARGET_ONE_MS:.0f}", f"{direct['sql_one']:.1f}",
         "met" if direct["sql_one"] < TARGET_ONE_MS else "missed"],
        ["1 series, query.aggregate.aggregate() in-process (ms)", f"< {TARGET_ONE_MS:.0f}",
         f"{direct['fn_one']:.1f}", "met" if direct["fn_one"] < TARGET_ONE_MS else "missed"],
        [f"{n} series, one SQL query (ms)", f"< {TARGET_HUNDRED_MS:.0f}",
         f"{direct['sql_hundred']:.1f}",
         "met" if direct["sql_hundred"] < TARGET_HUNDRED_MS else "missed"],
        [f"{n} series, one aggregate() call in-process (ms)", f"< {TARGET_HUNDRED_MS:.0f}",
         f"{direct['fn_hundred']:.1f}",
         "met" if direct["fn_hundred"] < TARGET_HUNDRED_MS else "missed"],
    ]
    print_table(["measurement", "target", "measured", "verdict"], table)
    if args.profile and http_res is not None:
        from profile_summary import summarise

        print(f"\npy-spy of the server during the sequential requests: {args.profile_out}")
        print(summarise(Path(args.profile_out).read_text(), 20))


if __name__ == "__main__":
    main()
