"""InfluxDB line protocol: golden cases under testcases/influx/<case>/, the fast path
against the exact reader (property test), escapes as the official clients write them,
and edge cases of numbers, timestamps and ordering."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from golden import NOW_US, cases, context, describe, run_case
from stats_service.errors import BadParameter, ServiceError, ValidationFailed
from stats_service.ingest.protocols import PARSERS
from stats_service.ingest.protocols.base import ParseContext
from stats_service.ingest.protocols.influx_line import _numbers, parse, parse_exact
from stats_service.ingest.protocols.influx_scan import LineError, field_value
from stats_service.model import Batch

T = 1_714_564_700_000_000_000  # 2024-05-01T11:58:20Z, before golden.NOW_US
OUT_OF_RANGE = "value out of range"


def test_registered() -> None:
    assert PARSERS["influx"] is parse


def test_there_are_enough_golden_cases() -> None:
    assert len(cases("influx")) >= 20


@pytest.mark.parametrize("case", cases("influx"), ids=lambda p: p.name)
def test_golden_case(case: Path) -> None:
    run_case("influx", case)


@pytest.mark.parametrize("case", cases("influx"), ids=lambda p: p.name)
def test_golden_case_exact_reader_agrees(case: Path) -> None:
    body = next(case.glob("input.*")).read_bytes()
    params = _params(case)
    assert_same(lambda: parse(body, context(params)), lambda: parse_exact(body, context(params)))


def _params(case: Path) -> dict[str, str]:
    import json

    file = case / "params.json"
    return json.loads(file.read_text()) if file.exists() else {}


# -- fast path == exact reader -------------------------------------------------------------


def _snapshot(batch: Batch) -> dict[str, Any]:
    """Everything in a batch, in order, floats by their bits (-0.0 is not 0.0 here)."""
    states = batch.states
    return {
        "described": describe(batch),
        "sid": batch.series_id.tolist(),
        "ts": batch.ts.tolist(),
        "value": [v.hex() for v in batch.value.tolist()],
        "states": None
        if states is None
        else (states.series_id.tolist(), states.ts.tolist(), list(states.text)),
        "series": {sid: (m.key, m.unit) for sid, m in batch.series.items()},
        "dropped": [e.as_dict() for e in batch.dropped],
        "dropped_count": batch.dropped_count,
    }


def _outcome(run: Any) -> dict[str, Any]:
    try:
        return _snapshot(run())
    except ServiceError as exc:
        return {"error": type(exc).__name__, "errors": [e.as_dict() for e in exc.errors]}


def assert_same(fast: Any, exact: Any) -> None:
    assert _outcome(fast) == _outcome(exact)


NAME_CHARS = st.sampled_from(list("abcxyz019_-.") * 6 + list(' ,=\\"°é#\t'))
names = st.text(NAME_CHARS, min_size=0, max_size=8)


def _escape(name: str, specials: str) -> str:
    out = name.replace("\\", "\\\\")
    for ch in specials:
        out = out.replace(ch, "\\" + ch)
    return out


@st.composite
def raw_or_escaped(draw: st.DrawFn, specials: str) -> str:
    name = draw(names)
    return name if draw(st.integers(0, 9)) == 0 else _escape(name, specials)


def _float_text(x: float, style: int) -> str:
    if style == 0:
        return repr(x)
    if style == 1:
        return f"{x:.3f}"
    if style == 2:
        return f"{x:E}"
    return f"{x:.0f}." if abs(x) < 1e15 else repr(x)


@st.composite
def field_values(draw: st.DrawFn) -> str:
    kind = draw(st.integers(0, 7))
    if kind == 0:
        x = draw(st.floats(allow_nan=False, allow_infinity=False, width=64))
        return _float_text(x, draw(st.integers(0, 3)))
    if kind == 1:
        return f"{draw(st.integers(-(2**64), 2**64))}i"
    if kind == 2:
        return f"{draw(st.integers(-10, 2**65))}u"
    if kind == 3:
        return draw(
            st.sampled_from(
                [
                    "t",
                    "T",
                    "true",
                    "True",
                    "TRUE",
                    "f",
                    "F",
                    "false",
                    "False",
                    "FALSE",
                    "tRue",
                    "yes",
                ]
            )
        )
    if kind == 4:
        text = draw(st.text(st.sampled_from(list('ab "\\,= \n°')), max_size=8))
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if kind == 5:
        return draw(st.text(st.sampled_from(list("0123456789.-+eEiuNnaf")), max_size=6))
    if kind == 6:
        digits = draw(st.text(st.sampled_from(list("0123456789")), min_size=1, max_size=17))
        point = draw(st.integers(0, len(digits)))
        sign = draw(st.sampled_from(["", "-"]))
        return sign + digits[:point] + "." + digits[point:]
    return str(draw(st.integers(-1000, 1000)))


@st.composite
def lines(draw: st.DrawFn) -> str:
    kind = draw(st.integers(0, 19))
    if kind == 0:
        return draw(st.text(st.sampled_from(list('cpu,=a 1"\\#\t-ib.')), max_size=20))
    if kind == 1:
        return draw(st.sampled_from(["", "# comment", "   ", "\t# x"]))
    measurement = draw(raw_or_escaped(", "))
    tags = draw(st.lists(st.tuples(raw_or_escaped(",= "), raw_or_escaped(",= ")), max_size=3))
    if draw(st.booleans()):
        tags.append(
            (
                draw(st.sampled_from(["host", "device", "domain", "entity_id"])),
                draw(st.sampled_from(["web-01", "kitchen", "bad host", "sensor"])),
            )
        )
    fields = draw(
        st.lists(st.tuples(raw_or_escaped(",= "), field_values()), min_size=0, max_size=4)
    )
    key = measurement + "".join(f",{k}={v}" for k, v in tags)
    line = key + " " + ",".join(f"{k}={v}" for k, v in fields)
    stamp = draw(
        st.one_of(
            st.just(""),
            st.integers(T - 10**15, T + 10**12).map(lambda t: f" {t}"),
            st.integers(-(2**64), 2**64).map(lambda t: f" {t}"),
            st.sampled_from([" 12a", "  1714564700000000000 ", " -", " 1 2"]),
        )
    )
    return line + stamp


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(lines(), min_size=1, max_size=12),
    st.sampled_from(["\n", "\r\n"]),
    st.sampled_from([None, "ns", "u", "ms", "s", "m", "h"]),
)
def test_fast_path_equals_exact_reader(
    body_lines: list[str], newline: str, precision: str | None
) -> None:
    body = newline.join(body_lines).encode()
    params = {"precision": precision} if precision else {}
    assert_same(lambda: parse(body, context(params)), lambda: parse_exact(body, context(params)))


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["cpu", "mem", "disk"]),
            st.integers(0, 3),
            st.integers(0, 3),
            field_values(),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_fast_path_equals_exact_reader_on_repeated_series(
    rows: list[tuple[str, int, int, str]],
) -> None:
    """Many lines of few series: the fast path's caches and layouts are reused."""
    body = "\n".join(
        f"{m},host=h{h} f{f}={v},g=1i {T + i}" for i, (m, h, f, v) in enumerate(rows)
    ).encode()
    assert_same(lambda: parse(body, context()), lambda: parse_exact(body, context()))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_give_a_batch_or_a_clear_error(body: bytes) -> None:
    for run in (parse, parse_exact):
        try:
            run(body, context())
        except ServiceError as exc:
            assert exc.errors and all(e.loc.startswith("line ") for e in exc.errors)


