"""`stats-service serve` with what-if patches applied in-process (benchmark experiments).

This never changes src/: it monkeypatches the running process only, to measure what a
proposed change to src/ would gain before anyone writes it properly. Usage:

    STATS_BENCH_PATCHES=switch,devices,usage python benchmarks/serve_patched.py serve

Patches (comma-separated in STATS_BENCH_PATCHES):

- switch   sys.setswitchinterval(0.0005): the writer thread waits less for the GIL
           after each DuckDB call (default interval 5 ms).
- uvloop   run the event loop on uvloop (server.py uses plain asyncio.run today).
- devices  storage/commit.py _touch_devices: remember last_seen per device in memory;
           write only new devices or those last written > 60 s ago, in ONE statement
           (today: executemany of an ON CONFLICT upsert, ~1.6 ms per device per commit).
- usage    storage/commit.py _add_usage: buffer the usage deltas in memory and upsert
           them at most every 5 s (today: one ON CONFLICT upsert per commit). The
           experiment may lose the last <5 s of usage counts at shutdown.
- lastts   storage/commit.py _overlapping: the newest timestamp of each series from an
           in-memory map kept by the (single) writer instead of a SELECT per commit.
- lastflush  storage/commit.py _update_last_values: keep each series' newest point in
           memory and UPDATE the series table at most every 2 s (today: an UPDATE ... FROM
           per commit). Apply after `lastts` when both are used. Reads of last_value may lag
           up to 2 s in the experiment (a real change would overlay the in-memory values).
- series   storage/commit.py _upsert_series: skip the SELECT when every series of the
           group is already known to this writer.
- archive-async  ingest/writer.py Writer._archive_group: write + fsync the archive object
           in a helper thread while the DuckDB transaction runs; the commit waits for it
           before COMMIT, so an acknowledged batch is still archived.
- zstdctx  archive/envelope.py Envelope.to_frame: reuse one ZstdCompressor per thread
           (today a new compressor context per request, ~17 us for a small body).
- rawingest  api/routers/ingest.py: serve POST /v1/ingest with a plain ASGI handler in
           front of FastAPI (no routing, DI, exception middleware; _rawingest.py).
- asyncdeps  api/deps.py: the three per-request dependencies as `async def`, so FastAPI
           does not hop to the thread pool three times per request (_asyncdeps.py).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from typing import Any


def _patch_switch() -> None:
    sys.setswitchinterval(0.0005)


def _patch_uvloop() -> None:
    import asyncio

    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _patch_devices() -> None:
    from stats_service.storage import commit

    seen: dict[tuple[int, str], Any] = {}
    refresh_s = 60.0

    def touch(con: Any, items: Sequence[Any], *_: Any, **__: Any) -> None:
        latest: dict[tuple[int, str], Any] = {}
        for item in items:
            for device in item.batch.devices:
                key = (item.batch.tenant_id, device)
                prev = latest.get(key)
                latest[key] = item.received_at if prev is None else max(prev, item.received_at)
        due = [
            (k, at) for k, at in latest.items()
            if k not in seen or (at - seen[k]).total_seconds() >= refresh_s
        ]
        if not due:
            return
        con.execute(
            "INSERT INTO devices SELECT * FROM (SELECT unnest(?::INTEGER[]), "
            "unnest(?::VARCHAR[]), unnest(?::TIMESTAMP[]), unnest(?::TIMESTAMP[])) "
            "ON CONFLICT (tenant_id, name) DO UPDATE "
            "SET last_seen = greatest(devices.last_seen, excluded.last_seen)",
            [[k[0] for k, _ in due], [k[1] for k, _ in due], [a for _, a in due],
             [a for _, a in due]],
        )
        for k, at in due:
            seen[k] = at

    commit._touch_devices = touch  # type: ignore[assignment]


def _patch_usage() -> None:
    from stats_service.storage import commit

    original = commit._add_usage
    pending: dict[Any, list[int]] = {}
    last = [time.monotonic()]

    def add_usage(con: Any, usage: dict[Any, list[int]], *args: Any, **kwargs: Any) -> None:
        for key, values in usage.items():
            row = pending.setdefault(key, [0, 0, 0, 0])
            for i, v in enumerate(values):
                row[i] += v
        if pending and time.monotonic() - last[0] >= 5.0:
            original(con, dict(pending), *args, **kwargs)
            pending.clear()
            last[0] = time.monotonic()

    commit._add_usage = add_usage  # type: ignore[assignment]


def _patch_lastts() -> None:
    import numpy as np

    from stats_service.storage import commit

    newest: dict[int, int] = {}
    loaded = [False]
    original_update = commit._update_last_values

    def overlapping(con: Any, sid: Any, ts: Any, *_: Any, **__: Any) -> Any:
        if not loaded[0]:
            rows = con.execute(
                "SELECT id, epoch_us(last_ts) FROM series WHERE last_ts IS NOT NULL"
            ).fetchall()
            newest.update({int(a): int(b) for a, b in rows})
            loaded[0] = True
        first = np.ones(sid.size, dtype=bool)
        first[1:] = sid[1:] != sid[:-1]
        ids = sid[first]
        lo = np.iinfo(np.int64).min
        last = np.array([newest.get(int(i), lo) for i in ids], dtype=np.int64)
        run = np.cumsum(first) - 1
        return np.asarray(ts <= last[run])

    def update(con: Any, sid: Any, ts: Any, value: Any, *args: Any, **kwargs: Any) -> None:
        original_update(con, sid, ts, value, *args, **kwargs)
        end = np.ones(sid.size, dtype=bool)
        end[:-1] = sid[1:] != sid[:-1]
        for s, t in zip(sid[end].tolist(), ts[end].tolist(), strict=True):
            if t > newest.get(s, t - 1):
                newest[s] = t

    commit._overlapping = overlapping  # type: ignore[assignment]
    commit._update_last_values = update  # type: ignore[assignment]


def _patch_lastflush() -> None:
    import numpy as np

    from stats_service.storage import commit

    original = commit._update_last_values
    newest: dict[int, tuple[int, float]] = {}
    last = [time.monotonic()]

    def update(con: Any, sid: Any, ts: Any, value: Any, *args: Any, **kwargs: Any) -> None:
        end = np.ones(sid.size, dtype=bool)
        end[:-1] = sid[1:] != sid[:-1]
        for s, t, v in zip(sid[end].tolist(), ts[end].tolist(), value[end].tolist(),
                           strict=True):
            prev = newest.get(s)
            if prev is None or t >= prev[0]:
                newest[s] = (t, v)
        if newest and time.monotonic() - last[0] >= 2.0:
            ids = sorted(newest)
            original(con, np.array(ids, dtype=np.int64),
                     np.array([newest[i][0] for i in ids], dtype=np.int64),
                     np.array([newest[i][1] for i in ids], dtype=np.float64), *args, **kwargs)
            newest.clear()
            last[0] = time.monotonic()

    commit._update_last_values = update  # type: ignore[assignment]


def _patch_series() -> None:
    from stats_service.storage import commit

    original = commit._upsert_series
    known: set[int] = set()

    def upsert(con: Any, batches: Sequence[Any], *args: Any, **kwargs: Any) -> None:
        ids = {sid for b in batches for sid in b.series}
        if ids and ids <= known:
            return
        original(con, batches, *args, **kwargs)
        known.update(ids)

    commit._upsert_series = upsert  # type: ignore[assignment]


def _patch_archive_async() -> None:
    from concurrent.futures import Future, ThreadPoolExecutor

    from stats_service.ingest import writer

    pool = ThreadPoolExecutor(1, thread_name_prefix="bench-archive")
    pending: list[Future[None]] = []
    original_archive = writer.Writer._archive_group
    original_commit = writer.commit_group

    def archive_group(self: Any, items: Any) -> None:
        pending.append(pool.submit(original_archive, self, items))

    def commit_group(*args: Any, **kwargs: Any) -> Any:
        try:
            return original_commit(*args, **kwargs)
        finally:
            while pending:
                pending.pop().result()  # archived before COMMIT; a failure rolls back

    writer.Writer._archive_group = archive_group  # type: ignore[method-assign]
    writer.commit_group = commit_group


def _patch_zstdctx() -> None:
    import threading

    import orjson
    import zstandard

    from stats_service.archive import envelope

    local = threading.local()
    original = envelope.Envelope.to_frame

    def to_frame(self: Any, level: int) -> bytes:
        try:
            text, encoding = self.body.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            return original(self, level)
        line = orjson.dumps({
            "v": 1, "batch_id": self.batch_id, "tenant": self.tenant,
            "tenant_id": self.tenant_id, "protocol": self.protocol,
            "received_at": self.received_at.isoformat() + "Z", "params": self.params,
            "idempotency_key": self.idempotency_key, "encoding": encoding, "body": text,
        })
        comp = getattr(local, "c", None)
        if comp is None or local.level != level:
            comp = local.c = zstandard.ZstdCompressor(level=level)
            local.level = level
        return bytes(comp.compress(line + b"\n"))

    envelope.Envelope.to_frame = to_frame  # type: ignore[method-assign]


def _patch_asyncdeps() -> None:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import _asyncdeps

    _asyncdeps.apply()


def _patch_rawingest() -> None:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import _rawingest
    from stats_service import server

    original = server.create_app

    def create_app(*args: Any, **kwargs: Any) -> Any:
        return _rawingest.wrap(original(*args, **kwargs))

    server.create_app = create_app  # type: ignore[assignment]


PATCHES = {
    "rawingest": _patch_rawingest,
    "archive-async": _patch_archive_async,
    "zstdctx": _patch_zstdctx,
    "asyncdeps": _patch_asyncdeps,
    "switch": _patch_switch,
    "uvloop": _patch_uvloop,
    "devices": _patch_devices,
    "usage": _patch_usage,
    "lastts": _patch_lastts,
    "series": _patch_series,
    "lastflush": _patch_lastflush,
}


def main() -> None:
    names = [n for n in os.environ.get("STATS_BENCH_PATCHES", "").split(",") if n]
    for name in names:
        if name not in PATCHES:
            raise SystemExit(f"unknown patch {name!r}; known: {', '.join(PATCHES)}")
        PATCHES[name]()
    print(f"serve_patched: patches {names or 'none'}", file=sys.stderr, flush=True)
    from stats_service.cli import main as cli_main

    sys.argv = ["stats-service", *sys.argv[1:]]
    cli_main()


if __name__ == "__main__":
    main()
