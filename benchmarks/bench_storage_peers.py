"""Storage side by side: StatisticsService, InfluxDB 1.6 and VictoriaMetrics on the same
TSBS devops cpu-only data, loaded over HTTP and queried over HTTP.

Data: `tsbs_cpu_bodies` of common.py (deterministic for a `--seed`): `--hosts` hosts x
10 integer fields, one line per host every 10 s, `--days` days ending on a whole hour
at least an hour before now (100 hosts, 1 day = 8.64 M points, 1,000 series). Bodies
of 48 ticks (4,800 lines) go to `POST /write?db=bench&precision=n` of each store from
`--clients` processes x `--connections` connections.

Each store then settles: ours is stopped (checkpoint) and started again with its
compaction job every 2 s (it has no endpoint to call), until every closed day is
compacted (its /metrics counters stop moving); InfluxDB snapshots its cache and compacts
(cold durations of a few seconds in its config), VictoriaMetrics is flushed and merged
(`/internal/force_flush`, `/internal/force_merge`); then the data directory is measured
once its size has not changed for 10 s.

Queries (TSBS names; windows start 6 h into the last day):

- single-groupby-1-1-1: max of 1 field, 1 host, 1 h, per minute. Ours /v1/aggregate
  fn=max bucket=1m; InfluxQL max() GROUP BY time(1m); MetricsQL max_over_time[1m].
- single-groupby-5-1-12: the same for 5 fields over 12 h (VM: 5 label_set(...) joined
  with `or`, as its rollups drop the metric name).
- cpu-max-all-8: max of each of the 10 fields over 8 hosts together, per hour, 8 h.
  Ours group_by=metric; InfluxQL 10 x max() GROUP BY time(1h); VM max(max_over_time).
- double-groupby-1: mean of 1 field per host per hour, 12 h, all hosts.
- lastpoint: the last value of every field of every host. Ours /v1/latest; InfluxQL
  last(*) GROUP BY hostname; VM last_over_time instant query.
- high-cpu-1: one host's usage_user readings > 90 over 12 h. Ours /v1/points
  where=value>90; InfluxQL WHERE usage_user > 90; VM `x > 90` at step 10 s (the raw
  samples, which lie on the 10 s grid).

Every answer is turned into {(field, host, bucket start s): value}; the three must
agree (relative tolerance 1e-9). VictoriaMetrics computes a `[w]` window ending at
each step time t, over (t - w, t]; ours and InfluxDB's buckets are [T, T + w). The
VM queries are therefore asked at t = T + w - 1 ms (start shifted, `nocache=1` so VM
does not move it) and t + 1 ms - w is taken as the bucket start.

    .venv/bin/python benchmarks/bench_storage_peers.py            # ~10 min

Tools: `apt-get install -y influxdb victoria-metrics` (a missing peer is skipped).
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_influx import INFLUXD_CONFIG
from bench_ingest import split_clients, summarise_run
from common import (
    ADMIN_KEY,
    CPU_FIELDS,
    Server,
    dir_size,
    fmt_bytes,
    fmt_int,
    free_port,
    http_json,
    other_busy_processes,
    print_machine,
    print_table,
    run_clients,
    scrape_metrics,
    tsbs_cpu_bodies,
    wait_http,
    wait_quiet,
)

TICKS_PER_BODY = 48
HOUR = 3600
INFLUX_SETTLE = """\
  cache-snapshot-write-cold-duration = "2s"
  compact-full-write-cold-duration = "5s"
