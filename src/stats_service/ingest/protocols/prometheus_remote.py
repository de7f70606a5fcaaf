"""Prometheus remote write 1.0: a snappy-compressed `prometheus.WriteRequest` protobuf.

The body is snappy *block* compression (not the framed stream format) of

    WriteRequest { repeated TimeSeries timeseries = 1; repeated MetricMetadata metadata = 3; }
    TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2;
                   repeated Exemplar exemplars = 3; repeated Histogram histograms = 4; }
    Label        { string name = 1; string value = 2; }
    Sample       { double value = 1; int64 timestamp = 2; }    // timestamp: ms since epoch

(field numbers of prometheus/prompb/types.proto and remote.proto). Only these fields are
declared in the schema built here at import (no generated code, no protoc); the protobuf
runtime (upb, in C) skips everything else, so metadata, exemplars and fields of later
versions cost nothing. Native histograms are declared as opaque bytes only so that their
loss can be reported. Labels are declared as bytes too, and a series' encoded labels are
mapped to its key and id by `series_entry`, memoised for the process: Prometheus sends
the same series in every request, and decoding, checking and hashing labels is most of
the work. A hand-written decoder of the whole message in Python was slower than the
runtime (benchmarks/bench_prometheus_parse.py, docs/protocols/prometheus.md).

Mapping, per series: `__name__` -> metric; every other label -> a tag of the same name
(the label `device`, when present, is the device; none is made up from `instance` or
`job`); timestamps ms -> µs. A label with an empty value is no label (Prometheus's rule).
The series is lenient: a series without `__name__`, with an invalid or duplicate label
name, too many labels or too long a value is skipped whole (`timeseries[i]`), a sample
with a bad timestamp or a value that is not a finite number alone
(`timeseries[i].samples[j]`); the rest of the request is written.

Stale markers (the NaN with bits 0x7ff0000000000002 that Prometheus writes when a series
vanishes from its target) end a series in Prometheus's own storage; here a series simply
has no later points, so they are skipped silently. `count_stale_markers` counts them
from the decoded bytes for the endpoint's counter.
"""

from __future__ import annotations

import functools
import json
import re
import struct
from collections.abc import Callable
from typing import Any, NamedTuple

import cramjam

# no stubs are installed for protobuf; the message classes are dynamic anyway
from google.protobuf import (  # type: ignore[import-untyped]
    descriptor_pb2,
    descriptor_pool,
    message,
    message_factory,
)

from ...errors import BadRequest, PayloadTooLarge
from ...model import DEVICE_TAG, Batch, SeriesKey, SeriesMeta
from ..timestamps import MIN_US, format_us
from .base import BatchBuilder, ParseContext

METRIC_LABEL = "__name__"
STALE_NAN_BITS = 0x7FF0000000000002
# a Sample's value field (tag 0x09: field 1, 64-bit) holding the stale marker; it cannot
# occur inside a label, as 0xF0 0x7F is not UTF-8
STALE_SAMPLE_VALUE = b"\x09" + struct.pack("<Q", STALE_NAN_BITS)
MAX_DECODED_BYTES = 256 * 1024 * 1024  # a hard cap; the endpoint's own limit is lower
MAX_NAME = 200
MAX_LABELS = 64
MAX_LABEL_VALUE = 1024
# memo sizes (entries): a series entry holds ~1 kB, a label ~200 B (~20 MB in all)
SERIES_CACHE = 16_384
LABEL_CACHE = 16_384
LABEL_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,127}$")
LABEL_NAME_MSG = "label names are 1-128 letters, digits and _ . : - (starting with a letter or _)"
Label = tuple[str, str]
_DOUBLE_BITS = struct.Struct("<d")
_UINT64 = struct.Struct("<Q")


def _write_request_class() -> Callable[[], Any]:
    """The message class of the subset of prometheus.WriteRequest read here, built from
    a descriptor in a pool of its own (nothing is registered globally)."""
    field = descriptor_pb2.FieldDescriptorProto
    optional, repeated = field.LABEL_OPTIONAL, field.LABEL_REPEATED
    proto = descriptor_pb2.FileDescriptorProto(
        name="stats_service/prometheus_remote_v1.proto", package="prometheus", syntax="proto3"
    )
    schema: dict[str, list[tuple[str, int, int, int, str]]] = {
        "Sample": [
            ("value", 1, field.TYPE_DOUBLE, optional, ""),
            ("timestamp", 2, field.TYPE_INT64, optional, ""),
        ],
        "TimeSeries": [
            ("labels", 1, field.TYPE_BYTES, repeated, ""),  # Label messages, see decode_label
            ("samples", 2, field.TYPE_MESSAGE, repeated, ".prometheus.Sample"),
            ("histograms", 4, field.TYPE_BYTES, repeated, ""),
        ],
        "WriteRequest": [
            ("timeseries", 1, field.TYPE_MESSAGE, repeated, ".prometheus.TimeSeries"),
        ],
    }
    for name, fields in schema.items():
        msg = proto.message_type.add(name=name)
        for fname, number, ftype, label, type_name in fields:
            added = msg.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                added.type_name = type_name
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    cls: Callable[[], Any] = message_factory.GetMessageClass(
        pool.FindMessageTypeByName("prometheus.WriteRequest")
    )
    return cls


