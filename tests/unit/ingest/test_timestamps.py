"""Timestamps: RFC 3339 strings and epoch numbers to UTC microseconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stats_service.ingest.timestamps import (
    MAX_US,
    MIN_US,
    TimestampError,
    epoch_to_us,
    format_us,
    guess_precision,
    parse_timestamp,
    rfc3339_to_us,
    us_to_datetime,
)

NOON_US = 1_714_564_800_000_000  # 2024-05-01T12:00:00Z


# -- RFC 3339 ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T12:00:00Z", NOON_US),
        ("2024-05-01T12:00:00z", NOON_US),
        ("2024-05-01t12:00:00Z", NOON_US),
        ("2024-05-01 12:00:00Z", NOON_US),
        ("2024-05-01T12:00:00+00:00", NOON_US),
        ("2024-05-01T12:00:00-00:00", NOON_US),
        ("2024-05-01T14:00:00+02:00", NOON_US),
        ("2024-05-01T06:30:00-05:30", NOON_US),
        ("2024-05-02T01:45:00+13:45", NOON_US),
        ("2024-05-01T12:00:00.5Z", NOON_US + 500_000),
        ("2024-05-01T12:00:00.123Z", NOON_US + 123_000),
        ("2024-05-01T12:00:00.123456Z", NOON_US + 123_456),
        ("2024-05-01T12:00:00.1234567Z", NOON_US + 123_456),
        ("2024-05-01T12:00:00.12345678Z", NOON_US + 123_456),
        ("2024-05-01T12:00:00.123456789Z", NOON_US + 123_456),  # ns: truncated to us
        ("2024-05-01T14:00:00.999999999+02:00", NOON_US + 999_999),
        ("  2024-05-01T12:00:00Z  ", NOON_US),
        ("1900-01-01T00:00:00Z", MIN_US),
        ("9999-12-31T23:59:59.999999Z", MAX_US),
        ("1969-12-31T23:59:59.5Z", -500_000),
    ],
)
def test_rfc3339_variants(text: str, expected: int) -> None:
    assert rfc3339_to_us(text) == expected
    assert parse_timestamp(text, None) == expected
    assert parse_timestamp(text, "ns") == expected  # precision is for numbers only


@pytest.mark.parametrize("text", ["2024-05-01T12:00:00", "2024-05-01T12:00:00.123", "2024-05-01"])
def test_rfc3339_without_offset_is_refused(text: str) -> None:
    with pytest.raises(TimestampError, match="no UTC offset"):
        rfc3339_to_us(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "now",
        "yesterday at noon",
        "20240501T120000Z",
        "2024-13-01T12:00:00Z",
        "2024-02-30T12:00:00Z",
        "2024-05-01T25:00:00Z",
        "2024-05-01T12:00:00+25:00",
        "2024-05-01T12:00:00 UTC",
        "2024-05-01T12:00:00ZZ",
        "1714564800",
    ],
)
def test_not_a_timestamp(text: str) -> None:
    with pytest.raises(TimestampError, match="RFC 3339"):
        rfc3339_to_us(text)


@pytest.mark.parametrize("text", ["1899-12-31T23:59:59Z", "0001-01-01T00:00:00+01:00"])
def test_rfc3339_out_of_range(text: str) -> None:
    with pytest.raises(TimestampError, match="outside 1900-01-01"):
        rfc3339_to_us(text)


# -- epoch numbers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "precision", "expected"),
    [
        (1_714_564_800, "s", NOON_US),
        (1_714_564_800_000, "ms", NOON_US),
        (1_714_564_800_000_000, "us", NOON_US),
        (1_714_564_800_000_000_000, "ns", NOON_US),
        (1_714_564_800_000_000_999, "ns", NOON_US),  # sub-us truncated
        (0, "s", 0),
        (0, "ns", 0),
        (5, "s", 5_000_000),
        (-1, "s", -1_000_000),
        (-1, "ns", -1),  # floor, like the string form's truncated fraction
        (1_714_564_800.25, "s", NOON_US + 250_000),
        (1_714_564_800_123.5, "ms", NOON_US + 123_500),
        (1.5e15, "us", 1_500_000_000_000_000),
        (1.7145648e18, "ns", NOON_US),
    ],
)
def test_epoch_with_explicit_precision(value: float, precision: str, expected: int) -> None:
    assert epoch_to_us(value, precision) == expected
    assert parse_timestamp(value, precision) == expected


@pytest.mark.parametrize(
    ("value", "unit"),
    [
        (1_714_564_800, "s"),
        (1_714_564_800.5, "s"),
        (1_714_564_800_000, "ms"),
        (1_714_564_800_000_000, "us"),
        (1_714_564_800_000_000_000, "ns"),
        (100_000_000, "s"),  # 1973
        (9_999_999_999, "s"),  # 2286
        (-1_714_564_800, "s"),  # before 1970 is fine too
    ],
)
def test_epoch_precision_is_guessed_when_unambiguous(value: float, unit: str) -> None:
    assert guess_precision(value) == unit
    assert parse_timestamp(value, None) == epoch_to_us(value, unit)


@pytest.mark.parametrize("value", [0, 1, 86_400, 99_999_999, 50_000_000_000, 5e13, 5e16, 1e19])
def test_ambiguous_epoch_needs_a_precision(value: float) -> None:
    with pytest.raises(TimestampError, match=r"precision=s\|ms\|us\|ns"):
        parse_timestamp(value, None)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("precision", [None, "s", "ns"])
def test_non_finite_epoch_is_refused(value: float, precision: str | None) -> None:
    with pytest.raises(TimestampError, match="finite"):
        parse_timestamp(value, precision)


@pytest.mark.parametrize(("value", "precision"), [(10**13, "s"), (-(10**13), "s"), (1e300, "s")])
def test_epoch_out_of_range(value: float, precision: str) -> None:
    with pytest.raises(TimestampError, match="outside"):
        parse_timestamp(value, precision)


def test_unknown_precision_is_a_timestamp_error() -> None:
    with pytest.raises(TimestampError, match="precision"):
        parse_timestamp(1_714_564_800, "minutes")


@pytest.mark.parametrize("value", [True, False, None, [1_714_564_800], {"s": 1}, b"x"])
def test_bools_and_other_types_are_refused(value: object) -> None:
    with pytest.raises(TimestampError, match="RFC 3339 string or an epoch number"):
        parse_timestamp(value, "s")


def test_format_us() -> None:
    assert format_us(NOON_US + 5) == "2024-05-01T12:00:00.000005Z"
    assert us_to_datetime(NOON_US) == datetime(2024, 5, 1, 12, tzinfo=UTC)


# -- properties -------------------------------------------------------------------------

offsets = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(
    lambda m: timezone(timedelta(minutes=m))
)
utc_datetimes = st.datetimes(
    min_value=datetime(1900, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
)


@given(utc_datetimes, offsets)
def test_isoformat_round_trips(moment: datetime, offset: timezone) -> None:
    local = moment.astimezone(offset)
    expected = us_to_datetime(rfc3339_to_us(format_us(_us(moment))))
    assert expected == moment
    assert rfc3339_to_us(local.isoformat()) == _us(moment)
    assert rfc3339_to_us(local.isoformat(timespec="microseconds")) == _us(moment)


@given(utc_datetimes, st.integers(0, 999))
def test_nanosecond_fractions_truncate_to_the_microsecond(moment: datetime, extra: int) -> None:
    text = moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + f"{extra:03d}Z"
    assert rfc3339_to_us(text) == _us(moment)


@given(st.integers(MIN_US, MAX_US))
def test_format_parse_round_trip(us: int) -> None:
    assert rfc3339_to_us(format_us(us)) == us


@given(
    st.integers(MIN_US // 1_000_000, MAX_US // 1_000_000), st.sampled_from(["s", "ms", "us", "ns"])
)
def test_epoch_ints_round_trip(seconds: int, unit: str) -> None:
    factor = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[unit]
    assert epoch_to_us(seconds * factor, unit) == seconds * 1_000_000


@given(st.integers(MIN_US, MAX_US))
def test_epoch_us_and_ns_keep_every_microsecond(us: int) -> None:
    assert epoch_to_us(us, "us") == us
    assert epoch_to_us(us * 1000, "ns") == us
    assert epoch_to_us(us * 1000 + 999, "ns") == us


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=10,
)
timestamp_like = st.one_of(
    json_values,
    st.from_regex(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9:.,+\-Zz]{0,30}\Z"),
    utc_datetimes.map(lambda d: d.isoformat()),
)


@given(timestamp_like, st.sampled_from([None, "s", "ms", "us", "ns"]))
def test_parse_raises_only_timestamp_errors(value: object, precision: str | None) -> None:
    try:
        us = parse_timestamp(value, precision)
    except TimestampError as exc:
        assert str(exc)
    else:
        assert isinstance(us, int)
        assert MIN_US <= us <= MAX_US


def _us(moment: datetime) -> int:
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