"""
Answer = dict[tuple[str, str, int], float]


# -- the queries -------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    name: str
    ours: str  # path + query string
    influx: str  # InfluxQL
    vm: tuple[str, dict[str, str]]  # path, params
    ours_parse: Callable[[Any], Answer]
    influx_parse: Callable[[Any], Answer]
    vm_parse: Callable[[Any], Answer]


def _s(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp())


def _ours_groups(body: Any, per_host: bool = False) -> Answer:
    out: Answer = {}
    fns = body["functions"]
    for g in body["groups"]:
        host = (g.get("tags") or {}).get("hostname", "") if per_host else ""
        field_name = g["metric"].removeprefix("cpu_")
        for i, t in enumerate(g["t"]):
            for fn in fns:
                if g[fn][i] is not None:
                    out[(field_name, host, _s(t))] = float(g[fn][i])
    return out


def _ours_latest(body: Any) -> Answer:
    return {
        (i["metric"].removeprefix("cpu_"), i["tags"]["hostname"], _s(i["t"])): float(i["value"])
        for i in body["items"]
    }


def _ours_points(body: Any) -> Answer:
    out: Answer = {}
    for s in body["series"]:
        for t, v in zip(s["t"], s["value"], strict=True):
            out[(s["metric"].removeprefix("cpu_"), s["tags"]["hostname"], _s(t))] = float(v)
    return out


def _influx(body: Any, per_host: bool, lastpoint: bool = False) -> Answer:
    out: Answer = {}
    for result in body["results"]:
        if "error" in result:
            raise RuntimeError(result["error"])
        for series in result.get("series", []):
            host = series.get("tags", {}).get("hostname", "") if per_host else ""
            columns = series["columns"]
            for row in series["values"]:
                for name, v in zip(columns[1:], row[1:], strict=True):
                    if v is None:
                        continue
                    name = name.removeprefix("last_")
                    if lastpoint:  # last(*) labels every value with the newest time
                        out[(name, host, -1)] = float(v)
                    else:
                        out[(name, host, int(row[0]))] = float(v)
    return out


def _vm(body: Any, width_s: int, per_host: bool, instant: bool = False) -> Answer:
    if body.get("status") != "success":
        raise RuntimeError(str(body)[:300])
    out: Answer = {}
    for series in body["data"]["result"]:
        labels = series["metric"]
        field_name = labels.get("field", "usage_user")
        host = labels.get("hostname", "") if per_host else ""
        samples = [series["value"]] if instant else series["values"]
        for t, v in samples:
            start = -1 if instant else round(float(t) + 0.001) - width_s
            out[(field_name, host, start)] = float(v)
    return out


def queries(start_s: int, end_s: int, args_days: int) -> list[Query]:
    f = list(CPU_FIELDS)
    h6, h8 = start_s + 6 * HOUR, start_s + 8 * HOUR
    host = "host_1"
    eight = [f"host_{i}" for i in range(8)]

    def ours_agg(metrics: list[str], a: int, b: int, bucket: str, fn: str, **extra: str) -> str:
        params = {
            "metric": ",".join("cpu_" + m for m in metrics),
            "from": str(a),
            "to": str(b),
            "bucket": bucket,
            "fn": fn,
            "limit": "1000",
            **extra,
        }
        return "/v1/aggregate?" + urllib.parse.urlencode(params)

    def iql(select: str, where: str, a: int, b: int, group: str) -> str:
        return (
            f"SELECT {select} FROM cpu WHERE {where}time >= {a}s AND time < {b}s GROUP BY {group}"
        )

    def vm_range(expr: str, a: int, b: int, step: int) -> tuple[str, dict[str, str]]:
        return "/api/v1/query_range", {
            "query": expr,
            "start": f"{a + step - 0.001:.3f}",
            "end": f"{b - 0.001:.3f}",
            "step": f"{step}s",
            "nocache": "1",
        }

    five = f[:5]
    eight_re = "|".join(eight)
    return [
        Query(
            "single-groupby-1-1-1",
            ours_agg(["usage_user"], h6, h6 + HOUR, "1m", "max", **{"tag.hostname": host}),
            iql(
                "max(usage_user) AS usage_user",
                f"hostname='{host}' AND ",
                h6,
                h6 + HOUR,
                "time(1m)",
            ),
            vm_range(f'max_over_time(cpu_usage_user{{hostname="{host}"}}[1m])', h6, h6 + HOUR, 60),
            _ours_groups,
            lambda b: _influx(b, per_host=False),
            lambda b: _vm(b, 60, per_host=False),
        ),
        Query(
            "single-groupby-5-1-12",
            ours_agg(five, h6, h6 + 12 * HOUR, "1m", "max", **{"tag.hostname": host}),
            iql(
                ", ".join(f"max({m}) AS {m}" for m in five),
                f"hostname='{host}' AND ",
                h6,
                h6 + 12 * HOUR,
                "time(1m)",
            ),
            vm_range(
                " or ".join(
                    f'label_set(max_over_time(cpu_{m}{{hostname="{host}"}}[1m]), "field", "{m}")'
                    for m in five
                ),
                h6,
                h6 + 12 * HOUR,
                60,
            ),
            _ours_groups,
            lambda b: _influx(b, per_host=False),
            lambda b: _vm(b, 60, per_host=False),
        ),
        Query(
            "cpu-max-all-8",
            ours_agg(
                f,
                h8,
                h8 + 8 * HOUR,
                "1h",
                "max",
                group_by="metric",
                **{"tag.hostname": ",".join(eight)},
            ),
            iql(
                ", ".join(f"max({m}) AS {m}" for m in f),
                "(" + " OR ".join(f"hostname='{x}'" for x in eight) + ") AND ",
                h8,
                h8 + 8 * HOUR,
                "time(1h)",
            ),
            vm_range(
                " or ".join(
                    f'label_set(max(max_over_time(cpu_{m}{{hostname=~"{eight_re}"}}[1h])), '
                    f'"field", "{m}")'
                    for m in f
                ),
                h8,
                h8 + 8 * HOUR,
                HOUR,
            ),
            _ours_groups,
            lambda b: _influx(b, per_host=False),
            lambda b: _vm(b, HOUR, per_host=False),
        ),
        Query(
            "double-groupby-1",
            ours_agg(["usage_user"], h6, h6 + 12 * HOUR, "1h", "mean"),
            iql("mean(usage_user) AS usage_user", "", h6, h6 + 12 * HOUR, "time(1h), hostname"),
            vm_range("avg_over_time(cpu_usage_user[1h])", h6, h6 + 12 * HOUR, HOUR),
            lambda b: _ours_groups(b, per_host=True),
            lambda b: _influx(b, per_host=True),
            lambda b: _vm(b, HOUR, per_host=True),
        ),
        Query(
            "lastpoint",
            "/v1/latest?"
            + urllib.parse.urlencode({"metric": ",".join("cpu_" + m for m in f), "limit": "10000"}),
            "SELECT last(*) FROM cpu GROUP BY hostname",
            (
                "/api/v1/query",
                {
                    "query": " or ".join(
                        f'label_set(last_over_time(cpu_{m}[{args_days + 1}d]), "field", "{m}")'
                        for m in f
                    ),
                    "time": str(end_s),
                },
            ),
            lambda b: {(k[0], k[1], -1): v for k, v in _ours_latest(b).items()},
            lambda b: _influx(b, per_host=True, lastpoint=True),
            lambda b: _vm(b, 0, per_host=True, instant=True),
        ),
        Query(
            "high-cpu-1",
            "/v1/points?"
            + urllib.parse.urlencode(
                {
                    "metric": "cpu_usage_user",
                    "tag.hostname": host,
                    "from": str(h6),
                    "to": str(h6 + 12 * HOUR),
                    "where": "value>90",
                    "limit": "100000",
                }
            ),
            f"SELECT usage_user FROM cpu WHERE hostname='{host}' AND usage_user > 90 "
            f"AND time >= {h6}s AND time < {h6 + 12 * HOUR}s",
            (
                "/api/v1/query_range",
                {
                    "query": f'cpu_usage_user{{hostname="{host}"}} > 90',
                    "start": str(h6),
                    "end": str(h6 + 12 * HOUR - 10),
                    "step": "10s",
                    "nocache": "1",
                },
            ),
            _ours_points,
            lambda b: {(k[0], host, k[2]): v for k, v in _influx(b, per_host=False).items()},
            lambda b: {(k[0], host, k[2] + 0): v for k, v in _vm_points(b).items()},
        ),
    ]


def _vm_points(body: Any) -> Answer:
    out: Answer = {}
    for series in body["data"]["result"]:
        for t, v in series["values"]:
            out[("usage_user", "", round(float(t)))] = float(v)
    return out


# -- HTTP timing ---------------------------------------------------------------------------


class Client:
    """One keep-alive connection; `get` returns (seconds, parsed JSON)."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=300)
        self.headers = headers or {}

    def get(self, path: str) -> tuple[float, Any]:
        t0 = time.perf_counter()
        self.conn.request("GET", path, headers=self.headers)
        resp = self.conn.getresponse()
        data = resp.read()
        elapsed = time.perf_counter() - t0
        if resp.status != 200:
            raise RuntimeError(f"GET {path[:200]} -> {resp.status} {data[:300]!r}")
        return elapsed, json.loads(data)