WriteRequest = _write_request_class()


def declared_length(body: bytes) -> int:
    """The decompressed size a snappy block states in its header (a varint), read without
    inflating anything, so that a decompression bomb is refused before memory is taken."""
    result = shift = 0
    for i, byte in enumerate(body[:10]):
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result
        shift += 7
        if i == 4:  # snappy's length is a 32-bit varint: at most 5 bytes
            break
    raise BadRequest(
        "body is not snappy-compressed: the length header is missing or broken "
        "(remote write 1.0 sends snappy block compression, Content-Encoding: snappy)"
    )


def decompress(body: bytes, limit: int = MAX_DECODED_BYTES) -> bytes:
    """The protobuf bytes of a snappy block body; 413 when it would inflate past `limit`."""
    size = declared_length(body)
    if size > limit:
        raise PayloadTooLarge(
            f"the body would decompress to {size} bytes; at most {limit} are accepted: "
            "send smaller batches (queue_config.max_samples_per_send)"
        )
    try:
        return bytes(cramjam.snappy.decompress_raw(body))
    except cramjam.DecompressionError as exc:
        raise BadRequest(
            f"body is not snappy block-compressed data ({exc}); remote write 1.0 sends "
            "a snappy-compressed protobuf with Content-Encoding: snappy"
        ) from None


def count_stale_markers(raw: bytes) -> int:
    """Stale markers among the sample values of decompressed WriteRequest bytes."""
    return raw.count(STALE_SAMPLE_VALUE)


