"""Summarise a `py-spy record --format raw` profile of the server by where time goes.

Each stack is put in one category, deciding from the leaf upwards by the first frame
that matches a rule (file, function or the text of the sampled source line). Output:
samples per thread and per category, as a share of all on-CPU samples.

    .venv/bin/python benchmarks/profile_summary.py profile.txt [--top 25]

Only Python-visible threads are sampled: DuckDB's own worker threads are not, but the
time a Python thread spends inside `con.execute()` is attributed to that line.
"""

from __future__ import annotations

import argparse
import linecache
import re
import sys
from collections import Counter
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^():]+):(?P<line>\d+)\)$")


def _source_line(file: str, line: int) -> str:
    for base in [SRC, *map(Path, sys.path)]:
        path = base / file
        if path.is_file():
            return linecache.getline(str(path), line).strip()
    return ""


# (category, predicate on (func, file, source line)); checked leaf -> root per stack.
def _rules() -> list[tuple[str, object]]:
    def f(file_part: str, func: str | None = None, text: str | None = None) -> object:
        def match(fn: str, fl: str, src: str) -> bool:
            return (
                file_part in fl
                and (func is None or fn == func or fn.startswith(func + "."))
                and (text is None or text in src)
            )
        return match

    return [
        # writer thread: the commit
        ("writer: DuckDB COMMIT (WAL write + fsync)", f("storage/embedded.py", text="COMMIT")),
        ("writer: DuckDB DELETE of replaced points", f("storage/commit.py", "_delete_existing")),
        ("writer: DuckDB DELETE of replaced points", f("storage/commit.py", text="DELETE")),
        ("writer: overlap check (series.last_ts lookup)",
         f("storage/commit.py", "_overlapping")),
        ("writer: DuckDB UPDATE series last values",
         f("storage/commit.py", "_update_last_values")),
        ("writer: DuckDB INSERT points (arrow scan)",
         f("storage/commit.py", text="INSERT INTO points")),
        ("writer: numpy sort / dedupe", f("storage/commit.py", "_dedupe_sorted")),
        ("writer: numpy concat / arrow table build", f("storage/commit.py", "_write_points")),
        ("writer: series upsert", f("storage/commit.py", "_upsert_series")),
        ("writer: devices upsert", f("storage/commit.py", "_touch_devices")),
        ("writer: usage upsert", f("storage/commit.py", "_add_usage")),
        ("writer: idempotency", f("storage/commit.py", "_save_idempotency")),
        ("writer: idempotency", f("storage/commit.py", "_stored_responses")),
        ("writer: other commit_group", f("storage/commit.py")),
        ("writer: archive object write + fsync", f("archive/local.py")),
        ("writer: archive grouping", f("ingest/writer.py", "Writer._archive_group")),
        ("writer: queue take / linger", f("ingest/writer.py", "Writer._take")),
        ("writer: resolve futures / log", f("ingest/writer.py")),
        ("writer: DuckDB BEGIN / transaction",
         f("storage/embedded.py", "EmbeddedStore.transaction")),
        # parse (thread pool for large bodies, event loop for small ones)
        ("parse: zstd compress of archive frame", f("archive/envelope.py", text="compress")),
        ("parse: archive envelope JSON encode", f("archive/envelope.py", text="orjson.dumps")),
        ("parse: archive envelope (body decode etc.)", f("archive/envelope.py")),
        ("parse: JSON decode (orjson.loads)", f("protocols/json_v1.py", text="orjson.loads")),
        ("parse: timestamp parsing", f("ingest/timestamps.py")),
        ("parse: numpy arrays from lists (BatchBuilder.build)",
         f("protocols/base.py", "BatchBuilder.build")),
        ("parse: series keys / hashing", f("stats_service/model.py")),
        ("parse: BatchBuilder", f("protocols/base.py")),
        ("parse: per-point / per-value Python loop (json_v1)", f("protocols/json_v1.py")),
        # reads
        ("read: DuckDB aggregate query", f("query/aggregate.py", text="execute")),
        ("read: series ownership check (DuckDB)", f("query/series.py")),
        ("read: bucket labels (timestamp strings)", f("query/columns.py", "times")),
        ("read: result columns to lists", f("query/columns.py")),
        ("read: fill / placement (numpy)", f("query/fill.py")),
        ("read: buckets", f("query/buckets.py")),
        ("read: parameter parsing", f("query/params.py")),
        ("read: aggregate post-processing", f("query/aggregate.py")),
        ("read: other query code", f("stats_service/query/")),
        ("read: store cursor open/close", f("storage/embedded.py", "EmbeddedStore.reader")),
        ("read: JSON encode of the response", f("routers/series.py", "_json")),
        ("read: series router", f("routers/series.py")),
        ("pipeline: limits / known-series check",
         f("ingest/pipeline.py", "Pipeline._check_limits")),
        ("pipeline: known series / tenant lookups (DuckDB)", f("storage/embedded.py")),
        ("pipeline: batch id, envelope, bookkeeping", f("ingest/pipeline.py")),
        # HTTP and the event loop
        ("http: prometheus metrics", f("prometheus_client/")),
        ("http: logging (structlog)", f("structlog/")),
        ("http: request metrics middleware", f("api/middleware.py")),
        ("http: auth (key hash, cache)", f("auth/")),
        ("http: request body read (ingest router)", f("routers/ingest.py", "read_body")),
        ("http: ingest router", f("routers/ingest.py")),
        ("http: FastAPI/Starlette routing, DI, responses", f("fastapi/")),
        ("http: FastAPI/Starlette routing, DI, responses", f("starlette/")),
        ("http: pydantic", f("pydantic")),
        ("http: uvicorn protocol (httptools / h11)", f("uvicorn/")),
        ("http: anyio thread hand-off", f("anyio/")),
        ("http: asyncio event loop", f("asyncio/")),
        ("http: asyncio event loop", f("uvloop/")),
        ("thread pool / threading", f("concurrent/futures")),
        ("thread pool / threading", f("threading.py")),
    ]


