"""Home Assistant parser: golden cases plus the rules that are easier to state as tests."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from golden import cases, context, describe, run_case
from stats_service.errors import BadRequest, ValidationFailed
from stats_service.ingest.protocols import PARSERS
from stats_service.ingest.protocols.homeassistant import parse


@pytest.mark.parametrize("case", cases("homeassistant"), ids=lambda p: p.name)
def test_golden(case: Path) -> None:
    run_case("homeassistant", case)


def test_registered() -> None:
    assert PARSERS["homeassistant"] is parse


def _state(state: object, **attributes: object) -> bytes:
    return orjson.dumps(
        {
            "entity_id": "sensor.x",
            "state": state,
            "attributes": attributes,
            "last_updated": "2024-05-01T11:00:00+00:00",
        }
    )


@pytest.mark.parametrize(
    ("state", "number"),
    [("21.5", 21.5), ("-3", -3.0), (" 4 ", 4.0), ("1e3", 1000.0), (".5", 0.5), ("7.", 7.0)],
)
def test_numeric_states(state: str, number: float) -> None:
    batch = parse(_state(state, unit_of_measurement="°C"), context())
    assert batch.value.tolist() == [number]
    assert [m.unit for m in batch.series.values()] == ["°C"]


@pytest.mark.parametrize(
    "state", ["on", "off", "heat", "unknown", "unavailable", "nan", "inf", "-Infinity", "1_000", ""]
)
def test_text_states(state: str) -> None:
    batch = parse(_state(state), context())
    assert batch.numeric == 0
    assert batch.states is not None and batch.states.text == [state]


def test_same_series_for_numbers_and_text() -> None:
    """`unavailable` of a numeric sensor is a text value of the same series `state`."""
    body = b"[" + _state("21") + b"," + _state("unavailable").replace(b"11:00", b"11:01") + b"]"
    batch = parse(body, context())
    assert len(batch.series) == 1
    assert batch.states is not None
    assert int(batch.series_id[0]) == int(batch.states.series_id[0])


def test_removed_entity_writes_nothing() -> None:
    body = orjson.dumps(
        {
            "id": 2,
            "type": "event",
            "event": {
                "event_type": "state_changed",
                "data": {"entity_id": "sensor.x", "old_state": None, "new_state": None},
            },
        }
    )
    batch = parse(body, context())
    assert len(batch) == 0 and batch.dropped_count == 0


def test_not_json_is_refused() -> None:
    with pytest.raises(BadRequest, match="not valid JSON"):
        parse(b"{", context())


def test_nothing_readable_is_refused_with_the_reasons() -> None:
    with pytest.raises(ValidationFailed) as info:
        parse(b'[{"type": "auth_invalid"}]', context())
    assert info.value.errors[0].loc == "[0]"


def test_statistics_units_apply_wherever_the_metadata_stands() -> None:
    rows = {
        "type": "result",
        "success": True,
        "result": {"sensor.e": [{"start": 1714550400000, "sum": 2}]},
    }
    meta = {
        "type": "result",
        "success": True,
        "result": [{"statistic_id": "sensor.e", "statistics_unit_of_measurement": "kWh"}],
    }
    described = describe(parse(orjson.dumps([rows, meta]), context()))
    assert described["points"] == [
        {
            "metric": "state.sum",
            "tags": {"device": "sensor.e"},
            "unit": "kWh",
            "ts_us": 1_714_550_400_000_000,
            "value": 2.0,
        }
    ]


def test_big_history_answers_are_split_without_losing_rows_or_units() -> None:
    """The listener and the import cut large history results into several bodies; parsed
    together they give exactly the points of the whole answer (units included)."""
    from stats_service.listeners.homeassistant import history_bodies
    from stats_service.listeners.homeassistant_client import Answer

    base = 1_714_550_400.0
    result = {
        f"sensor.s{e}": [{"s": "1", "a": {"unit_of_measurement": "W"}, "lu": base}]
        + [{"s": str(i), "lu": base + i} for i in range(2, 40)]
        for e in range(5)
    }
    message = {"id": 4, "type": "result", "success": True, "result": result}
    answer = Answer(orjson.dumps(message), message)
    whole = describe(parse(answer.raw, context()))
    bodies = list(history_bodies(answer, rows_per_body=25))
    assert len(bodies) > 5
    points = [p for body in bodies for p in describe(parse(body, context()))["points"]]
    assert sorted(points, key=orjson.dumps) == sorted(whole["points"], key=orjson.dumps)
    assert {p["unit"] for p in points} == {"W"}
    assert list(history_bodies(answer)) == [answer.raw]  # small: the raw message as is