def parse(body: bytes, ctx: ParseContext) -> Batch:
    raw = decompress(body)
    request = WriteRequest()
    try:
        request.ParseFromString(raw)
    except message.DecodeError as exc:
        raise BadRequest(
            f"body is not a prometheus.WriteRequest protobuf ({exc}); this endpoint speaks "
            "remote write 1.0"
        ) from None
    builder = BatchBuilder(ctx.tenant_id)
    min_ms = -(-MIN_US // 1000)
    max_ms = ctx.max_future_us // 1000
    sids, times, values = builder.sids, builder.ts, builder.values
    for i, series in enumerate(request.timeseries):
        if series.histograms:
            count = len(series.histograms)
            builder.drop(
                f"timeseries[{i}].histograms",
                f"{_describe(series.labels)}: native histograms are not stored, "
                f"{count} histogram sample(s) skipped; scrape classic histograms or turn off "
                "send_native_histograms",
            )
        samples = series.samples
        if not samples:
            continue  # exemplars or histograms only: nothing to store
        entry = series_entry(ctx.tenant_id, ctx.device, tuple(series.labels))
        if isinstance(entry, str):
            builder.drop(f"timeseries[{i}]", f"{_describe(series.labels)}: {entry}")
            continue
        sid = None
        for j, sample in enumerate(samples):
            value = sample.value
            ts = sample.timestamp
            if value - value != 0.0 or not min_ms <= ts <= max_ms:  # NaN, ±Inf, range
                reason = _bad_sample(value, ts, min_ms, max_ms, ctx.now_us)
                if reason:
                    builder.drop(f"timeseries[{i}].samples[{j}]", f"{entry.metric}: {reason}")
                continue
            if sid is None:
                sid = entry.sid
                builder.series.setdefault(sid, entry.meta)
            sids.append(sid)
            times.append(ts * 1000)
            values.append(value)
    return builder.build(allow_empty=True)


class SeriesEntry(NamedTuple):
    metric: str
    sid: int
    meta: SeriesMeta  # shared by the batches of every request that names the series


@functools.lru_cache(maxsize=SERIES_CACHE)
def series_entry(
    tenant_id: int, device: str | None, raw_labels: tuple[bytes, ...]
) -> SeriesEntry | str:
    """The series of a TimeSeries' encoded labels, or why it is skipped. Prometheus sends
    the same series in every request (each scrape of a target, every 15 s or so), and
    decoding, checking, sorting and hashing its labels costs ~4 times the rest of its
    work: so this pure function is memoised for the process (bounded, thread-safe)."""
    found = _series_key(raw_labels, device)
    if isinstance(found, str):
        return found
    metric, tags = found
    key = SeriesKey(tenant_id, metric, tags)
    return SeriesEntry(metric, key.series_id, SeriesMeta(key, None))


def _series_key(
    raw_labels: tuple[bytes, ...], device: str | None
) -> tuple[str, tuple[tuple[str, str], ...]] | str:
    """(metric, sorted tags) of a series, or why it is skipped."""
    if len(raw_labels) > MAX_LABELS:
        return f"{len(raw_labels)} labels; at most {MAX_LABELS} are accepted"
    pairs = []
    for raw in raw_labels:
        label = checked_label(raw)
        if isinstance(label, str):
            return label
        pairs.append(label)
    tags = dict(pairs)
    if len(tags) != len(pairs):
        names = [name for name, _ in pairs]
        twice = next(name for name in names if names.count(name) > 1)
        return f"the label {twice!r} appears twice"
    metric = tags.pop(METRIC_LABEL, "")
    if not metric:
        return "no __name__ label: every series needs a metric name"
    if len(metric) > MAX_NAME or not metric.isprintable():
        return f"metric name {metric[:MAX_NAME]!r} is invalid: 1-{MAX_NAME} printable characters"
    if "" in tags.values():  # an empty value is the same as no label
        tags = {name: value for name, value in tags.items() if value}
    if device is not None and DEVICE_TAG not in tags:
        tags[DEVICE_TAG] = device  # a device key's series belong to its device
    return metric, tuple(sorted(tags.items()))


@functools.lru_cache(maxsize=LABEL_CACHE)
def checked_label(raw: bytes) -> Label | str:
    """One Label message decoded and checked, or what is wrong with it. Memoised: the
    same labels (job, instance, le, ...) recur in most series of every request."""
    try:
        name, value = decode_label(raw)
    except UnicodeDecodeError:
        return f"a label is not UTF-8 text ({raw[:40]!r})"
    except (ValueError, IndexError):
        return f"a label is not a valid prometheus.Label message ({raw[:40]!r})"
    if name != METRIC_LABEL:
        if not LABEL_NAME_RE.fullmatch(name):
            return f"label name {name!r} is invalid: {LABEL_NAME_MSG}"
        if len(value) > MAX_LABEL_VALUE:
            return f"label {name!r} has {len(value)} characters (at most {MAX_LABEL_VALUE})"
    return name, value


def decode_label(raw: bytes) -> Label:
    """(name, value) of an encoded `Label { string name = 1; string value = 2; }`.

    Labels are read from their bytes rather than through the runtime's message objects:
    the same label (job, instance, ...) recurs in most series of a request, and bytes
    are a dictionary key, so each distinct one is decoded and checked once. Unknown
    fields are skipped; a truncated message, a wrong wire type or bad UTF-8 raise
    ValueError or IndexError."""
    name = value = ""
    pos, end = 0, len(raw)
    while pos < end:
        key, pos = _varint(raw, pos)
        wire = key & 7
        if wire == 2:
            size, pos = _varint(raw, pos)
            stop = pos + size
            if stop > end:
                raise ValueError("truncated")
            if key == 0x0A:
                name = raw[pos:stop].decode()
            elif key == 0x12:
                value = raw[pos:stop].decode()
            pos = stop
        elif key >> 3 in (1, 2):
            raise ValueError("name and value are strings (wire type 2)")
        elif wire == 0:
            pos = _varint(raw, pos)[1]
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        else:
            raise ValueError(f"wire type {wire}")
    if pos != end:
        raise ValueError("truncated")
    return name, value


def encode_label(name: str, value: str) -> bytes:
    """The Label message of (name, value), as the runtime writes it (for senders in tests
    and benchmarks: the parser's schema keeps labels as bytes)."""
    out = bytearray()
    for key, text in ((0x0A, name), (0x12, value)):
        data = text.encode()
        if data:
            out.append(key)
            size = len(data)
            while size >= 0x80:
                out.append(size & 0x7F | 0x80)
                size >>= 7
            out.append(size)
            out += data
    return bytes(out)


def _varint(raw: bytes, pos: int) -> tuple[int, int]:
    byte = raw[pos]
    if byte < 0x80:
        return byte, pos + 1
    result, shift = byte & 0x7F, 7
    while True:
        pos += 1
        byte = raw[pos]
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos + 1
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")


def _bad_sample(value: float, ts: int, min_ms: int, max_ms: int, now_us: int) -> str | None:
    """Why a sample is skipped; None for a stale marker (skipped without a word)."""
    if value != value:
        if _UINT64.unpack(_DOUBLE_BITS.pack(value))[0] == STALE_NAN_BITS:
            return None
        return "NaN is not stored (values are finite numbers); the other samples were kept"
    if value - value != 0.0:
        sign = "+" if value > 0 else "-"
        return f"{sign}Inf is not stored (values are finite numbers); the other samples were kept"
    if ts < min_ms:
        return f"timestamp {ts} ms lies before 1900-01-01"
    return (
        f"timestamp {ts} ms ({format_us(ts * 1000)}) lies too far in the future "
        f"(server time {format_us(now_us)}); check the sender's clock"
    )


def _describe(raw_labels: Any) -> str:
    """A series as Prometheus writes it, shortened: for messages an operator can act on."""
    name = ""
    rest = []
    for raw in raw_labels:
        try:
            key, value = decode_label(raw)
        except (ValueError, IndexError):
            rest.append("<not a label>")
            continue
        if key == METRIC_LABEL and not name:
            name = value if value.isprintable() else _quote(value)
        else:
            rest.append(f"{key if key.isprintable() else _quote(key)}={_quote(value)}")
    text = name + "{" + ", ".join(rest) + "}"
    return text if len(text) <= 200 else text[:197] + "..."


def _quote(text: str) -> str:
    """A double-quoted string with control characters escaped (one line of a log)."""
    return json.dumps(text, ensure_ascii=False)