RULES = _rules()
IDLE = "idle (waiting on a lock, condition or epoll)"


# Leaves that mean "blocked": Python-level waits, and native waits seen from Python as the
# calling frame (an idle ThreadPoolExecutor worker; uvloop's run loop in epoll).
IDLE_LEAVES = {
    "Condition.wait", "EpollSelector.select", "Event.wait", "sleep", "select",
    "_worker", "Runner.run",
}


def classify(frames: list[str]) -> str:
    parsed = []
    for fr in frames:
        m = FRAME.match(fr)
        if m:
            parsed.append((m["func"], m["file"], int(m["line"])))
    if parsed and parsed[-1][0] in IDLE_LEAVES:
        return IDLE
    for func, file, line in reversed(parsed):
        src = _source_line(file, line) if "stats_service" in file else ""
        for name, match in RULES:
            if match(func, file, src):  # type: ignore[operator]
                return name
    if parsed:
        func, file, _ = parsed[-1]
        return f"other: {func} ({file})"
    return "other"


def summarise(text: str, top: int = 25, thread_filter: str | None = None) -> str:
    """Tables of the busy samples of `text`; only threads whose name starts with
    `thread_filter` when given (e.g. "stats-writer": where the writer's wall time goes)."""
    cats: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = idle = 0
    for raw in text.splitlines():
        raw = raw.strip()
        if not raw:
            continue
        stack, _, count = raw.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        parts = stack.split(";")
        head = parts[0]
        thread = head.split(": ", 1)[1] if ": " in head else head
        if thread.startswith("AnyIO worker"):
            thread = "AnyIO worker threads (parse)"
        elif thread.startswith("thread ("):
            thread = "other threads"
        if thread_filter and not thread.startswith(thread_filter):
            continue
        cat = classify(parts[1:])
        if cat == IDLE:
            idle += n
            continue
        threads[thread] += n
        cats[cat] += n
        total += n
    if not total:
        return "(empty profile)"
    out = [f"busy samples: {total} (left out as idle: {idle})", "",
           "| thread | samples | share |", "|---|---|---|"]
    out += [f"| {t} | {n} | {n / total:.1%} |" for t, n in threads.most_common()]
    out += ["", "| where the time goes | samples | share |", "|---|---|---|"]
    out += [f"| {c} | {n} | {n / total:.1%} |" for c, n in cats.most_common(top)]
    rest = total - sum(n for _, n in cats.most_common(top))
    if rest:
        out.append(f"| (everything else) | {rest} | {rest / total:.1%} |")
    groups: Counter[str] = Counter()
    for c, n in cats.items():
        groups[c.split(":", 1)[0]] += n
    out += ["", "| stage | share |", "|---|---|"]
    out += [f"| {g} | {n / total:.1%} |" for g, n in groups.most_common()]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("profile", type=Path, help="py-spy --format raw output")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--thread", help="only threads whose name starts with this")
    args = ap.parse_args()
    print(summarise(args.profile.read_text(), args.top, args.thread))


if __name__ == "__main__":
    main()
