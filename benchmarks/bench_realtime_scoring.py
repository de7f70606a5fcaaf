"""Cost of real-time anomaly scoring for ingest: 100 series with a trained model, with
real-time scoring off and on.

    .venv/bin/python benchmarks/bench_realtime_scoring.py                 # 2 rounds
    .venv/bin/python benchmarks/bench_realtime_scoring.py --rounds 1 --steady-s 10

Each measurement starts a fresh `stats-service serve` (STATS_REALTIME_SCORING=false or
true), posts an hour of history for `--series` metrics of one device, trains a model
for each (`POST /v1/anomalies/train`, robust_z, 60 s windows) and waits until the
scorer has loaded them. Then two loads, like bench_live.py does:

- bulk: `--requests` JSON batches of `--points` points over the series (timestamps =
  the time of sending) from `--concurrency` clients as fast as they go: ingest
  throughput, the server's CPU time per million points (all threads, from /proc), the
  writer's commit time per million points, and for scoring the points it scored and
  dropped (its CPU budget) and its busy seconds (/metrics);
- steady: every series at `--hz` points per second for `--steady-s` seconds (one
  request per tick with one point per series): request latency p50/p99, server CPU per
  second, and the scorer's busy share.

After each load the benchmark waits (at most 120 s) until the scorer has scored or
dropped every posted point, and reports how long that took after the last answer, so
that no scoring spills into the next load.

Configurations alternate within a round, so a change in the machine's load shows in
each of them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Server, other_busy_processes, print_machine, print_table

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def metric(url: str, name: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=30).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name + " ") or line.startswith(name + "{")
    )


def prepare(server: Server, metrics: list[str]) -> None:
    """An hour of history per series and a trained model for each."""
    now = int(time.time())
    start = now - 3600
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=120) as c:
        body = {
            "device": "bench",
            "points": [
                {"ts": start + 10 * i, "values": {m: 20.0 + (i % 7) * 0.1 for m in metrics}}
                for i in range(355)
            ],
        }
        answer = c.post("/v1/ingest?precision=s", content=json.dumps(body))
        assert answer.status_code == 202, answer.text
        answer = c.post(
            "/v1/anomalies/train",
            json={
                "device": "bench",
                "from": str(start),
                "to": str(now),
                "window": "60s",
                "detector": "robust_z",
            },
        )
        assert answer.status_code == 202, answer.text
        task = answer.json()
        while task["state"] not in ("SUCCESS", "FAILURE"):
            time.sleep(0.2)
            task = c.get(f"/tasks/{task['task_id']}").json()
        assert task["state"] == "SUCCESS", task
        assert len(task["result"]["models"]) == len(metrics)
    time.sleep(3.0)  # the scorer reads the model list every 2 s


async def catch_up(server: Server, base: float, posted: int, on: bool) -> float:
    """Seconds after the last answer until the scorer has scored or dropped every posted
    point (0 when scoring is off; at most 120 s)."""
    if not on:
        return 0.0
    started = time.perf_counter()
    while time.perf_counter() - started < 120:
        done = metric(server.url, "stats_realtime_scored_points_total") + metric(
            server.url, "stats_realtime_dropped_points_total"
        )
        if done - base >= posted:
            break
        await asyncio.sleep(0.1)
    return time.perf_counter() - started


async def bulk(server: Server, metrics: list[str], args: argparse.Namespace) -> dict[str, float]:
    entries = max(1, args.points // len(metrics))
    before = {
        "cpu": cpu_seconds(server.pid),
        "commit": metric(server.url, "stats_writer_commit_duration_seconds_sum"),
        "scored": metric(server.url, "stats_realtime_scored_points_total"),
        "dropped": metric(server.url, "stats_realtime_dropped_points_total"),
        "busy": metric(server.url, "stats_realtime_busy_seconds_total"),
    }
    posted = 0
    started = time.perf_counter()

    async def poster(count: int) -> None:
        nonlocal posted
        async with httpx.AsyncClient(base_url=server.url, headers=server.headers, timeout=60) as c:
            for _ in range(count):
                now_us = int(time.time() * 1_000_000)
                body = {
                    "device": "bench",
                    "points": [
                        {"ts": now_us + i, "values": {m: 20.0 + (i % 5) * 0.1 for m in metrics}}
                        for i in range(entries)
                    ],
                }
                answer = await c.post("/v1/ingest?precision=us", content=json.dumps(body))
                assert answer.status_code == 202, answer.text
                posted += entries * len(metrics)

    per = args.requests // args.concurrency
    await asyncio.gather(*(poster(per) for _ in range(args.concurrency)))
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds(server.pid) - before["cpu"]
    commit = metric(server.url, "stats_writer_commit_duration_seconds_sum") - before["commit"]
    caught_up = await catch_up(server, before["scored"] + before["dropped"], posted, args.scoring)
    scored = metric(server.url, "stats_realtime_scored_points_total") - before["scored"]
    dropped = metric(server.url, "stats_realtime_dropped_points_total") - before["dropped"]
    busy = metric(server.url, "stats_realtime_busy_seconds_total") - before["busy"]
    return {
        "points": posted,
        "rate": posted / elapsed,
        "cpu_per_m": cpu / posted * 1e6,
        "commit_per_m": commit / posted * 1e6,
        "scored": scored,
        "dropped": dropped,
        "busy": busy,
        "seconds": elapsed,
        "catch_up": caught_up,
    }


async def steady(server: Server, metrics: list[str], args: argparse.Namespace) -> dict[str, float]:
    tick = 1.0 / args.hz
    latencies: list[float] = []
    cpu0 = cpu_seconds(server.pid)
    busy0 = metric(server.url, "stats_realtime_busy_seconds_total")
    scored0 = metric(server.url, "stats_realtime_scored_points_total")
    dropped0 = metric(server.url, "stats_realtime_dropped_points_total")
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=server.url, headers=server.headers, timeout=60) as c:
        n = int(args.steady_s * args.hz)
        for k in range(n):
            due = started + k * tick
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            now_us = int(time.time() * 1_000_000)
            body = {
                "device": "bench",
                "points": [{"ts": now_us, "values": {m: 20.0 for m in metrics}}],
            }
            sent = time.perf_counter()
            answer = await c.post("/v1/ingest?precision=us", content=json.dumps(body))
            latencies.append(time.perf_counter() - sent)
            assert answer.status_code == 202, answer.text
    elapsed = time.perf_counter() - started
    caught_up = await catch_up(
        server, scored0 + dropped0, len(latencies) * len(metrics), args.scoring
    )
    latencies.sort()
    return {
        "cpu_share": (cpu_seconds(server.pid) - cpu0) / elapsed,
        "busy_share": (metric(server.url, "stats_realtime_busy_seconds_total") - busy0) / elapsed,
        "scored": metric(server.url, "stats_realtime_scored_points_total") - scored0,
        "points": len(latencies) * len(metrics),
        "dropped": metric(server.url, "stats_realtime_dropped_points_total") - dropped0,
        "catch_up": caught_up,
        "p50": statistics.median(latencies) * 1000,
        "p99": latencies[int(len(latencies) * 0.99)] * 1000,
    }


async def run_one(on: bool, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    metrics = [f"m{i}" for i in range(args.series)]
    env = {"STATS_REALTIME_SCORING": "true" if on else "false"}
    args.scoring = on
    with Server(env=env) as server:
        prepare(server, metrics)
        return {
            "bulk": await bulk(server, metrics, args),
            "steady": await steady(server, metrics, args),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--series", type=int, default=100)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--hz", type=float, default=10.0)
    parser.add_argument("--steady-s", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print_machine()
    print(f"busy before: {other_busy_processes() or 'nothing else busy'}")
    results: dict[bool, list[dict[str, dict[str, float]]]] = {False: [], True: []}
    for _ in range(args.rounds):
        for on in (False, True):
            results[on].append(asyncio.run(run_one(on, args)))
    print(f"busy after: {other_busy_processes() or 'nothing else busy'}")
    rows = []
    for on in (False, True):
        for r in results[on]:
            b = r["bulk"]
            rows.append(
                [
                    "on" if on else "off",
                    f"{b['points']:,.0f}",
                    f"{b['rate']:,.0f}",
                    f"{b['cpu_per_m']:.2f}",
                    f"{b['commit_per_m']:.2f}",
                    f"{b['scored']:,.0f}",
                    f"{b['dropped']:,.0f}",
                    f"{b['busy']:.2f}",
                    f"{b['catch_up']:.1f}",
                ]
            )
    print("\nbulk ingest")
    print_table(
        [
            "real-time scoring",
            "points",
            "points/s",
            "server CPU s/M pts",
            "commit s/M pts",
            "scored",
            "dropped",
            "scorer busy s",
            "scored all after s",
        ],
        rows,
    )
    rows = []
    for on in (False, True):
        for r in results[on]:
            s = r["steady"]
            rows.append(
                [
                    "on" if on else "off",
                    f"{s['points']:,.0f}",
                    f"{s['scored']:,.0f}",
                    f"{s['dropped']:,.0f}",
                    f"{s['catch_up']:.1f}",
                    f"{s['cpu_share'] * 100:.1f}",
                    f"{s['busy_share'] * 100:.1f}",
                    f"{s['p50']:.1f}",
                    f"{s['p99']:.1f}",
                ]
            )
    print(f"\nsteady: {args.series} series at {args.hz:g} Hz for {args.steady_s:g} s")
    print_table(
        [
            "real-time scoring",
            "points",
            "scored",
            "dropped",
            "scored all after s",
            "server CPU % of a core",
            "scorer busy %",
            "request p50 ms",
            "p99 ms",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
