"""StatsD / DogStatsD: golden cases under testcases/statsd/<case>/ and the aggregation math.

Each case holds `input.txt` (one flush interval: the datagrams joined by newlines),
`params.json` (flush_us, interval_s, gauges, percentiles as the listener sends them) and
`expected.json`. Regenerate after a deliberate change with
`STATS_UPDATE_GOLDEN=1 pytest <this file>`, then review the diff.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from golden import NOW_US, cases, context, describe, run_case
from stats_service.errors import BadRequest, ValidationFailed
from stats_service.ingest.protocols import PARSERS
from stats_service.ingest.protocols.base import BatchBuilder
from stats_service.ingest.protocols.statsd import (
    GaugeKey,
    LineError,
    aggregate,
    decode_gauges,
    encode_gauges,
    gauge_updates,
    parse_line,
    parse_percentiles,
    percentile_name,
    split_lines,
)
from stats_service.listeners.statsd import _Flush, _split

FLUSH_US = NOW_US - 5_000_000


def parse(body: bytes, **params: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """metric -> tags -> value of one interval."""
    params = {"flush_us": str(FLUSH_US), "interval_s": "10", **params}
    batch = PARSERS["statsd"](body, context(params))
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for sid, ts, value in zip(batch.series_id, batch.ts, batch.value, strict=True):
        assert ts == FLUSH_US
        key = batch.series[int(sid)].key
        out.setdefault(key.metric, {})[key.tags] = float(value)
    return out


def test_there_are_enough_golden_cases() -> None:
    assert len(cases("statsd")) >= 10


@pytest.mark.parametrize("case", cases("statsd"), ids=lambda p: p.name)
def test_golden_case(case: Path) -> None:
    run_case("statsd", case)


def test_percentiles_are_numpy_percentiles() -> None:
    rng = random.Random(7)
    samples = [round(rng.uniform(0, 500), 3) for _ in range(1000)]
    body = "\n".join(f"req.time:{v}|ms" for v in samples).encode()
    got = parse(body, percentiles="1,25,50,90,99.9,100")
    values = np.asarray(samples)
    for p in (1, 25, 50, 90, 99.9, 100):
        assert got[f"req.time.{percentile_name(p)}"][()] == float(np.percentile(values, p))
    assert got["req.time.count"][()] == 1000
    assert got["req.time.sum"][()] == pytest.approx(float(values.sum()))
    assert got["req.time.min"][()] == values.min()
    assert got["req.time.max"][()] == values.max()
    assert got["req.time.mean"][()] == pytest.approx(float(values.mean()))
    assert "req.time.p99" not in got


def test_no_percentiles_when_the_list_is_empty() -> None:
    got = parse(b"t:1|ms\nt:2|ms", percentiles="")
    assert sorted(got) == ["t.count", "t.max", "t.mean", "t.min", "t.sum"]


def test_sample_rates_scale_counters_and_timer_counts_but_not_timer_values() -> None:
    body = b"hits:1|c|@0.1\nhits:1|c|@0.1\nhits:2|c\nlat:100|ms|@0.25\nlat:300|ms|@0.25"
    got = parse(body, interval_s="4")
    assert got["hits"][()] == 22.0  # 1/0.1 + 1/0.1 + 2
    assert got["hits.rate"][()] == 5.5  # per second over the 4 s interval
    assert got["lat.count"][()] == 8.0  # each sample stands for 4
    assert got["lat.sum"][()] == 400.0
    assert got["lat.mean"][()] == 200.0
    assert got["lat.p50"][()] == 200.0


def test_sets_ignore_sample_rates_and_count_distinct_members() -> None:
    got = parse(b"u:a|s|@0.1\nu:b|s\nu:a|s\nu:1:2:1|s")
    assert got["u"][()] == 4.0


def test_relative_gauges_continue_from_carried_values() -> None:
    carried: dict[GaugeKey, float] = {("temp", ()): 20.0, ("lvl", (("tank", "a"),)): 3.0}
    got = parse(b"temp:+1.5|g\nlvl:-5|g|#tank:a\nnew:-2|g", gauges=encode_gauges(carried))
    assert got["temp"][()] == 21.5
    assert got["lvl"][(("tank", "a"),)] == -2.0
    assert got["new"][()] == -2.0  # nothing carried: relative to 0, as in Etsy statsd
    assert "idle" not in got


def test_gauge_updates_match_the_full_aggregation() -> None:
    carried: dict[GaugeKey, float] = {("a", ()): 1.0, ("b", ()): 2.0, ("c", ()): 3.0}
    body = b"a:+1|g\nb:5|g\nb:+1|g\nx:1|c\nd:-4|g|#device:pi-1\nbad:+|g\nc:1:+2|g"
    needed, updated = gauge_updates(body, carried)
    assert needed == {("a", ()): 1.0}  # b and c are set before any relative change
    builder = BatchBuilder(1)
    from_aggregate = aggregate(split_lines(body), builder, carried, 10.0, FLUSH_US)
    assert updated == from_aggregate
    # the params hold only what was needed, and give the same result as everything
    assert parse(body, gauges=encode_gauges(needed)) == parse(body, gauges=encode_gauges(carried))


gauge_line = st.builds(
    lambda name, sign, number, tag: f"{name}:{sign}{number}|g{tag}",
    st.sampled_from(["g1", "g2", "g3"]),
    st.sampled_from(["", "+", "-"]),
    st.integers(0, 50),
    st.sampled_from(["", "|#k:v", "|#host:pi-1"]),
)
other_line = st.sampled_from(["g1:1|c", "g2:x|s", "g3:5|ms", "broken", "g1:+|g"])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.one_of(gauge_line, other_line), max_size=30),
    st.dictionaries(st.sampled_from(["g1", "g2", "g4"]), st.integers(-10, 10)),
)
def test_gauge_updates_always_agree_with_aggregate(lines: list[str], carried_raw: dict) -> None:
    carried: dict[GaugeKey, float] = {(k, ()): float(v) for k, v in carried_raw.items()}
    body = "\n".join(lines).encode()
    needed, updated = gauge_updates(body, carried)
    assert updated == aggregate(split_lines(body), BatchBuilder(1), carried, 10.0, FLUSH_US)
    assert set(needed) <= set(carried)
    try:
        with_needed = parse(body, gauges=encode_gauges(needed))
    except ValidationFailed:
        return  # only bad lines: refused either way
    assert with_needed == parse(body, gauges=encode_gauges(carried))


def test_the_same_body_and_params_give_the_same_batch() -> None:
    body = Path(cases("statsd")[0].parent / "dogstatsd_tags" / "input.txt").read_bytes()
    ctx = context({"flush_us": str(FLUSH_US), "interval_s": "10"})
    assert describe(PARSERS["statsd"](body, ctx)) == describe(PARSERS["statsd"](body, ctx))


def test_flush_split_by_name_aggregates_like_the_whole() -> None:
    rng = random.Random(3)
    lines = []
    for _ in range(400):
        name = f"m{rng.randrange(40)}"
        kind = rng.choice(["c", "ms", "g", "s", "d"])
        value = rng.choice(["+1", "-2", "3"]) if kind == "g" else str(rng.randrange(1, 9))
        lines.append(f"{name}:{value}|{kind}|#t:{rng.randrange(2)}".encode())
    body = b"\n".join(lines)
    carried: dict[GaugeKey, float] = {(f"m{i}", (("t", "0"),)): float(i) for i in range(40)}
    needed, _ = gauge_updates(body, carried)
    params = {"flush_us": str(FLUSH_US), "interval_s": "10", "gauges": encode_gauges(needed)}
    whole = describe(PARSERS["statsd"](body, context(params)))
    item = _Flush(body, params, "k", len(lines))
    parts = _split(item)
    parts = [p for part in parts for p in _split(part)]  # two levels: up to four parts
    assert len(parts) >= 3
    points = []
    for part in parts:
        points.extend(describe(PARSERS["statsd"](part.body, context(part.params)))["points"])
    assert sorted(points, key=repr) == sorted(whole["points"], key=repr)
    assert len({p.key for p in parts}) == len(parts)


def test_a_flush_of_one_name_cannot_be_split() -> None:
    body = b"\n".join(f"one.name:{i}|ms|#host:h{i}".encode() for i in range(50))
    assert _split(_Flush(body, {"flush_us": str(FLUSH_US)}, "k", 50)) == []


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("a:1", "expected <name>:<value>|<type>"),
        ("a:1|q", "unknown metric type"),
        ("a:0x10|c", "is not a number"),
        ("a:-1|ms", "must not be negative"),
        ("a:1|c|@0", "sample rate"),
        ("a:1|c|#Bad Key:1", "tag name"),
        ("a:1|g|#host:-bad", "device"),
        ("a:1|c|weird", "unknown field"),
        ("_sc|check|1", "service checks"),
    ],
)
def test_bad_lines_name_the_reason(line: str, reason: str) -> None:
    with pytest.raises(LineError, match=reason):
        parse_line(line)


def test_valueless_tags_are_true_and_host_is_the_device() -> None:
    line = parse_line("x:1|c|#canary,host:web-1,env:prod")
    assert line.tags == (("canary", "true"), ("device", "web-1"), ("env", "prod"))


def test_bad_params_are_bad_requests() -> None:
    with pytest.raises(BadRequest, match="gauges"):
        parse(b"x:1|g", gauges="{not json")
    with pytest.raises(BadRequest, match="percentile"):
        parse(b"x:1|ms", percentiles="50,200")
    with pytest.raises(BadRequest, match="interval_s"):
        parse(b"x:1|c", interval_s="-1")
    with pytest.raises(BadRequest, match="future"):
        parse(b"x:1|c", flush_us=str(NOW_US + 3600 * 1_000_000))


def test_percentile_settings_text() -> None:
    assert parse_percentiles("50, 90,99.9,50") == (50.0, 90.0, 99.9)
    assert parse_percentiles("") == ()
    for bad in ("0", "101", "x", "nan"):
        with pytest.raises(ValueError):
            parse_percentiles(bad)
    assert percentile_name(99.9) == "p99_9"
    assert percentile_name(50.0) == "p50"


def test_gauges_round_trip() -> None:
    gauges: dict[GaugeKey, float] = {("a", ()): 1.5, ("b", (("device", "x"), ("k", "v"))): -2.0}
    assert decode_gauges(encode_gauges(gauges)) == gauges
