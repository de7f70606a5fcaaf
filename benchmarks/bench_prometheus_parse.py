"""Prometheus remote write decoding: the protobuf runtime (upb) against a Python decoder.

    .venv/bin/python benchmarks/bench_prometheus_parse.py [--repeat 30]

In-process, one core. For request shapes Prometheus sends (a shard's batch: N series of
8 labels with one sample each, where `unique` has 5 of the 8 label values differ from
series to series and `node` has node_exporter-like labels that recur; and fewer series
with many samples, as after an outage), it times per request:

- snappy: `decompress` alone;
- upb objects: the runtime's ParseFromString with Label messages, reading every label
  and sample through the runtime's objects;
- upb + bytes: labels declared as bytes (as the parser does), each distinct label decoded
  once per request (`decode_label`), samples through the runtime;
- wire: a careful hand-written decoder of the whole message in Python;
- parse, new: `prometheus_remote.parse` (all of the above plus checks and the Batch)
  with its per-process memos emptied first: series never seen before;
- parse, known: the same with the memos warm, as for Prometheus' next scrape.

The whole-message wire decoder lives only here: it was slower than the runtime.

With `--http N` it also starts a real `stats-service serve` and posts N shard batches
(2,000 node_exporter-like series, one sample each, the timestamps of consecutive
scrapes) to POST /api/v1/write over keep-alive HTTP, from 1 and from 4 concurrent
senders (Prometheus' shards), and prints requests/s and samples/s end to end (parse,
archive, durable commit).
"""

from __future__ import annotations

import argparse
import http.client
import struct
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cramjam
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ADMIN_KEY, Server, print_machine
from stats_service.ingest.protocols import prometheus_remote
from stats_service.ingest.protocols.base import ParseContext

T0_MS = 1_714_564_800_000
_DOUBLE = struct.Struct("<d").unpack_from


def _label_schema() -> Any:
    """WriteRequest with Label messages (the upstream shape), for the objects column."""
    field = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(
        name="bench/remote.proto", package="bench", syntax="proto3"
    )
    for name, fields in {
        "Label": [("name", 1, field.TYPE_STRING, ""), ("value", 2, field.TYPE_STRING, "")],
        "Sample": [("value", 1, field.TYPE_DOUBLE, ""), ("timestamp", 2, field.TYPE_INT64, "")],
        "TimeSeries": [
            ("labels", 1, field.TYPE_MESSAGE, ".bench.Label"),
            ("samples", 2, field.TYPE_MESSAGE, ".bench.Sample"),
        ],
        "WriteRequest": [("timeseries", 1, field.TYPE_MESSAGE, ".bench.TimeSeries")],
    }.items():
        msg = proto.message_type.add(name=name)
        for fname, number, ftype, type_name in fields:
            repeated = ftype == field.TYPE_MESSAGE
            label = field.LABEL_REPEATED if repeated else field.LABEL_OPTIONAL
            added = msg.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                added.type_name = type_name
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("bench.WriteRequest"))


LabelWriteRequest = _label_schema()


def unique_labels(i: int) -> list[tuple[str, str]]:
    labels = [
        ("__name__", f"http_requests_total_{i % 50}"),
        ("code", str(200 + i % 5)),
        ("handler", f"/api/v1/h{i}"),
        ("instance", "node-17.example:9100"),
        ("job", "node"),
    ]
    return labels + [(f"label_{k}", f"value-{k}-{i}") for k in range(3)]


def node_labels(i: int) -> list[tuple[str, str]]:
    names = ("node_cpu_seconds_total", "node_network_receive_bytes_total", "node_load1")
    return [
        ("__name__", names[i % 3]),
        ("cpu", str(i % 8)),
        ("env", "prod"),
        ("instance", f"host-{i // 200}:9100"),
        ("job", "node"),
        ("mode", ("idle", "user", "system", "iowait", "irq")[i % 5]),
        ("region", "eu-1"),
        ("team", "infra"),
    ]


def make_body(
    series: int,
    samples: int,
    labels: Callable[[int], list[tuple[str, str]]],
    start_ms: int = T0_MS,
) -> bytes:
    request = LabelWriteRequest()
    for i in range(series):
        ts = request.timeseries.add()
        for name, value in labels(i):
            ts.labels.add(name=name, value=value)
        for s in range(samples):
            ts.samples.add(value=i * 1.5 + s, timestamp=start_ms + s * 15_000)
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


def upb_objects(raw: bytes) -> int:
    request = LabelWriteRequest()
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


def upb_bytes(raw: bytes) -> int:
    request = prometheus_remote.WriteRequest()
    request.ParseFromString(raw)
    seen: dict[bytes, tuple[str, str]] = {}
    samples = 0
    for series in request.timeseries:
        labels = []
        for encoded in series.labels:
            label = seen.get(encoded)
            if label is None:
                label = seen[encoded] = prometheus_remote.decode_label(encoded)
            labels.append(label)
        for sample in series.samples:
            number, ts = sample.value, sample.timestamp
            del number, ts
            samples += 1
    return samples