def time_query(client: Client, path: str, repeat: int) -> tuple[float, Any]:
    """Median seconds of `repeat` calls after one warm-up call, and the answer."""
    _, body = client.get(path)
    times = [client.get(path)[0] for _ in range(repeat)]
    return statistics.median(times), body


@dataclass
class StoreResult:
    name: str
    load: dict[str, float] = field(default_factory=dict)
    disk: dict[str, int] = field(default_factory=dict)
    medians: dict[str, float] = field(default_factory=dict)
    answers: dict[str, Answer] = field(default_factory=dict)
    peak_rss: int = 0
    db_used: int = 0
    extra: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def load(
    url: str,
    path: str,
    headers: dict[str, str],
    bodies: list[bytes],
    args: argparse.Namespace,
    lines: int,
) -> dict[str, float]:
    if args.wait_quiet:
        busy = other_busy_processes(0.3)
        if busy:
            print(f"  busy before load: {busy}", flush=True)
        wait_quiet(args.wait_quiet)
    results, wall = run_clients(
        url, path, headers, split_clients(bodies, args.clients), args.connections, 3600
    )
    stats = summarise_run(results, wall, lines * len(CPU_FIELDS))
    if stats["errors"]:
        first = next(r.first_error for r in results if r.first_error)
        raise SystemExit(f"load into {url} failed: {stats['errors']:.0f} errors, first: {first}")
    return stats


