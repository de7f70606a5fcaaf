"""Build Prometheus remote write bodies, and (run as a script) the golden cases from them.

    .venv/bin/python tests/unit/ingest/protocols/make_prometheus_cases.py
    STATS_UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/ingest/protocols/test_prometheus_remote.py

writes testcases/prometheus/<case>/input.bin (+ params.json), then expected.json; review
the diff. The schema here is the fuller upstream one (prompb/types.proto, remote.proto of
remote write 1.0: exemplars, native histograms, metadata) plus a field of a future
version, so the cases prove that the parser's smaller schema skips what it does not read.
Bodies are encoded by the protobuf runtime, not by hand, so the cases are real wire data.
"""

from __future__ import annotations

import json
import math
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cramjam
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

CASES = Path(__file__).parent / "testcases" / "prometheus"
T0_MS = 1_714_564_800_000  # 2024-05-01T12:00:00Z, the golden runner's "now"
STALE_NAN = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]
NORMAL_NAN = struct.unpack("<d", struct.pack("<Q", 0x7FF8000000000001))[0]  # Prometheus's NaN

_F = descriptor_pb2.FieldDescriptorProto
_OPT, _REP = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
_SCHEMA: dict[str, list[tuple[str, int, int, int, str]]] = {
    "Label": [("name", 1, _F.TYPE_STRING, _OPT, ""), ("value", 2, _F.TYPE_STRING, _OPT, "")],
    "Sample": [
        ("value", 1, _F.TYPE_DOUBLE, _OPT, ""),
        ("timestamp", 2, _F.TYPE_INT64, _OPT, ""),
    ],
    "Exemplar": [
        ("labels", 1, _F.TYPE_MESSAGE, _REP, ".prometheus.Label"),
        ("value", 2, _F.TYPE_DOUBLE, _OPT, ""),
        ("timestamp", 3, _F.TYPE_INT64, _OPT, ""),
    ],
    "BucketSpan": [
        ("offset", 1, _F.TYPE_SINT32, _OPT, ""),
        ("length", 2, _F.TYPE_UINT32, _OPT, ""),
    ],
    "Histogram": [
        ("count_int", 1, _F.TYPE_UINT64, _OPT, ""),
        ("sum", 3, _F.TYPE_DOUBLE, _OPT, ""),
        ("schema", 4, _F.TYPE_SINT32, _OPT, ""),
        ("zero_threshold", 5, _F.TYPE_DOUBLE, _OPT, ""),
        ("zero_count_int", 6, _F.TYPE_UINT64, _OPT, ""),
        ("positive_spans", 11, _F.TYPE_MESSAGE, _REP, ".prometheus.BucketSpan"),
        ("positive_deltas", 12, _F.TYPE_SINT64, _REP, ""),
        ("timestamp", 15, _F.TYPE_INT64, _OPT, ""),
    ],
    "TimeSeries": [
        ("labels", 1, _F.TYPE_MESSAGE, _REP, ".prometheus.Label"),
        ("samples", 2, _F.TYPE_MESSAGE, _REP, ".prometheus.Sample"),
        ("exemplars", 3, _F.TYPE_MESSAGE, _REP, ".prometheus.Exemplar"),
        ("histograms", 4, _F.TYPE_MESSAGE, _REP, ".prometheus.Histogram"),
        ("future_field", 99, _F.TYPE_STRING, _OPT, ""),  # stands for a later version's field
    ],
    "MetricMetadata": [
        ("type", 1, _F.TYPE_INT32, _OPT, ""),  # an enum upstream; the same varint on the wire
        ("metric_family_name", 2, _F.TYPE_STRING, _OPT, ""),
        ("help", 4, _F.TYPE_STRING, _OPT, ""),
        ("unit", 5, _F.TYPE_STRING, _OPT, ""),
    ],
    "WriteRequest": [
        ("timeseries", 1, _F.TYPE_MESSAGE, _REP, ".prometheus.TimeSeries"),
        ("metadata", 3, _F.TYPE_MESSAGE, _REP, ".prometheus.MetricMetadata"),
    ],
}