def cold_parse(body: bytes, ctx: ParseContext) -> object:
    prometheus_remote.series_entry.cache_clear()
    prometheus_remote.checked_label.cache_clear()
    return prometheus_remote.parse(body, ctx)


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
    parser.add_argument(
        "--http", type=int, default=0, metavar="N", help="also POST N batches to a real server"
    )
    args = parser.parse_args()
    print_machine()
    now_us = (T0_MS + 3_600_000) * 1000  # every sample lies in the past
    ctx = ParseContext(tenant_id=1, now_us=now_us, max_future_us=now_us + 600_000_000)
    shapes = [
        (500, 1, "unique", unique_labels),
        (2000, 1, "unique", unique_labels),
        (2000, 1, "node", node_labels),
        (100, 100, "unique", unique_labels),
    ]
    header = f"{'series x samples':>24} {'bytes':>7} {'snappy':>7} {'upb objects':>12} "
    header += f"{'upb + bytes':>12} {'wire':>7} {'parse, new':>11} {'parse, known':>13} "
    header += f"{'samples/s known':>16}"
    print(header)
    for series, samples, kind, labels in shapes:
        body = make_body(series, samples, labels)
        raw = prometheus_remote.decompress(body)
        count = series * samples
        assert upb_objects(raw) == upb_bytes(raw) == wire_walk(raw) == count
        cells = [
            best_ms(lambda body=body: prometheus_remote.decompress(body), args.repeat),
            best_ms(lambda raw=raw: upb_objects(raw), args.repeat),
            best_ms(lambda raw=raw: upb_bytes(raw), args.repeat),
            best_ms(lambda raw=raw: wire_walk(raw), args.repeat),
            best_ms(lambda body=body: cold_parse(body, ctx), args.repeat),
            best_ms(lambda body=body: prometheus_remote.parse(body, ctx), args.repeat),
        ]
        rate = count / (cells[-1] / 1000)
        shape = f"{series} x {samples} ({kind})"
        print(
            f"{shape:>24} {len(body):>7} {cells[0]:>6.2f}m {cells[1]:>11.2f}m "
            f"{cells[2]:>11.2f}m {cells[3]:>6.2f}m {cells[4]:>10.2f}m {cells[5]:>12.2f}m "
            f"{rate:>16,.0f}"
        )
    print("(m = milliseconds per request, best of --repeat runs)")
    if args.http:
        http_run(args.http)
    return 0


def shard_bodies(shard: int, count: int, start_ms: int) -> list[bytes]:
    """`count` consecutive scrapes of a shard's own 2,000 series (as a Prometheus shard:
    a series always goes through the same shard, in time order)."""

    def labels(i: int) -> list[tuple[str, str]]:
        return [*node_labels(i), ("series", f"{shard}-{i}")]

    return [make_body(2000, 1, labels, start_ms + k * 15_000) for k in range(count)]


def http_run(requests: int) -> None:
    """POST /api/v1/write end to end on a real server: 1 sender, then 4."""
    start_ms = (int(time.time()) - 6 * 3600) * 1000
    headers = {
        "X-API-Key": ADMIN_KEY,
        "Content-Type": "application/x-protobuf",
        "Content-Encoding": "snappy",
        "X-Prometheus-Remote-Write-Version": "0.1.0",
    }
    print(f"\nPOST /api/v1/write, {requests} requests of 2,000 series x 1 sample")
    print(f"{'senders':>8} {'requests/s':>11} {'samples/s':>11} {'p50 ms':>7} {'max ms':>7}")
    with Server() as server:
        for senders in (1, 4):
            # the first scrape of every shard creates its series before the timing
            parts = [shard_bodies(k, requests // senders + 1, start_ms) for k in range(senders)]
            for part in parts:
                post(server.port, part.pop(0), headers)
            latencies: list[float] = []
            threads = [
                threading.Thread(target=send, args=(server.port, part, headers, latencies))
                for part in parts
            ]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.perf_counter() - started
            latencies.sort()
            sent = len(latencies)
            print(
                f"{senders:>8} {sent / elapsed:>11.1f} {sent * 2000 / elapsed:>11,.0f} "
                f"{latencies[sent // 2] * 1000:>7.1f} {latencies[-1] * 1000:>7.1f}"
            )
            start_ms += (requests + 2) * 15_000  # the next round writes later scrapes


def send(port: int, part: list[bytes], headers: dict[str, str], latencies: list[float]) -> None:
    """One sender (a Prometheus shard): its requests one after the other, keep-alive."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for data in part:
        started = time.perf_counter()
        conn.request("POST", "/api/v1/write", body=data, headers=headers)
        answer = conn.getresponse()
        answer.read()
        assert answer.status == 204, answer.status
        latencies.append(time.perf_counter() - started)
    conn.close()


def post(port: int, data: bytes, headers: dict[str, str]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("POST", "/api/v1/write", body=data, headers=headers)
    answer = conn.getresponse()
    answer.read()
    conn.close()
    assert answer.status == 204, answer.status


if __name__ == "__main__":
    sys.exit(main())
