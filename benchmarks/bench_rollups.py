"""Aggregates over 30 days of 10-second data, from raw points and from rollup tiers.

    .venv/bin/python benchmarks/bench_rollups.py                 # 10 series x 30 days
    .venv/bin/python benchmarks/bench_rollups.py --series 1 --days 30

Generates `--series` series x `--days` days of 10 s points straight into a fresh DuckDB
store (one INSERT ... SELECT from `range()`, sorted by series and time as compaction
would leave them), then times `query.aggregate.aggregate()` in-process:

- before rollups exist (every query reads raw points);
- the rollup job's first run (policy `raw forever -> 1m forever -> 1h forever`, so raw
  stays and both answers can be compared);
- the same queries again, now answered by the tiers (plus the raw points of the newest,
  not yet rolled up, hour).

Each query is run `--repeat` times; the table shows the median. The answers of both runs
are compared and must be equal (values are multiples of 1/4, so sums are exact).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import print_machine, print_table
from stats_service.jobs.rollup import run_rollups
from stats_service.model import SeriesKey
from stats_service.query.aggregate import AggregateQuery, aggregate
from stats_service.query.buckets import Buckets
from stats_service.query.params import TimeRange
from stats_service.storage.embedded import EmbeddedStore
from stats_service.storage.rollup_policy import parse_text

S = 1_000_000
M, H, D = 60 * S, 3600 * S, 86_400 * S
EXACT = ("mean", "min", "max", "sum", "count", "first", "last")


def generate(store: EmbeddedStore, series: int, days: int, end_us: int) -> list[int]:
    """`series` series of 10 s points over `days` days ending at `end_us`."""
    tenant = store.create_tenant(
        "bench", retention_days=3650, max_series=10**6, max_batch_points=10**7
    )
    ids = [
        SeriesKey.of(tenant.id, "cpu", {"host": "h1", "field": f"f{i}"}).series_id
        for i in range(series)
    ]
    start = end_us - days * D
    per_series = days * D // (10 * S)
    with store.transaction() as con:
        for i, sid in enumerate(ids):
            key = SeriesKey.of(tenant.id, "cpu", {"host": "h1", "field": f"f{i}"})
            con.execute(
                "INSERT INTO series (id, tenant_id, metric, device, tags, canonical, created_at,"
                " last_ts, last_value) VALUES (?, ?, 'cpu', 'h1', ?, ?, now(), "
                "make_timestamp(?::BIGINT), 0)",
                [
                    sid,
                    tenant.id,
                    f'{{"field":"f{i}","host":"h1"}}',
                    key.canonical().decode(),
                    start + (per_series - 1) * 10 * S,
                ],
            )
        con.execute(
            "INSERT INTO points SELECT s.id, make_timestamp(? + r * 10000000), "
            "((hash(s.id, r) % 400)::BIGINT - 200) / 4.0 "
            "FROM (SELECT unnest(?::BIGINT[]) AS id) s, range(?) t(r) ORDER BY s.id, r",
            [start, ids, per_series],
        )
    return ids


def timed(repeat: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=10)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    print_machine()
    end = 1_717_200_000 * S // H * H + 30 * M  # half an hour into an hour
    with tempfile.TemporaryDirectory() as tmp:
        store = EmbeddedStore(Path(tmp) / "stats.duckdb")
        t0 = time.perf_counter()
        ids = generate(store, args.series, args.days, end)
        load_s = time.perf_counter() - t0
        tenant = store.get_tenant("bench")
        assert tenant is not None
        span = TimeRange(end - args.days * D, end)
        queries = [
            (f"1h buckets, {args.days} d, 1 series, mean,max", [ids[0]], H, ("mean", "max")),
            (f"1h buckets, {args.days} d, 1 series, all 7 exact fns", [ids[0]], H, EXACT),
            (f"1h buckets, {args.days} d, {len(ids)} series, mean", ids, H, ("mean",)),
            (
                f"1d buckets, {args.days} d, {len(ids)} series, mean,min,max",
                ids,
                D,
                ("mean", "min", "max"),
            ),
            ("1m buckets, last 1 d, 1 series, mean", [ids[0]], M, ("mean",)),
        ]

        def run(q: tuple[str, list[int], int, tuple[str, ...]]) -> Callable[[], Any]:
            lo = span.to_us - D if q[2] == M else span.from_us
            query = AggregateQuery(TimeRange(lo, span.to_us), Buckets(q[2]), q[3])

            def go() -> Any:
                with store.reader() as cur:
                    return aggregate(cur, tenant.id, q[1], query)

            return go

        before = [timed(args.repeat, run(q)) for q in queries]
        t0 = time.perf_counter()
        counts = run_rollups(
            store, parse_text("raw forever -> 1m forever -> 1h forever"), None, end, 0
        )
        rollup_s = time.perf_counter() - t0
        after = [timed(args.repeat, run(q)) for q in queries]
        points = args.series * args.days * D // (10 * S)
        print(
            f"\n{points:,} points ({args.series} series x {args.days} d at 10 s); "
            f"generated in {load_s:.1f} s; first rollup run {rollup_s:.1f} s "
            f"({counts.rolled.get('1m', 0):,} 1m rows, {counts.rolled.get('1h', 0):,} 1h rows)\n"
        )
        rows = []
        for q, (raw_ms, raw_out), (tier_ms, tier_out) in zip(queries, before, after, strict=True):
            same = [{k: v for k, v in b.items() if k != "tiers"} for b in raw_out] == [
                {k: v for k, v in b.items() if k != "tiers"} for b in tier_out
            ]
            rows.append(
                [
                    q[0],
                    f"{raw_ms:.1f}",
                    f"{tier_ms:.1f}",
                    f"{raw_ms / tier_ms:.1f}x",
                    "+".join(tier_out[0]["tiers"]),
                    "yes" if same else "NO",
                ]
            )
        print_table(["query", "raw ms", "tiered ms", "speed-up", "answered by", "equal"], rows)
        store.close()


if __name__ == "__main__":
    main()
