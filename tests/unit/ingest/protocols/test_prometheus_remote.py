"""Prometheus remote write 1.0: golden cases under testcases/prometheus/<case>/.

The cases are built by make_prometheus_cases.py (run it, then STATS_UPDATE_GOLDEN=1 on
this file, and review the diff).
"""

from __future__ import annotations

import json
import struct
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from golden import NOW_US, TESTCASES, cases, context, describe, run_case
from make_prometheus_cases import (
    NORMAL_NAN,
    STALE_NAN,
    T0_MS,
    FullWriteRequest,
    Series,
    body,
    golden_cases,
    snappy,
    write_request,
)
from stats_service.errors import BadRequest, PayloadTooLarge
from stats_service.ingest.protocols import PARSERS, prometheus_remote

FORMAT = "prometheus"


@pytest.mark.parametrize("case", cases(FORMAT), ids=lambda p: p.name)
def test_golden(case: Path) -> None:
    run_case(FORMAT, case)


# -- properties ----------------------------------------------------------------------------

LABEL_NAMES = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True).filter(
    lambda n: n != "__name__"
)
LABEL_VALUES = st.text(min_size=1, max_size=20)
SAMPLES = st.lists(
    st.tuples(
        st.floats(allow_nan=False, allow_infinity=False),
        st.integers(min_value=-(10**12), max_value=NOW_US // 1000),
    ),
    min_size=1,
    max_size=5,
)


@st.composite
def requests(draw: st.DrawFn) -> list[Series]:
    out = []
    for i in range(draw(st.integers(min_value=1, max_value=6))):
        labels = draw(st.dictionaries(LABEL_NAMES, LABEL_VALUES, max_size=5))
        items = [("__name__", f"metric_{i % 3}"), *labels.items()]
        draw(st.randoms()).shuffle(items)
        out.append(Series(items, draw(SAMPLES)))
    return out


@given(requests())
@settings(max_examples=60, deadline=None)
def test_every_sample_comes_back_with_its_labels(series: list[Series]) -> None:
    batch = PARSERS[FORMAT](body(series), context())
    got = sorted(
        (
            batch.series[int(sid)].key.metric,
            batch.series[int(sid)].key.tags,
            int(ts),
            float(value),
        )
        for sid, ts, value in zip(batch.series_id, batch.ts, batch.value, strict=True)
    )
    expected = sorted(
        (
            dict(s.labels)["__name__"],
            tuple(sorted((k, v) for k, v in s.labels if k != "__name__")),
            ts_ms * 1000,
            value,
        )
        for s in series
        for value, ts_ms in s.samples
    )
    assert got == expected
    assert batch.dropped_count == 0


def test_stale_markers_are_counted_from_the_decoded_bytes() -> None:
    t = T0_MS
    series = [
        Series([("__name__", "a")], [(1.0, t - 1), (STALE_NAN, t)]),
        Series([("__name__", "b"), ("x", "\u00f0\u007f")], [(STALE_NAN, t), (NORMAL_NAN, t)]),
        Series([("__name__", "c")], [(2.0, t)], exemplars=1, histograms=1),
    ]
    raw = write_request(series)
    assert prometheus_remote.count_stale_markers(raw) == 2
    assert prometheus_remote.count_stale_markers(prometheus_remote.decompress(snappy(raw))) == 2
    batch = PARSERS[FORMAT](snappy(raw), context())
    assert sorted(batch.value.tolist()) == [1.0, 2.0]
    # the ordinary NaN and the native histogram are reported, the stale marker is not
    assert [e.loc for e in batch.dropped] == [
        "timeseries[1].samples[1]",
        "timeseries[2].histograms",
    ]


def test_a_stale_marker_keeps_its_bits_through_the_runtime() -> None:
    request = prometheus_remote.WriteRequest()
    request.ParseFromString(write_request([Series([("__name__", "a")], [(STALE_NAN, 1)])]))
    value = request.timeseries[0].samples[0].value
    assert struct.pack("<d", value) == struct.pack("<Q", prometheus_remote.STALE_NAN_BITS)


@pytest.mark.parametrize(
    ("body_bytes", "size"),
    [(b"\x00", 0), (b"\x7f", 127), (b"\x80\x01", 128), (b"\xff\xff\xff\xff\x0f", 2**32 - 1)],
)
def test_declared_length_reads_the_snappy_header(body_bytes: bytes, size: int) -> None:
    assert prometheus_remote.declared_length(body_bytes + b"rest") == size


@pytest.mark.parametrize("broken", [b"", b"\x80", b"\xff\xff\xff\xff\xff\x01"])
def test_a_missing_or_overlong_header_is_not_snappy(broken: bytes) -> None:
    with pytest.raises(BadRequest, match="not snappy"):
        prometheus_remote.declared_length(broken)


def test_decompress_refuses_a_declared_size_over_the_limit_before_inflating() -> None:
    data = snappy(b"x" * 5000)
    assert prometheus_remote.decompress(data, limit=5000) == b"x" * 5000
    with pytest.raises(PayloadTooLarge, match="5000 bytes; at most 4999"):
        prometheus_remote.decompress(data, limit=4999)


def test_golden_cases_are_what_the_generator_makes() -> None:
    """The committed input.bin files are reproducible from make_prometheus_cases.py."""
    for name, (data, params) in golden_cases().items():
        case = TESTCASES / FORMAT / name
        assert (case / "input.bin").read_bytes() == data, name
        params_file = case / "params.json"
        assert (json.loads(params_file.read_text()) if params_file.exists() else None) == params


TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=300)


@given(TEXT, TEXT)
@settings(max_examples=200, deadline=None)
def test_decode_label_reads_what_the_runtime_writes(name: str, value: str) -> None:
    label = FullWriteRequest().timeseries.add().labels.add(name=name, value=value)
    assert prometheus_remote.decode_label(label.SerializeToString()) == (name, value)


@given(st.binary(max_size=64))
@settings(max_examples=300, deadline=None)
def test_decode_label_fails_only_with_value_or_index_errors(raw: bytes) -> None:
    try:
        name, value = prometheus_remote.decode_label(raw)
    except (ValueError, IndexError):
        return
    assert isinstance(name, str) and isinstance(value, str)


@given(TEXT, TEXT)
@settings(max_examples=200, deadline=None)
def test_encode_label_writes_what_the_runtime_writes(name: str, value: str) -> None:
    label = FullWriteRequest().timeseries.add().labels.add(name=name, value=value)
    assert prometheus_remote.encode_label(name, value) == label.SerializeToString()


def test_the_series_memo_is_keyed_by_tenant_and_device_key() -> None:
    data = body([Series([("__name__", "m"), ("job", "j")], [(1.0, T0_MS)])])
    first = describe(PARSERS[FORMAT](data, context()))
    assert describe(PARSERS[FORMAT](data, context())) == first  # from the memo
    other = PARSERS[FORMAT](data, replace(context(), tenant_id=2))
    [meta] = other.series.values()
    assert meta.key.tenant_id == 2 and int(other.series_id[0]) == meta.key.series_id
    device = PARSERS[FORMAT](data, context({"device": "pico-1"}))
    [meta] = device.series.values()
    assert meta.key.device == "pico-1"