def settle(path: Path, quiet_s: float = 10.0, max_s: float = 300.0) -> int:
    """Size of `path` once it has not changed for `quiet_s` (at most `max_s`)."""
    deadline = time.monotonic() + max_s
    size, since = dir_size(path), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = dir_size(path)
        if now != size:
            size, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            break
    return size


def run_queries(
    result: StoreResult, client: Client, qs: list[Query], kind: str, repeat: int
) -> None:
    for q in qs:
        if kind == "ours":
            path, parse = q.ours, q.ours_parse
        elif kind == "influx":
            path = "/query?" + urllib.parse.urlencode({"db": "bench", "epoch": "s", "q": q.influx})
            parse = q.influx_parse
        else:
            path = q.vm[0] + "?" + urllib.parse.urlencode(q.vm[1])
            parse = q.vm_parse
        median, body = time_query(client, path, repeat)
        result.medians[q.name] = median
        result.answers[q.name] = parse(body)
        print(
            f"  {result.name} {q.name}: {median * 1000:.2f} ms, "
            f"{len(result.answers[q.name])} values",
            flush=True,
        )


# -- the three stores ----------------------------------------------------------------------


def vm_hwm(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _compacted(url: str) -> tuple[float, float, float]:
    """(partitions compacted, points rewritten, reclaims run) so far, from /metrics."""
    m = scrape_metrics(url)
    return (
        m.get("stats_compaction_partitions_total", 0.0),
        m.get("stats_compaction_rows_total", 0.0),
        m.get("stats_reclaim_runs_total", 0.0),
    )


def _our_disk(data_dir: Path) -> dict[str, int]:
    db = dir_size(data_dir / "stats.duckdb")
    wal = dir_size(data_dir / "stats.duckdb.wal")
    raw = dir_size(data_dir / "raw")
    cold = dir_size(data_dir / "cold")
    return {
        "db": db,
        "wal": wal,
        "archive": raw,
        "cold": cold,
        "other": dir_size(data_dir) - db - wal - raw - cold,
    }


def _used_blocks(db: Path) -> int:
    """Bytes of the DuckDB file's used blocks (the file does not shrink when blocks free)."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        row = con.execute("SELECT used_blocks, block_size FROM pragma_database_size()").fetchone()
        return int(row[0]) * int(row[1]) if row else 0
    finally:
        con.close()


def run_ours(
    args: argparse.Namespace, bodies: list[bytes], lines: int, qs: list[Query], last_day_s: int
) -> StoreResult:
    """Load with default settings; stop (checkpoint); start again with the compaction job
    every 2 s and wait until it has compacted every closed day; query; stop; measure."""
    result = StoreResult("ours")
    tmp = Path(tempfile.mkdtemp(prefix="stats-peers-"))
    data_dir = tmp / "data"
    keep_all = {"STATS_RETENTION_DAYS": "3650"}  # --days 30 reaches past the default 30
    server = Server(data_dir=data_dir, env=keep_all)
    server.start()
    try:
        headers = {"X-API-Key": ADMIN_KEY, "Content-Type": "text/plain; charset=utf-8"}
        result.load = load(server.url, "/write?db=bench&precision=n", headers, bodies, args, lines)
        result.peak_rss = vm_hwm(server.pid)
        server.stop()
        written = _our_disk(data_dir)
        result.notes.append(
            f"as written (after a clean stop): db {fmt_bytes(written['db'])}, "
            f"archive {fmt_bytes(written['archive'])}"
        )
        server = Server(
            data_dir=data_dir,
            env={
                **keep_all,
                "STATS_COMPACTION_INTERVAL_S": "2",
                "STATS_COMPACTION_DELAY_S": "0",
            },
        )
        server.start()
        if any("compact" in p for p in server.routes()):
            result.notes.append("a compaction endpoint exists now; this script does not call it")
        t0 = time.monotonic()
        done, since = _compacted(server.url), time.monotonic()
        while time.monotonic() - t0 < 900:
            time.sleep(1.0)
            now = _compacted(server.url)
            if now != done:
                done, since = now, time.monotonic()
            elif done[0] >= args.days and time.monotonic() - since >= 5:
                break
        m = scrape_metrics(server.url)
        result.notes.append(
            f"compaction job (every 2 s, delay 0): {done[0]:.0f} partitions, "
            f"{fmt_int(done[1])} points rewritten, {done[2]:.0f} file reclaim(s) "
            f"({fmt_bytes(int(m.get('stats_reclaim_bytes_total', 0.0)))} given back in "
            f"{m.get('stats_reclaim_seconds_total', 0.0):.1f} s), settled after "
            f"{time.monotonic() - t0:.0f} s"
        )
        client = Client(server.url, {"X-API-Key": ADMIN_KEY})
        run_queries(result, client, qs, "ours", args.repeat)
        hundred = "/v1/aggregate?" + urllib.parse.urlencode(
            {
                "metric": ",".join("cpu_" + m for m in CPU_FIELDS),
                "tag.hostname": ",".join(f"host_{i}" for i in range(10)),
                "from": str(last_day_s),
                "to": str(last_day_s + 86400),
                "bucket": "1m",
                "fn": "mean,max,p95",
                "limit": "100",
            }
        )
        median, body = time_query(client, hundred, args.repeat)
        assert len(body["groups"]) == 100 and len(body["groups"][0]["t"]) == 1440
        result.extra["100 series x 1 day, 1m, mean,max,p95: one /v1/aggregate"] = median
        server.stop()
        result.disk = _our_disk(data_dir)
        used = result.db_used = _used_blocks(data_dir / "stats.duckdb")
        result.notes.append(
            f"DuckDB file {fmt_bytes(result.disk['db'])}, used blocks {fmt_bytes(used)}"
        )
        return result
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


def _peer(cmd: list[str], url: str, health: str, tmp: Path) -> subprocess.Popen[bytes]:
    log = open(tmp / "peer.log", "wb")  # noqa: SIM115 (closed with the process)
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    wait_http(url + health, 60, proc)
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()  # our own child, by its handle
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def run_influxdb(
    args: argparse.Namespace, bodies: list[bytes], lines: int, qs: list[Query]
) -> StoreResult | None:
    exe = shutil.which("influxd")
    if exe is None:
        print("influxd not installed (apt-get install influxdb); skipped")
        return None
    result = StoreResult("InfluxDB 1.6")
    tmp = Path(tempfile.mkdtemp(prefix="influxdb-peers-"))
    port = free_port()
    config = INFLUXD_CONFIG.format(tmp=tmp, port=port, rpc_port=free_port())
    config = config.replace(
        "  max-values-per-tag = 0\n", "  max-values-per-tag = 0\n" + INFLUX_SETTLE
    )
    (tmp / "influxdb.conf").write_text(config)
    url = f"http://127.0.0.1:{port}"
    proc = _peer([exe, "-config", str(tmp / "influxdb.conf")], url, "/ping", tmp)
    try:
        status, body = http_json("POST", url + "/query?q=CREATE+DATABASE+bench", {}, b"")
        if status != 200:
            raise SystemExit(f"influxd: CREATE DATABASE failed: {status} {body}")
        result.load = load(
            url,
            "/write?db=bench&precision=n",
            {"Content-Type": "text/plain; charset=utf-8"},
            bodies,
            args,
            lines,
        )
        result.peak_rss = vm_hwm(proc.pid)
        t0 = time.monotonic()
        settle(tmp / "data")
        result.notes.append(f"settled (TSM compaction) in {time.monotonic() - t0:.0f} s")
        result.disk = {"data": dir_size(tmp / "data"), "wal": dir_size(tmp / "wal")}
        run_queries(result, Client(url), qs, "influx", args.repeat)
        return result
    finally:
        _stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


def run_victoria(
    args: argparse.Namespace, bodies: list[bytes], lines: int, qs: list[Query], start_s: int
) -> StoreResult | None:
    exe = shutil.which("victoria-metrics")
    if exe is None:
        print("victoria-metrics not installed (apt-get install victoria-metrics); skipped")
        return None
    result = StoreResult("VictoriaMetrics")
    tmp = Path(tempfile.mkdtemp(prefix="vm-peers-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [
        exe,
        f"-storageDataPath={tmp / 'data'}",
        f"-httpListenAddr=127.0.0.1:{port}",
        "-retentionPeriod=100y",
        "-loggerLevel=ERROR",
        "-search.latencyOffset=0s",
    ]
    proc = _peer(cmd, url, "/health", tmp)
    try:
        result.load = load(
            url,
            "/write?db=bench",
            {"Content-Type": "text/plain; charset=utf-8"},
            bodies,
            args,
            lines,
        )
        result.peak_rss = vm_hwm(proc.pid)
        t0 = time.monotonic()
        http_json("GET", url + "/internal/force_flush", {})
        months = sorted(
            {time.strftime("%Y_%m", time.gmtime(start_s + d * 86400)) for d in range(args.days + 1)}
        )
        for month in months:
            http_json("GET", url + f"/internal/force_merge?partition_prefix={month}", {})
        settle(tmp / "data")
        result.notes.append(f"force_flush + force_merge, settled in {time.monotonic() - t0:.0f} s")
        result.disk = {"data": dir_size(tmp / "data")}
        run_queries(result, Client(url), qs, "vm", args.repeat)
        return result
    finally:
        _stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


# -- comparison and table --------------------------------------------------------------------


def compare(ref: Answer, other: Answer, tol: float = 1e-9) -> str:
    """'ok' or what differs."""
    if ref.keys() != other.keys():
        only_a, only_b = sorted(ref.keys() - other.keys()), sorted(other.keys() - ref.keys())
        return (
            f"keys differ: {len(only_a)} only ours {only_a[:3]}, "
            f"{len(only_b)} only peer {only_b[:3]}"
        )
    bad = [k for k, v in ref.items() if abs(v - other[k]) > tol * max(1.0, abs(v))]
    return (
        "ok"
        if not bad
        else f"{len(bad)} values differ, e.g. {bad[0]}: {ref[bad[0]]} vs {other[bad[0]]}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hosts", type=int, default=100)
    ap.add_argument("--days", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=15, help="timed runs per query (median)")
    ap.add_argument("--clients", type=int, default=2)
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--wait-quiet", type=float, default=60.0)
    ap.add_argument("--only", default="ours,influxdb,victoria")
    ap.add_argument("--keep", action="store_true", help="keep our data dir")
    args = ap.parse_args()
    print_machine()
    end_s = int(time.time()) // 86400 * 86400  # the last UTC midnight: closed days only
    start_s = end_s - args.days * 86400
    lines = args.hosts * TICKS_PER_BODY
    n_bodies = args.days * 8640 // TICKS_PER_BODY
    t0 = time.perf_counter()
    bodies = tsbs_cpu_bodies(args.hosts, lines, n_bodies, start_s * 1_000_000_000, seed=args.seed)
    points = n_bodies * lines * len(CPU_FIELDS)
    print(
        f"data: {args.hosts} hosts x {len(CPU_FIELDS)} fields x {args.days} d at 10 s = "
        f"{fmt_int(points)} points in {n_bodies} bodies "
        f"({time.perf_counter() - t0:.0f} s to generate), "
        f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(start_s))} .. "
        f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(end_s))}",
        flush=True,
    )
    qs = queries(end_s - 86400, end_s, args.days)  # windows in the last day
    only = set(args.only.split(","))
    stores: list[StoreResult] = []
    if "ours" in only:
        stores.append(run_ours(args, bodies, lines, qs, end_s - 86400))
    if "influxdb" in only and (r := run_influxdb(args, bodies, lines, qs)):
        stores.append(r)
    if "victoria" in only and (r := run_victoria(args, bodies, lines, qs, start_s)):
        stores.append(r)
    print("\nanswers compared with ours:")
    ours = stores[0]
    for peer in stores[1:]:
        for q in qs:
            print(f"  {peer.name} {q.name}: {compare(ours.answers[q.name], peer.answers[q.name])}")
    for s in stores:
        for note in s.notes:
            print(f"  {s.name}: {note}")
    print()
    headers = ["metric", *(s.name for s in stores), *(f"ours / {s.name}" for s in stores[1:])]
    rows: list[list[object]] = []

    def row(
        label: str, values: list[float], fmt: Callable[[float], str], ratio: bool = True
    ) -> None:
        ratios = [f"{values[0] / v:.2f}" if ratio and v else "" for v in values[1:]]
        rows.append([label, *(fmt(v) for v in values), *ratios])

    row("load (points/s)", [s.load["pps"] for s in stores], fmt_int)
    row("peak RSS during load", [float(s.peak_rss) for s in stores], fmt_bytes)
    totals = [float(sum(s.disk.values())) for s in stores]
    row("bytes/point on disk, total", [t / points for t in totals], lambda v: f"{v:.2f}")
    # the store alone: ours without the raw archive of request bodies (kept for `replay`,
    # STATS_ARCHIVE_RETENTION_DAYS); the peers keep no such copy, their total is their store
    stores_only = [t - (s.disk.get("archive", 0) if s is ours else 0) for s, t in
                   zip(stores, totals, strict=True)]
    row("bytes/point, store (ours without raw archive)", [t / points for t in stores_only],
        lambda v: f"{v:.2f}")
    for key in ("db", "archive", "cold", "wal", "other"):
        if key in ours.disk:
            rows.append(
                [
                    f"ours: {key} bytes/point ({fmt_bytes(ours.disk[key])})",
                    f"{ours.disk[key] / points:.2f}",
                    *[""] * (len(headers) - 2),
                ]
            )
    rows.append(
        [
            f"ours: db used blocks bytes/point ({fmt_bytes(ours.db_used)})",
            f"{ours.db_used / points:.2f}",
            *[""] * (len(headers) - 2),
        ]
    )
    for q in qs:
        row(
            f"{q.name} median of {args.repeat} (ms)",
            [s.medians[q.name] * 1000 for s in stores],
            lambda v: f"{v:.2f}",
        )
    for label, seconds in ours.extra.items():
        rows.append(
            [f"ours only: {label} median (ms)", f"{seconds * 1000:.2f}", *[""] * (len(headers) - 2)]
        )
    print_table(headers, rows)
    print("\n(ratios: ours / peer; for points/s higher is better, for bytes and ms lower is)")
    print(f"still busy at the end: {other_busy_processes(0.3) or 'nothing'}")


if __name__ == "__main__":
    main()
