"""Bytes per point on disk after loading N points through the real ingest path.

    .venv/bin/python benchmarks/bench_storage.py                  # 10M points, ~1 min
    .venv/bin/python benchmarks/bench_storage.py --points 2000000 --no-what-if

Loads `--points` values (TSBS devops cpu-like: `--hosts` x 10 fields, 10 s apart, values
a random walk with `--decimals` decimals) with POST /v1/ingest from 2 client processes,
stops the server cleanly (SIGINT: the writer drains, DuckDB CHECKPOINTs and closes) and
measures data/stats.duckdb (plus any .wal left) and the raw archive under data/raw.

With `--what-if` (default) the points table is also copied into fresh DuckDB files,
(a) as stored, (b) sorted by (series, time), (c) sorted with a dense INTEGER series key,
to show what a compaction / surrogate key would save. Column compression of the stored
table comes from pragma_storage_info.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    Server,
    Shape,
    dir_size,
    fmt_bytes,
    fmt_int,
    json_bodies,
    print_machine,
    print_table,
    run_clients,
    start_us_for,
    wait_quiet,
)

TARGET_NOTE = "report"


def what_if(db: Path, tmp: Path) -> list[tuple[str, int]]:
    import duckdb

    variants = {
        "as stored (arrival order), fresh file": "SELECT series_id, ts, value FROM src.points",
        "sorted by (series, ts)": "SELECT series_id, ts, value FROM src.points "
                                  "ORDER BY series_id, ts",
        "sorted + dense INTEGER series key": (
            "SELECT k.n AS series_id, p.ts, p.value FROM src.points p JOIN "
            "(SELECT id, (row_number() OVER (ORDER BY id))::INTEGER AS n FROM src.series) k "
            "ON k.id = p.series_id ORDER BY k.n, p.ts"
        ),
    }
    out = []
    for i, (name, sql) in enumerate(variants.items()):
        path = tmp / f"variant{i}.duckdb"
        con = duckdb.connect(str(path), config={"threads": 2, "memory_limit": "2GB"})
        try:
            con.execute(f"ATTACH '{db}' AS src (READ_ONLY)")
            con.execute(f"CREATE TABLE points AS {sql}")
            con.execute("DETACH src")
            con.execute("CHECKPOINT")
        finally:
            con.close()
        out.append((name, dir_size(path) + dir_size(path.with_name(path.name + ".wal"))))
        path.unlink()
    return out


def compression(db: Path) -> list[tuple[str, str, int]]:
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute(
            "SELECT column_name, compression, count(*) FROM pragma_storage_info('points') "
            "WHERE segment_type <> 'VALIDITY' GROUP BY ALL ORDER BY 1, 3 DESC"
        ).fetchall()
        return [(str(a), str(b), int(c)) for a, b, c in rows]
    finally:
        con.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=10_000_000, help="values to load")
    ap.add_argument("--hosts", type=int, default=100)
    ap.add_argument("--fields", type=int, default=10)
    ap.add_argument("--per-request", type=int, default=500)
    ap.add_argument("--decimals", type=int, default=2)
    ap.add_argument("--clients", type=int, default=2)
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--what-if", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--wait-quiet", type=float, default=60.0,
                    help="wait up to this many seconds for other processes to go idle")
    args = ap.parse_args()
    shape = Shape(args.hosts, args.fields, args.per_request, 10.0, "epoch_ms", args.decimals)
    per_round = shape.hosts * shape.points_per_request
    rounds = max(1, -(-args.points // per_round))
    print_machine()
    if args.wait_quiet:
        wait_quiet(args.wait_quiet)
    start_us = start_us_for(shape, rounds)
    bodies = list(json_bodies(shape, rounds, start_us))
    json_bytes = sum(map(len, bodies))
    points = len(bodies) * shape.points_per_request
    print(f"{fmt_int(points)} points in {len(bodies)} requests ({fmt_bytes(json_bytes)} JSON)",
          flush=True)
    server = Server()
    server.start()
    try:
        results, wall = run_clients(server.url, "/v1/ingest?precision=ms", server.headers,
                                    [bodies[i::args.clients] for i in range(args.clients)],
                                    args.connections, 3600)
        errors = sum(r.errors for r in results)
        if errors:
            raise SystemExit(f"{errors} failed requests: "
                             f"{next(r.first_error for r in results if r.first_error)}")
        data_dir = server.data_dir
        assert data_dir is not None
        t0 = time.perf_counter()
        rc = server.stop()
        stop_s = time.perf_counter() - t0
        db = data_dir / "stats.duckdb"
        wal = data_dir / "stats.duckdb.wal"
        db_bytes = dir_size(db)
        wal_bytes = dir_size(wal)
        raw_bytes = dir_size(data_dir / "raw")
        raw_files = sum(1 for p in (data_dir / "raw").rglob("*") if p.is_file())
        comp = compression(db)
        variants: list[tuple[str, int]] = []
        if args.what_if:
            with tempfile.TemporaryDirectory(prefix="storage-whatif-") as tmp:
                variants = what_if(db, Path(tmp))
    finally:
        server.stop()
        server.cleanup()
    print(f"\nloaded in {wall:.1f}s ({fmt_int(points / wall)} points/s); clean shutdown "
          f"{stop_s:.1f}s (exit {rc})\n")
    rows: list[list[object]] = [
        ["points loaded", "", fmt_int(points), ""],
        ["data/stats.duckdb after clean shutdown", "", fmt_bytes(db_bytes),
         f"{db_bytes / points:.2f} B/point"],
        ["data/stats.duckdb.wal left", "", fmt_bytes(wal_bytes), ""],
        ["data/raw (zstd archive of the request bodies)", "", fmt_bytes(raw_bytes),
         f"{raw_bytes / points:.2f} B/point, {raw_files} files"],
        ["request bodies (JSON, uncompressed)", "", fmt_bytes(json_bytes),
         f"{json_bytes / points:.2f} B/point"],
        ["total on disk (db + raw)", "", fmt_bytes(db_bytes + wal_bytes + raw_bytes),
         f"{(db_bytes + wal_bytes + raw_bytes) / points:.2f} B/point"],
    ]
    for name, size in variants:
        rows.append([f"what-if: points table {name}", "", fmt_bytes(size),
                     f"{size / points:.2f} B/point"])
    print_table(["storage", "", "bytes", "per point"], rows)
    print("\ncompression of the stored points table (segments per column and method):")
    print_table(["column", "compression", "segments"], comp)


if __name__ == "__main__":
    main()
