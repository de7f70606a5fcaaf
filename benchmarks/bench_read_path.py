"""Per-request cost of one-series reads: in-process steps and HTTP round trips.

    .venv/bin/python benchmarks/bench_read_path.py                    # 100 hosts: 8.64 M points
    .venv/bin/python benchmarks/bench_read_path.py --hosts 10         # quick
    .venv/bin/python benchmarks/bench_read_path.py --keep /tmp/rp     # keep the loaded dir
    .venv/bin/python benchmarks/bench_read_path.py --reuse /tmp/rp    # skip load + compaction

Loads one UTC day of TSBS devops cpu-only data (`bench_compaction.load`: POST /write of a
real server), compacts it (the real compaction job, in this process), then measures:

- in-process, on the compacted file: each step of the two one-series queries of
  section 8 (single-groupby-1-1-1 and high-cpu-1), `time.perf_counter_ns` around the
  same calls the handlers make, median of `--repeat`;
- over HTTP (a real `stats-service serve`, keep-alive httpx client): a request that is
  authenticated and parsed but touches no data (a 400 for a bad bucket), `/v1/health`
  (no key), the two queries and their `/v1/series/{id}/aggregate` form; median of
  `--repeat` after 20 warm-up calls, and the server's CPU time (user + system, all its
  threads, from /proc) per request, which depends less on what else runs on the machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_compaction import compact, load
from common import ADMIN_KEY, Server, print_machine, print_table

HOUR_US = 3600 * 1_000_000


def median_ms(fn: Callable[[], object], repeat: int, warm: int = 5) -> float:
    for _ in range(warm):
        fn()
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - t0)
    return statistics.median(samples) / 1e6


def iso(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def in_process(db: Path, day_us: int, repeat: int) -> list[tuple[str, float]]:
    from stats_service.api.read_params import aggregate_query
    from stats_service.query import aggregate as aggregates
    from stats_service.query import fleet
    from stats_service.query.params import TimeRange
    from stats_service.storage.embedded import EmbeddedStore
    from stats_service.storage.rollups import read_marks
    from stats_service.storage.sources import points_source

    store = EmbeddedStore(db, memory_limit="2GB")
    rows: list[tuple[str, float]] = []
    try:
        with store.reader() as cur:
            tenant = int(cur.execute("SELECT id FROM tenants WHERE name = 'default'").fetchone()[0])
        sel = fleet.parse_selection("cpu_usage_user", None, {"tag.hostname": "host_1"})
        a1, b1 = day_us + 6 * HOUR_US, day_us + 7 * HOUR_US
        q1 = aggregate_query(str(a1 // 10**6), str(b1 // 10**6), "1m", "max", "none", "UTC")
        a12, b12 = day_us + 6 * HOUR_US, day_us + 18 * HOUR_US
        span12 = TimeRange(a12, b12)
        vf = fleet.parse_value_filter("value>90", None, None)

        def with_cur(fn: Callable[[Any], object]) -> Callable[[], object]:
            def run() -> object:
                with store.reader() as cur:
                    return fn(cur)

            return run

        with store.reader() as cur:
            ids = [s.id for s in fleet.find(cur, tenant, sel)]
        try:  # the watermark cache and the scoped ids, where this commit has them
            from stats_service.storage.marks_cache import marks_cache

            cache: Any = marks_cache(store)
            fast: dict[str, Any] = {"scoped": True, "marks": cache}
        except ImportError:
            cache, fast = None, {}
        rows.append(("open + close a reader cursor", median_ms(with_cur(lambda c: None), repeat)))
        rows.append(
            (
                "selection (fleet.find)",
                median_ms(with_cur(lambda c: fleet.find(c, tenant, sel)), repeat),
            )
        )
        rows.append(
            ("rollup marks (read_marks)", median_ms(with_cur(lambda c: read_marks(c, ids)), repeat))
        )
        if cache is not None:
            kept = median_ms(with_cur(lambda c: cache.read(c, ids)), repeat)
            rows.append(("rollup marks, kept (MarksCache.read)", kept))
        rows.append(
            (
                "cold-tier source (points_source)",
                median_ms(with_cur(lambda c: points_source(c, tenant, a1, b1)), repeat),
            )
        )
        sql = aggregates.aggregate_sql(q1)
        params = [tenant, ids, a1, b1]
        rows.append(
            (
                "1-1-1: the aggregate SQL alone",
                median_ms(with_cur(lambda c: c.execute(sql, params).fetchnumpy()), repeat),
            )
        )
        rows.append(
            (
                "1-1-1: aggregate() for the id",
                median_ms(
                    with_cur(lambda c: aggregates.aggregate(c, tenant, ids, q1, **fast)), repeat
                ),
            )
        )
        rows.append(
            (
                "1-1-1: whole aggregate_fleet",
                median_ms(
                    with_cur(
                        lambda c: fleet.aggregate_fleet(
                            c, tenant, sel, q1, "series", 100, 0, *([cache] if cache else [])
                        )
                    ),
                    repeat,
                ),
            )
        )
        rows.append(
            (
                "high-cpu-1: whole fleet_points",
                median_ms(
                    with_cur(
                        lambda c: fleet.fleet_points(c, tenant, sel, span12, vf, 10_000, None)
                    ),
                    repeat,
                ),
            )
        )
    finally:
        store.close()
    return rows


def server_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def over_http(
    data_dir: Path, day_us: int, repeat: int
) -> tuple[list[tuple[str, float, float]], dict[str, Any]]:
    import httpx

    env = {"STATS_COMPACTION_ENABLED": "false"}
    a1, b1 = iso(day_us + 6 * HOUR_US), iso(day_us + 7 * HOUR_US)
    a12, b12 = iso(day_us + 6 * HOUR_US), iso(day_us + 18 * HOUR_US)
    sel = "metric=cpu_usage_user&tag.hostname=host_1"
    rows: list[tuple[str, float, float]] = []
    answers: dict[str, Any] = {}
    with (
        Server(env=env, data_dir=data_dir) as server,
        httpx.Client(base_url=server.url, headers={"X-API-Key": ADMIN_KEY}, timeout=60) as client,
    ):
        found = client.get(f"/v1/aggregate?{sel}&bucket=1h&fn=count&from={a1}&to={b1}").json()
        sid = found["groups"][0]["series_id"]
        paths = {
            "/v1/health (no key, no store)": ("/v1/health", 200),
            "authenticated, parsed, no store (400 bad bucket)": (
                f"/v1/aggregate?{sel}&bucket=xx",
                400,
            ),
            "single-groupby-1-1-1 /v1/aggregate": (
                f"/v1/aggregate?{sel}&bucket=1m&fn=max&from={a1}&to={b1}",
                200,
            ),
            "the same, /v1/series/{id}/aggregate": (
                f"/v1/series/{sid}/aggregate?bucket=1m&fn=max&from={a1}&to={b1}",
                200,
            ),
            "high-cpu-1 /v1/points": (f"/v1/points?{sel}&where=value>90&from={a12}&to={b12}", 200),
        }
        for label, (path, status) in paths.items():
            response = client.get(path)
            if response.status_code != status:
                raise SystemExit(f"{path}: {response.status_code} {response.text[:300]}")
            answers[label] = response.json()

            def get(path: str = path) -> object:
                return client.get(path)

            cpu0 = server_cpu_s(server.pid)
            wall = median_ms(get, repeat, warm=20)
            cpu = (server_cpu_s(server.pid) - cpu0) * 1000 / (repeat + 20)
            rows.append((label, wall, cpu))
    return rows, answers


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--hosts", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=300)
    ap.add_argument("--keep", type=Path, help="load into this dir and keep it")
    ap.add_argument("--reuse", type=Path, help="a dir kept by --keep: no load, no compaction")
    args = ap.parse_args()
    print_machine()
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    day = today - timedelta(days=2)
    with tempfile.TemporaryDirectory(prefix="bench-read-path-") as tmp_name:
        root = args.reuse or args.keep or Path(tmp_name)
        data_dir = root / "data"
        db = data_dir / "stats.duckdb"
        if args.reuse is None:
            load(args.hosts, day, data_dir)
            print(f"compacted in {compact(db, data_dir / 'cold', day):.1f} s", flush=True)
            (root / "day").write_text(day.isoformat())
        else:
            day = datetime.fromisoformat((root / "day").read_text())
        day_us = int(day.timestamp()) * 1_000_000
        steps = in_process(db, day_us, args.repeat)
        http, answers = over_http(data_dir, day_us, args.repeat)
    print(
        f"\nTSBS cpu-only, {args.hosts} hosts x 10 fields, one compacted day; "
        f"medians of {args.repeat}"
    )
    print_table(["in-process step", "ms"], [[k, f"{v:.3f}"] for k, v in steps])
    print_table(
        ["HTTP (keep-alive)", "median ms", "server CPU ms/request"],
        [[k, f"{v:.3f}", f"{c:.2f}"] for k, v, c in http],
    )
    groups = answers["single-groupby-1-1-1 /v1/aggregate"]["groups"]
    points = answers["high-cpu-1 /v1/points"]["series"]
    print(
        f"answers: 1-1-1 {len(groups[0]['t'])} buckets, max of maxes {max(groups[0]['max'])}; "
        f"high-cpu-1 {sum(len(s['t']) for s in points)} readings"
    )


if __name__ == "__main__":
    main()