def _message_class() -> Any:
    proto = descriptor_pb2.FileDescriptorProto(
        name="tests/prometheus_full.proto", package="prometheus", syntax="proto3"
    )
    for name, fields in _SCHEMA.items():
        msg = proto.message_type.add(name=name)
        for fname, number, ftype, label, type_name in fields:
            added = msg.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                added.type_name = type_name
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("prometheus.WriteRequest"))


FullWriteRequest = _message_class()


@dataclass
class Series:
    """One TimeSeries: labels in the order given (Prometheus sorts them; we need not)."""

    labels: list[tuple[str, str]]
    samples: list[tuple[float, int]] = field(default_factory=list)  # (value, timestamp ms)
    exemplars: int = 0
    histograms: int = 0
    future: str = ""


def write_request(series: list[Series], metadata: int = 0) -> bytes:
    """The protobuf bytes (uncompressed) of a WriteRequest."""
    request = FullWriteRequest()
    for s in series:
        ts = request.timeseries.add()
        for name, value in s.labels:
            ts.labels.add(name=name, value=value)
        for value, timestamp in s.samples:
            ts.samples.add(value=value, timestamp=timestamp)
        for k in range(s.exemplars):
            ex = ts.exemplars.add(value=0.5 + k, timestamp=T0_MS)
            ex.labels.add(name="trace_id", value=f"abc{k}")
        for k in range(s.histograms):
            h = ts.histograms.add(count_int=3 + k, sum=4.5, schema=3, timestamp=T0_MS)
            h.positive_spans.add(offset=0, length=2)
            h.positive_deltas.extend([1, 1])
        if s.future:
            ts.future_field = s.future
    for k in range(metadata):
        request.metadata.add(
            type=1, metric_family_name=f"family_{k}_total", help="A counter.", unit=""
        )
    data: bytes = request.SerializeToString()
    return data


def snappy(data: bytes) -> bytes:
    return bytes(cramjam.snappy.compress_raw(data))


def body(series: list[Series], metadata: int = 0) -> bytes:
    """What Prometheus posts: the snappy block of the WriteRequest."""
    return snappy(write_request(series, metadata))


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def raw_series(labels: list[bytes], value: float, timestamp: int) -> bytes:
    """A WriteRequest entry (field 1) of hand-encoded Label messages and one sample: for
    labels the runtime would never write (bad UTF-8, unknown or broken fields)."""
    sample = b"\x09" + struct.pack("<d", value) + b"\x10" + _varint(timestamp)
    series = b"".join(_field(1, label) for label in labels) + _field(2, sample)
    return _field(1, series)


def named(name: str, *labels: tuple[str, str]) -> list[tuple[str, str]]:
    return [("__name__", name), *labels]


JOB = ("job", "node")
INSTANCE = ("instance", "rpi-4:9100")


