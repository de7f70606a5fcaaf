"""Cost of the live feed for ingest, and its delivery latency, with 0, 1 and 10 subscribers.

    .venv/bin/python benchmarks/bench_live.py                       # 0,1,10 subscribers, 2 rounds
    .venv/bin/python benchmarks/bench_live.py --subscribers 0,10 --requests 100 --rounds 1
    .venv/bin/python benchmarks/bench_live.py --no-compression      # clients without deflate

Each measurement starts a fresh `stats-service serve`, connects N WebSocket subscribers
that select every series of the tenant (the worst case: each gets every point) and read
as fast as they can, then posts `--requests` JSON batches (`--points` points over
`--series` series, timestamps = the time of sending) from `--concurrency` clients. It
prints ingest throughput, the server's CPU time per million points (all its threads,
from /proc), the writer's commit time per million points (the
`stats_writer_commit_duration_seconds` sum), and for the subscribers the points received
and the delivery latency (receipt time minus the point's timestamp, so it includes the
ingest request, the group commit and the push). Configurations alternate within a round,
so that a change in the machine's load shows up in every one of them.
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
from websockets.asyncio.client import ClientConnection, connect

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ADMIN_KEY, Server, other_busy_processes, print_machine, print_table

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


class Subscriber:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.points = 0
        self.latencies: list[float] = []
        self.closed: int | None = None

    async def read(self) -> None:
        try:
            async for frame in self.ws:
                now = time.time()
                message = json.loads(frame)
                if message["type"] != "points":
                    continue
                self.points += len(message["v"])
                first = message["t"][0]
                sent = _epoch(first)
                self.latencies.append(now - sent)
        except Exception:  # the close code is what matters
            pass
        self.closed = self.ws.close_code


def _epoch(text: str) -> float:
    # "2026-12-06T18:48:05.297888Z"
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def run_one(n_subscribers: int, args: argparse.Namespace) -> dict[str, float]:
    with Server(env={"STATS_LIVE_QUEUE_BYTES": str(64 * 1024 * 1024)}) as server:
        ws_url = server.url.replace("http://", "ws://") + f"/v1/live?key={ADMIN_KEY}"
        options = {"compression": None} if args.no_compression else {}
        subscribers = [
            Subscriber(await connect(ws_url, **options))  # type: ignore[arg-type]
            for _ in range(n_subscribers)
        ]
        for s in subscribers:
            assert json.loads(await s.ws.recv())["type"] == "hello"
        readers = [asyncio.create_task(s.read()) for s in subscribers]
        metrics = [f"m{i}" for i in range(args.series)]
        per_entry = len(metrics)
        entries = max(1, args.points // per_entry)
        cpu0, commit0 = (
            cpu_seconds(server.pid),
            metric(server.url, "stats_writer_commit_duration_seconds_sum"),
        )
        posted = 0
        started = time.perf_counter()

        async def poster(count: int) -> None:
            nonlocal posted
            async with httpx.AsyncClient(
                base_url=server.url, headers=server.headers, timeout=60
            ) as c:
                for _ in range(count):
                    now_us = int(time.time() * 1_000_000)
                    body = {
                        "device": "bench",
                        "points": [
                            {"ts": now_us + i, "values": {m: float(i) for m in metrics}}
                            for i in range(entries)
                        ],
                    }
                    answer = await c.post("/v1/ingest?precision=us", content=json.dumps(body))
                    assert answer.status_code == 202, answer.text
                    posted += entries * per_entry

        per = args.requests // args.concurrency
        await asyncio.gather(*(poster(per) for _ in range(args.concurrency)))
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(server.pid) - cpu0
        commit = metric(server.url, "stats_writer_commit_duration_seconds_sum") - commit0
        deadline = time.monotonic() + 30
        while any(s.points < posted and s.closed is None for s in subscribers):
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        dropped = metric(server.url, "stats_live_dropped_subscribers_total")
        for s in subscribers:
            await s.ws.close()
        await asyncio.gather(*readers)
        latencies = sorted(x for s in subscribers for x in s.latencies)
        return {
            "points": posted,
            "rate": posted / elapsed,
            "cpu_per_m": cpu / posted * 1e6,
            "commit_per_m": commit / posted * 1e6,
            "received": min((s.points for s in subscribers), default=0),
            "p50": statistics.median(latencies) * 1000 if latencies else float("nan"),
            "p99": latencies[int(len(latencies) * 0.99)] * 1000 if latencies else float("nan"),
            "max": latencies[-1] * 1000 if latencies else float("nan"),
            "dropped": dropped,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscribers", default="0,1,10")
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--series", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--no-compression",
        action="store_true",
        help="subscribers do not offer permessage-deflate (the server then does not compress)",
    )
    args = parser.parse_args()
    print_machine()
    print(f"busy before: {other_busy_processes() or 'nothing else busy'}")
    counts = [int(x) for x in args.subscribers.split(",")]
    results: dict[int, list[dict[str, float]]] = {n: [] for n in counts}
    for _ in range(args.rounds):
        for n in counts:
            results[n].append(asyncio.run(run_one(n, args)))
    print(f"busy after: {other_busy_processes() or 'nothing else busy'}")
    rows = []
    for n in counts:
        for r in results[n]:
            rows.append(
                [
                    n,
                    f"{r['points']:,.0f}",
                    f"{r['rate']:,.0f}",
                    f"{r['cpu_per_m']:.2f}",
                    f"{r['commit_per_m']:.2f}",
                    f"{r['received']:,.0f}",
                    f"{r['p50']:.0f}",
                    f"{r['p99']:.0f}",
                    f"{r['max']:.0f}",
                    f"{r['dropped']:.0f}",
                ]
            )
    print_table(
        [
            "subscribers",
            "points",
            "points/s",
            "server CPU s/M pts",
            "commit s/M pts",
            "received (min/sub)",
            "latency p50 ms",
            "p99 ms",
            "max ms",
            "dropped",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