# -- escapes as the official clients write them ------------------------------------------


def test_escapes_written_by_influxdb_client_v2() -> None:
    from influxdb_client import Point, WritePrecision

    point = (
        Point("my meas,ure")
        .tag("tag key,=", "tag value, = C:\\dir")
        .field("field key,=", 'say "hi" \\ back\nslash')
        .field("n", 1.5)
        .field("i", 7)
        .time(T, WritePrecision.NS)
    )
    batch = parse(point.to_line_protocol().encode(), context())
    rows = describe(batch)
    assert [(p["metric"], p["value"]) for p in rows["points"]] == [
        ("my meas,ure_i", 7.0),
        ("my meas,ure_n", 1.5),
    ]
    assert rows["points"][0]["tags"] == {"tag key,=": "tag value, = C:\\dir"}
    assert rows["states"][0]["metric"] == "my meas,ure_field key,="
    assert rows["states"][0]["text"] == 'say "hi" \\ back\nslash'


def test_lines_written_by_influxdb_client_v1() -> None:
    from influxdb.line_protocol import make_lines

    data = {
        "points": [
            {
                "measurement": "cpu load",
                "tags": {"host": "server01", "region": "us west"},
                "time": T,
                "fields": {"value": 0.64, "cores": 4, "ok": True, "note": 'a "b" c'},
            }
        ]
    }
    batch = parse(make_lines(data).encode(), context())
    rows = describe(batch)
    assert {(p["metric"], p["value"]) for p in rows["points"]} == {
        ("cpu load", 0.64),
        ("cpu load_cores", 4.0),
        ("cpu load_ok", 1.0),
    }
    assert rows["points"][0]["tags"] == {"device": "server01", "region": "us west"}
    assert rows["states"][0]["text"] == 'a "b" c'