def golden_cases() -> dict[str, tuple[bytes, dict[str, str] | None]]:
    """Case name -> (input.bin, params or None)."""
    t = T0_MS
    return {
        "basic": (
            body(
                [
                    Series(
                        named("node_load1", INSTANCE, JOB), [(0.42, t - 30_000), (0.5, t - 15_000)]
                    ),
                    Series(
                        named("http_requests_total", ("code", "200"), ("handler", "/api"), JOB),
                        [(1027.0, t - 15_000)],
                    ),
                    Series(
                        named("esp_temperature_celsius", ("device", "esp32-kitchen"), JOB),
                        [(21.5, t)],
                    ),
                    Series(named("up", JOB, INSTANCE), [(1.0, t)]),
                ]
            ),
            None,
        ),
        "unsorted_and_empty_labels": (
            body(
                [
                    Series(
                        [("zone", "b"), ("__name__", "room_temp"), ("alpha", ""), ("a", "1")],
                        [(19.25, t)],
                    )
                ]
            ),
            None,
        ),
        "stale_markers": (
            body(
                [
                    Series(named("node_load1", INSTANCE), [(0.3, t - 15_000), (STALE_NAN, t)]),
                    Series(named("gone_metric", INSTANCE), [(STALE_NAN, t)]),
                ]
            ),
            None,
        ),
        "unknown_fields": (
            body(
                [
                    Series(named("rpc_seconds_count", JOB), [(7.0, t)], exemplars=2, future="x"),
                    Series(named("exemplars_only", JOB), [], exemplars=1),
                ],
                metadata=3,
            ),
            None,
        ),
        "metadata_only": (body([], metadata=2), None),
        "empty_request": (body([]), None),
        "native_histograms": (
            body(
                [
                    Series(named("rpc_duration_seconds", JOB), [], histograms=2),
                    Series(named("rpc_total", JOB), [(3.0, t)]),
                ]
            ),
            None,
        ),
        "missing_name": (
            body(
                [
                    Series([JOB, INSTANCE], [(1.0, t)]),
                    Series(named("up", JOB), [(1.0, t)]),
                ]
            ),
            None,
        ),
        "all_series_invalid": (
            body([Series([JOB], [(1.0, t)]), Series([("__name__", "")], [(2.0, t)])]),
            None,
        ),
        "bad_labels": (
            body(
                [
                    Series(named("a", ("1bad", "x")), [(1.0, t)]),
                    Series(named("b", JOB, JOB), [(2.0, t)]),
                    Series(named("c", ("long", "v" * 1025)), [(3.0, t)]),
                    Series([("__name__", "d"), ("__name__", "e")], [(4.0, t)]),
                    Series(named("f", *[(f"l{k}", "v") for k in range(64)]), [(5.0, t)]),
                    Series(named("bad\nname"), [(6.0, t)]),
                    Series(named("ok_metric", ("dotted.name", "v"), ("__meta_x", "y")), [(7.0, t)]),
                ]
            ),
            None,
        ),
        "bad_samples": (
            body(
                [
                    Series(
                        named("mixed", JOB),
                        [
                            (1.0, t - 2000),
                            (NORMAL_NAN, t - 1000),
                            (math.inf, t),
                            (-math.inf, t + 1000),
                            (2.0, t + 2000),
                        ],
                    ),
                    Series(named("future", JOB), [(1.0, t + 3_600_000), (1.5, t)]),
                    Series(named("ancient", JOB), [(1.0, -2_208_988_800_001), (2.0, 0)]),
                ]
            ),
            None,
        ),
        "device_key": (
            body(
                [
                    Series(named("cpu_temp", JOB), [(48.0, t)]),
                    Series(named("cpu_temp", JOB, ("device", "pico-1")), [(47.0, t)]),
                ]
            ),
            {"device": "pico-1"},
        ),
        "not_snappy": (b"\xff\x06\x00\x00sNaPpY this is the framed format, not a block", None),
        "not_protobuf": (snappy(b"\x0a\xff\xff\xff\xff\x0f garbage"), None),
        "label_wire_edges": (
            snappy(
                raw_series([b"\x0a\x08__name__\x12\x03bad", b"\x0a\x02\xc3\x28\x12\x01x"], 1.0, t)
                + raw_series([b"\x0a\x08__name__\x12\x04cut_", b"\x0a\x05job\x12"], 2.0, t)
                + raw_series([b"\x0a\x08__name__\x12\x03int", b"\x08\x05"], 3.0, t)
                + raw_series(
                    # a later version's field 3 (varint, 64-bit, bytes) inside a Label
                    [b"\x12\x05extra\x0a\x08__name__\x18\x01\x21" + b"\x00" * 8],
                    4.0,
                    t,
                )
                + write_request([Series(named("fine"), [(5.0, t)])])
            ),
            None,
        ),
        "decompression_bomb": (_varint(300 * 1024 * 1024) + b"\x00" * 16, None),
        "empty_body": (b"", None),
    }


def main() -> int:
    for name, (data, params) in golden_cases().items():
        case = CASES / name
        case.mkdir(parents=True, exist_ok=True)
        (case / "input.bin").write_bytes(data)
        params_file = case / "params.json"
        if params:
            params_file.write_text(json.dumps(params) + "\n")
        elif params_file.exists():
            params_file.unlink()
    print(f"wrote {len(golden_cases())} cases under {CASES}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
