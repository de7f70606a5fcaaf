"""Prometheus remote write decoding: the protobuf runtime (upb) against a Python decoder.

    .venv/bin/python benchmarks/bench_prometheus_parse.py [--repeat 30]

In-process, one core. For request shapes Prometheus sends (a shard's batch: N series
of 8 labels with one sample each; and fewer series with many samples, as after an
outage), it times per request:

- snappy: `decompress` alone;
- upb walk: the runtime's ParseFromString plus reading every label and sample;
- wire walk: a careful hand-written protobuf wire decoder in Python doing the same;
- parse: `prometheus_remote.parse` (snappy + upb + validation + the columnar Batch).

The wire decoder lives only here: it is what the parser would have used had it been
faster. It was not (see docs/protocols/prometheus.md for the numbers on one machine).
"""

from __future__ import annotations

import argparse
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cramjam

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import print_machine
from stats_service.ingest.protocols import prometheus_remote
from stats_service.ingest.protocols.base import ParseContext

T0_MS = 1_714_564_800_000
_DOUBLE = struct.Struct("<d").unpack_from


def make_body(series: int, samples: int, labels: int = 8) -> bytes:
    request = prometheus_remote.WriteRequest()
    for i in range(series):
        ts = request.timeseries.add()
        ts.labels.add(name="__name__", value=f"http_requests_total_{i % 50}")
        ts.labels.add(name="code", value=str(200 + i % 5))
        ts.labels.add(name="handler", value=f"/api/v1/h{i}")
        ts.labels.add(name="instance", value="node-17.example:9100")
        ts.labels.add(name="job", value="node")
        for k in range(labels - 5):
            ts.labels.add(name=f"label_{k}", value=f"value-{k}-{i}")
        for s in range(samples):
            ts.samples.add(value=i * 1.5 + s, timestamp=T0_MS + s * 15_000)
    return bytes(cramjam.snappy.compress_raw(request.SerializeToString()))


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    byte = buf[pos]
    if byte < 0x80:
        return byte, pos + 1
    result, shift, pos = byte & 0x7F, 7, pos + 1
    while True:
        byte = buf[pos]
        result |= (byte & 0x7F) << shift
        pos += 1
        if byte < 0x80:
            return result, pos
        shift += 7


def wire_walk(raw: bytes) -> int:
    """Labels and samples of a WriteRequest by hand (fields 1/2 of the messages only)."""
    pos, end, samples = 0, len(raw), 0
    while pos < end:
        tag = raw[pos]
        length, pos = _varint(raw, pos + 1)
        stop = pos + length
        if tag != 0x0A:
            pos = stop
            continue
        labels = []
        while pos < stop:
            field = raw[pos]
            length, pos = _varint(raw, pos + 1)
            inner = pos + length
            if field == 0x0A:
                name = value = ""
                while pos < inner:
                    ltag = raw[pos]
                    size, pos = _varint(raw, pos + 1)
                    if ltag == 0x0A:
                        name = raw[pos : pos + size].decode()
                    elif ltag == 0x12:
                        value = raw[pos : pos + size].decode()
                    pos += size
                labels.append((name, value))
            elif field == 0x12:
                number, ts = 0.0, 0
                while pos < inner:
                    stag = raw[pos]
                    if stag == 0x09:
                        number = _DOUBLE(raw, pos + 1)[0]
                        pos += 9
                    elif stag == 0x10:
                        ts, pos = _varint(raw, pos + 1)
                    else:
                        raise ValueError("unexpected field in Sample")
                del number, ts
                samples += 1
            pos = inner
    return samples


def upb_walk(raw: bytes) -> int:
    request = prometheus_remote.WriteRequest()
    request.ParseFromString(raw)
    samples = 0
    for series in request.timeseries:
        labels = [(label.name, label.value) for label in series.labels]
        del labels
        for sample in series.samples:
            number, ts = sample.value, sample.timestamp
            del number, ts
            samples += 1
    return samples


def best_ms(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=30, help="runs per cell (best counts)")
    args = parser.parse_args()
    print_machine()
    now_us = (T0_MS + 3_600_000) * 1000  # every sample lies in the past
    ctx = ParseContext(tenant_id=1, now_us=now_us, max_future_us=now_us + 600_000_000)
    shapes = [(500, 1), (2000, 1), (100, 100)]
    header = f"{'series x samples':>17} {'bytes':>8} {'snappy':>8} {'upb walk':>9} "
    header += f"{'wire walk':>10} {'parse':>8} {'parse samples/s':>16}"
    print(header)
    for series, samples in shapes:
        body = make_body(series, samples)
        raw = prometheus_remote.decompress(body)
        assert upb_walk(raw) == wire_walk(raw) == series * samples
        snappy_ms = best_ms(lambda body=body: prometheus_remote.decompress(body), args.repeat)
        upb_ms = best_ms(lambda raw=raw: upb_walk(raw), args.repeat)
        wire_ms = best_ms(lambda raw=raw: wire_walk(raw), args.repeat)
        parse_ms = best_ms(lambda body=body: prometheus_remote.parse(body, ctx), args.repeat)
        rate = series * samples / (parse_ms / 1000)
        print(
            f"{f'{series} x {samples}':>17} {len(body):>8} {snappy_ms:>7.2f}m {upb_ms:>8.2f}m "
            f"{wire_ms:>9.2f}m {parse_ms:>7.2f}m {rate:>16,.0f}"
        )
    print("(m = milliseconds per request, best of --repeat runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