# -- numbers -------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.lists(field_values().filter(lambda v: not v.startswith('"')), min_size=1, max_size=30))
def test_vectorised_numbers_equal_field_value(tokens: list[str]) -> None:
    values, odd = _numbers(",".join(tokens), len(tokens))
    for k, token in enumerate(tokens):
        if k in set(odd.tolist()):
            continue
        assert values[k].hex() == field_value(token).hex(), token


def test_vectorised_numbers_take_plain_decimals() -> None:
    rng = random.Random(7)
    tokens = [f"{rng.uniform(-1e6, 1e6):.{rng.randint(0, 8)}f}" for _ in range(2000)]
    tokens += [f"{rng.randint(-(10**14), 10**14)}i" for _ in range(500)] + ["-0i", "-0", "0u"]
    values, odd = _numbers(",".join(tokens), len(tokens))
    assert odd.size == 0
    assert [v.hex() for v in values.tolist()] == [field_value(t).hex() for t in tokens]
    assert math.copysign(1.0, values[-3]) == 1.0 and math.copysign(1.0, values[-2]) == -1.0


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("1.5i", "invalid number"),
        ("-1u", "invalid number"),
        ("1e", "invalid number"),
        ("NaN", "invalid number"),
        ("inf", "invalid boolean"),
        ("+1", "invalid boolean"),
        ("1" * 30 + "i", "unable to parse integer " + "1" * 25 + "...: value out of range"),
        (
            "-9223372036854775809i",
            "unable to parse integer -9223372036854775809: value out of range",
        ),
        (
            "18446744073709551616u",
            "unable to parse unsigned 18446744073709551616: value out of range",
        ),
        ("1e309", "invalid float"),
        ("١٢", "invalid boolean"),
        ("1٢", "invalid number"),
    ],
)
def test_field_value_refuses(token: str, reason: str) -> None:
    with pytest.raises(LineError) as info:
        field_value(token)
    assert info.value.reason == reason


def test_integer_limits_are_accepted() -> None:
    assert field_value("-9223372036854775808i") == -(2.0**63)
    assert field_value("18446744073709551615u") == 2.0**64


# -- timestamps, ordering, series ----------------------------------------------------------


def test_unknown_precision_is_a_bad_parameter() -> None:
    with pytest.raises(BadParameter) as info:
        parse(b"m v=1", context({"precision": "d"}))
    assert info.value.errors[0].loc == "query.precision"


def test_nanoseconds_are_floored_to_microseconds() -> None:
    batch = parse(b"m v=1 -1\nm v=2 1999\nm v=3 -1001", context())
    assert batch.ts.tolist() == [-1, 1, -2]


def test_missing_timestamp_is_server_time_truncated_to_the_precision() -> None:
    ctx = ParseContext(1, NOW_US + 1_234_567, NOW_US + 10**9, precision="s")
    assert parse(b"m v=1", ctx).ts.tolist() == [NOW_US + 1_000_000]


def test_same_series_and_time_keep_line_order_across_both_paths() -> None:
    """The writer keeps the last of equal (series, time): line order must survive even
    when the lines in between take the exact path (here: trailing spaces)."""
    body = f"m v=1 {T}\nm v=2 {T} \nm v=3 {T}\nm v=4 {T}  \n".encode()
    assert parse(body, context()).value.tolist() == [1.0, 2.0, 3.0, 4.0]


def test_series_of_dropped_lines_are_left_out() -> None:
    body = f"m,host=a v=1 {T}\nm,host=b v=1 99999999999999999999\nm,host=c v=x\n".encode()
    batch = parse(body, context())
    assert {m.key.device for m in batch.series.values()} == {"a"}
    assert batch.dropped_count == 2


def test_series_ids_depend_on_the_tenant() -> None:
    body = b"m,host=a v=1"
    one = parse(body, ParseContext(1, NOW_US, NOW_US))
    two = parse(body, ParseContext(2, NOW_US, NOW_US))
    assert one.series_id[0] != two.series_id[0]
    assert next(iter(two.series.values())).key.tenant_id == 2


