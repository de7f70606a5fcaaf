"""The native JSON contract: golden cases under testcases/json/<case>/, plus properties.

Each case directory holds `input.json` (bytes as sent), optional `params.json` and
`expected.json`: the parsed points sorted, or {"error": [{"loc", "msg"}, ...]}.
Regenerate after a deliberate change with `STATS_UPDATE_GOLDEN=1 pytest <this file>`,
then review the diff.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stats_service.errors import BadRequest, FieldError, ValidationFailed
from stats_service.ingest.protocols import PARSERS, ParseContext
from stats_service.ingest.timestamps import format_us
from stats_service.model import Batch

CASES = Path(__file__).parent / "testcases" / "json"
NOW_US = 1_714_564_800_000_000  # 2024-05-01T12:00:00Z
SKEW_US = 600 * 1_000_000
UPDATE = os.environ.get("STATS_UPDATE_GOLDEN") == "1"


def context(precision: str | None = None) -> ParseContext:
    params = {"precision": precision} if precision else {}
    return ParseContext(
        tenant_id=1,
        now_us=NOW_US,
        max_future_us=NOW_US + SKEW_US,
        precision=precision,
        params=params,
    )


def points_of(batch: Batch) -> list[dict[str, Any]]:
    points = []
    for sid, ts, value in zip(batch.series_id, batch.ts, batch.value, strict=True):
        meta = batch.series[int(sid)]
        points.append(
            {
                "metric": meta.key.metric,
                "tags": meta.key.tags_dict(),
                "ts_us": int(ts),
                "value": float(value),
                "unit": meta.unit,
            }
        )
    return sorted(points, key=lambda p: json.dumps(p, sort_keys=True))


def outcome(body: bytes, precision: str | None) -> object:
    try:
        batch = PARSERS["json"](body, context(precision))
    except BadRequest as exc:
        errors = exc.errors or [FieldError("body", exc.detail)]
        return {"error": [e.as_dict() for e in errors]}
    return points_of(batch)


CASE_DIRS = sorted(p for p in CASES.iterdir() if p.is_dir())


def test_there_are_enough_golden_cases() -> None:
    assert len(CASE_DIRS) >= 15


@pytest.mark.parametrize("case", CASE_DIRS, ids=lambda p: p.name)
def test_golden_case(case: Path) -> None:
    body = (case / "input.json").read_bytes()
    params_file = case / "params.json"
    params = json.loads(params_file.read_text()) if params_file.exists() else {}
    got = outcome(body, params.get("precision"))
    expected_file = case / "expected.json"
    if UPDATE:
        text = json.dumps(got, indent=2, ensure_ascii=False) + "\n"
        expected_file.write_text(text, encoding="utf-8")
    assert got == json.loads(expected_file.read_text(encoding="utf-8"))


# -- a few contract rules stated directly ----------------------------------------------


def parse(doc: object, precision: str | None = None) -> Batch:
    return PARSERS["json"](orjson.dumps(doc), context(precision))


def errors_of(doc: object) -> dict[str, str]:
    with pytest.raises(ValidationFailed) as info:
        parse(doc)
    return {e.loc: e.msg for e in info.value.errors}


def test_device_becomes_a_tag_and_the_series_id_is_stable() -> None:
    one = parse({"device": "d1", "tags": {"b": "2", "a": "1"}, "metrics": {"m": 1}})
    two = parse({"device": "d1", "tags": {"a": "1", "b": "2"}, "metrics": {"m": 2}})
    assert list(one.series) == list(two.series)
    (meta,) = one.series.values()
    assert meta.key.tags == (("a", "1"), ("b", "2"), ("device", "d1"))
    assert one.devices == {"d1"}


def test_the_issue_example_location() -> None:
    points = [{"values": {"temperature": i}} for i in range(3)]
    points.append({"values": {"temperature": "hot"}})
    assert errors_of({"device": "d", "points": points}) == {
        "points[3].values.temperature": "must be a finite number"
    }


def test_error_summary_lists_locations() -> None:
    with pytest.raises(ValidationFailed) as info:
        parse([{"device": "a", "metrics": {"x": 1}}, {"device": "b", "metrics": {"x": "y"}}])
    assert info.value.detail == "1 field error: [1].metrics.x: must be a finite number"


def test_field_errors_are_capped() -> None:
    errors = errors_of({"device": "d", "metrics": {f"m{i}": "x" for i in range(500)}})
    assert len(errors) == 100


def test_nothing_is_returned_when_any_point_is_bad() -> None:
    with pytest.raises(ValidationFailed):
        parse({"device": "d", "points": [{"values": {"a": 1}}] * 50 + [{"values": {"a": None}}]})


def test_python_json_nan_is_refused_where_it_stands() -> None:
    body = json.dumps(
        {"device": "d", "points": [{"values": {"t": 1}}, {"values": {"t": math.nan}}]}
    )
    with pytest.raises(ValidationFailed) as info:
        PARSERS["json"](body.encode(), context())
    locs = {e.loc: e.msg for e in info.value.errors}
    assert locs["points[1].values.t"] == "must be a finite number"
    assert "NaN" in locs["body"]


@pytest.mark.parametrize(
    "body",
    [
        b'{"device": "d", "schema": NaN, "metrics": {"t": 1}}',
        b'{"device": "d", "ts": Infinity, "metrics": {"t": 1}}',
        b'{"device": "d", "tags": {"a": -Infinity}, "metrics": {"t": 1}}',
    ],
)
def test_non_finite_literals_anywhere_refuse_the_request(body: bytes) -> None:
    with pytest.raises(ValidationFailed):
        PARSERS["json"](body, context())


@pytest.mark.parametrize(
    "body",
    [
        b'{"device": "d", "metrics": {"t": NaN, "u": 1' + b"0" * 30 + b"}}",  # int > 64 bit
        b'{"device": "d", "tags": {"a": "\\ud800"}, "metrics": {"t": NaN}}',  # lone surrogate
        b'{"device": "d", "metrics": {"t": NaN}',  # broken anyway
    ],
)
def test_non_finite_literals_do_not_open_a_way_around_json_limits(body: bytes) -> None:
    with pytest.raises(BadRequest, match="not valid JSON"):
        PARSERS["json"](body, context())


def test_invalid_json_is_a_bad_request_not_a_validation_error() -> None:
    with pytest.raises(BadRequest, match="not valid JSON") as info:
        PARSERS["json"](b"{", context())
    assert not isinstance(info.value, ValidationFailed)


# -- properties ---------------------------------------------------------------------------

LOWER = "abcdefghijklmnopqrstuvwxyz"
ALNUM = LOWER + LOWER.upper() + "0123456789"
names = st.text(LOWER + "_0123456789", min_size=1, max_size=16)
devices = st.builds(str.__add__, st.sampled_from(ALNUM), st.text(ALNUM + "._:@-", max_size=20))
tag_keys = st.builds(
    str.__add__, st.sampled_from(LOWER + "_"), st.text(ALNUM + "_.:-", max_size=10)
).filter(lambda k: k != "device")
tag_values = st.text(min_size=1, max_size=12)
tag_maps = st.dictionaries(tag_keys, tag_values, max_size=3)
finite = st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**53), 2**53)
units = st.text(min_size=1, max_size=8)
values = finite | st.fixed_dictionaries({"value": finite}, optional={"unit": units})
value_maps = st.dictionaries(names, values, min_size=1, max_size=4)
timestamps = st.one_of(
    st.integers(NOW_US - 10**15, NOW_US).map(lambda us: us // 1_000_000),  # seconds, guessed
    st.integers(NOW_US - 10**15, NOW_US).map(format_us),
)


@st.composite
def reading(draw: st.DrawFn) -> tuple[dict[str, Any], int]:
    obj: dict[str, Any] = {"device": draw(devices), "metrics": draw(value_maps)}
    if draw(st.booleans()):
        obj["ts"] = draw(timestamps)
    if draw(st.booleans()):
        obj["tags"] = draw(tag_maps)
    if draw(st.booleans()):
        obj["units"] = draw(st.dictionaries(names, units, max_size=2))
    return obj, len(obj["metrics"])


@st.composite
def buffered(draw: st.DrawFn) -> tuple[dict[str, Any], int]:
    points = []
    count = 0
    for _ in range(draw(st.integers(1, 5))):
        point: dict[str, Any] = {"values": draw(value_maps)}
        count += len(point["values"])
        if draw(st.booleans()):
            point["ts"] = draw(timestamps)
        if draw(st.booleans()):
            point["tags"] = draw(tag_maps)
        points.append(point)
    obj: dict[str, Any] = {"device": draw(devices), "points": points}
    if draw(st.booleans()):
        obj["tags"] = draw(tag_maps)
    return obj, count


objects = reading() | buffered()


@st.composite
def payloads(draw: st.DrawFn) -> tuple[object, int]:
    if draw(st.booleans()):
        return draw(objects)
    items = draw(st.lists(objects, min_size=1, max_size=4))
    return [obj for obj, _ in items], sum(n for _, n in items)


@given(payloads(), st.sampled_from([None, "s"]))  # "s" takes the integer-epoch fast path
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
def test_valid_payloads_give_every_value(
    payload: tuple[object, int], precision: str | None
) -> None:
    doc, count = payload
    batch = parse(doc, precision)
    assert len(batch) == count
    assert len(batch.value) == len(batch.ts) == count
    assert set(int(s) for s in batch.series_id) == set(batch.series)
    assert all(meta.key.device is not None for meta in batch.series.values())


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | finite | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


def _mutate(doc: Any, path: list[int], replacement: Any, drop: bool) -> Any:
    """Replace (or drop) the node reached by following `path` choices down the tree."""
    if not path or not isinstance(doc, dict | list) or not doc:
        return replacement
    choice, rest = path[0], path[1:]
    if isinstance(doc, list):
        i = choice % len(doc)
        copy = list(doc)
        if drop and not rest:
            del copy[i]
        else:
            copy[i] = _mutate(doc[i], rest, replacement, drop)
        return copy
    key = sorted(doc)[choice % len(doc)]
    copy = dict(doc)
    if drop and not rest:
        del copy[key]
    else:
        copy[key] = _mutate(doc[key], rest, replacement, drop)
    return copy


@given(
    payloads(),
    st.lists(st.integers(0, 10), max_size=5),
    json_values | st.sampled_from(["", "device", "NaN", "2024-05-01", 1e300, -(2**63), 2**64 - 1]),
    st.booleans(),
)
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_mutated_payloads_are_accepted_or_refused_cleanly(
    payload: tuple[object, int], path: list[int], replacement: Any, drop: bool
) -> None:
    doc = _mutate(payload[0], path, replacement, drop)
    try:
        batch = parse(doc)
    except ValidationFailed as exc:
        assert exc.errors
        assert all(e.loc and e.msg for e in exc.errors)
    except BadRequest as exc:
        assert exc.detail
    else:
        assert len(batch) > 0


@given(st.binary(max_size=200))
def test_arbitrary_bytes_are_refused_cleanly(body: bytes) -> None:
    with contextlib.suppress(BadRequest):
        PARSERS["json"](body, context())