def test_every_dropped_line_is_counted_and_the_first_hundred_listed() -> None:
    body = ("\n".join(["bad"] * 150 + [f"m v=1 {T}"])).encode()
    batch = parse(body, context())
    assert batch.dropped_count == 150 and len(batch.dropped) == 100
    assert batch.dropped[0].loc == "line 1" and batch.dropped[-1].loc == "line 100"


def test_long_lines_are_shortened_in_messages() -> None:
    with pytest.raises(ValidationFailed) as info:
        parse(b"m " + b"x" * 1000, context())
    msg = info.value.errors[0].msg
    assert msg.startswith("unable to parse 'm xxx") and "...': invalid field format" in msg
    assert len(msg) < 260


def test_big_body_of_repeated_series() -> None:
    rng = random.Random(3)
    body = "\n".join(
        f"cpu,hostname=host_{i % 50},region=eu usage_user={rng.randint(0, 100)}i,"
        f"usage_idle={rng.uniform(0, 100):.2f} {T - (5000 - i) * 10**9}"
        for i in range(5000)
    ).encode()
    batch = parse(body, context())
    assert batch.numeric == 10_000 and len(batch.series) == 100
    assert np.all(np.diff(batch.ts[::2]) >= 0)
    assert _snapshot(batch) == _snapshot(parse_exact(body, context()))


def test_long_keys_and_field_sets_are_parsed_but_not_remembered() -> None:
    from stats_service.ingest.protocols.influx_series import entry_for

    tags = ",".join(f"t{i}={'v' * 120}" for i in range(10))  # a key of > 1024 characters
    fields = ",".join(f"{chr(97 + i) * 250}={i}" for i in range(20))  # > 4096 characters
    body = f"m,{tags} {fields} {T}\nm,{tags} {fields} {T + 1000}\n".encode()
    batch = parse(body, context())
    assert batch.numeric == 40 and len(batch.series) == 20
    assert _snapshot(batch) == _snapshot(parse_exact(body, context()))
    entry = entry_for(1, None, f"m,{tags}")
    assert entry is not None and not entry.cached
    assert entry_for(1, None, f"m,{tags}") is not entry  # computed again, not kept
    assert entry_for(1, None, "m,t=short") is entry_for(1, None, "m,t=short")


@settings(max_examples=200, deadline=None)
@given(st.text(st.sampled_from(list('ab "\\\n,= \r°')), max_size=30), st.booleans())
def test_string_values_span_lines_and_round_trip(text: str, indented: bool) -> None:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    indent = "  " if indented else ""
    body = f'{indent}m s="{escaped}",v=1 {T}\nm v=2 {T + 1}\n'.encode()
    batch = parse(body, context())
    assert batch.dropped == []
    expected = text.replace("\r\n", "\n")  # CRLF is a line ending, even inside a string
    assert batch.states is not None and batch.states.text == [expected]
    assert batch.value.tolist() == [1.0, 2.0]


def test_unclosed_strings_cost_linear_time() -> None:
    """Each line's quote is escaped, so the string opened on line 1 never closes: the
    search for its closing quote must not rescan the rest of the body per line."""
    body = ('m s="x\n' + 'y\\"z\n' * 100_000 + f"m v=1 {T}\n").encode()
    batch = parse(body, context())
    assert batch.numeric == 1 and batch.dropped_count == 100_001
    assert batch.dropped[0].msg == "unable to parse 'm s=\"x': unbalanced quotes"


@pytest.mark.parametrize(
    "body",
    [
        b"m v=" + b"1" * 1_000_000 + b"x",
        b"m v=" + b"1" * 1_000_000,
        b"m v=" + b"1" * 1_000_000 + b"i",
        b"m v=1 " + b"1" * 1_000_000,
        b"m,t=" + b"\\a" * 300_000 + b" v=1",
        b'm s="' + b"\\a" * 300_000,
    ],
    ids=["digits-letter", "digits", "digits-i", "timestamp", "escapes-in-tag", "open-string"],
)
def test_huge_tokens_are_refused_quickly_with_short_messages(body: bytes) -> None:
    """No pattern may backtrack over a long token (a 1 MB float took ~100 s before the
    patterns were made possessive), and messages quote at most ~200 characters."""
    with pytest.raises(ValidationFailed) as info:
        parse(body, context())
    assert len(info.value.errors[0].msg) < 300
