"""The epidemic-run/v1 parser and checks, without a service; and the growth fit."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest

from stats_service.errors import BadRequest, ValidationFailed
from stats_service.ingest.protocols import PARSERS
from stats_service.ingest.protocols import epidemic_run as contract
from stats_service.ingest.protocols.base import ParseContext
from stats_service.ingest.protocols.contract_version import UnsupportedContract
from stats_service.model import SeriesKey
from stats_service.query.runs import growth_fit

NOW = 1_800_000_000_000_000
DAY = 86_400_000_000


def ctx(model: str = "sir", population: int = 100, device: str | None = None) -> ParseContext:
    params = contract.step_params("r1", model, device, NOW, DAY, population)
    return ParseContext(tenant_id=7, now_us=NOW, max_future_us=NOW + 60_000_000, params=params)


def body(*steps: object) -> bytes:
    return orjson.dumps({"schema": "epidemic-run/v1", "steps": list(steps)})


def test_registered_as_a_protocol() -> None:
    assert PARSERS[contract.PROTOCOL] is contract.parse


def test_steps_become_points_of_tagged_series_at_origin_plus_t_ticks() -> None:
    steps = body(
        {"t": 0, "susceptible": 90, "infected": 10, "recovered": 0},
        {"t": 1.5, "susceptible": 80, "infected": 15, "recovered": 5},
    )
    batch = contract.parse(steps, ctx(device="host"))
    assert len(batch) == 6
    tags = {"run": "r1", "model": "sir", "device": "host"}
    infected = SeriesKey.of(7, "infected", tags).series_id
    mine = batch.series_id == infected
    assert batch.ts[mine].tolist() == [NOW, NOW + DAY * 3 // 2]
    assert batch.value[mine].tolist() == [10.0, 15.0]
    assert batch.series[infected].unit == "people"


def test_wall_clock_steps_store_t_beside_them() -> None:
    batch = contract.parse(
        body({"t": 3, "ts": NOW // 1_000_000, "susceptible": 1, "infected": 1, "recovered": 1}),
        ctx(),
    )
    t_series = SeriesKey.of(7, "t", {"run": "r1", "model": "sir"}).series_id
    assert batch.value[batch.series_id == t_series].tolist() == [3.0]
    assert set(batch.ts.tolist()) == {NOW}


def test_every_error_is_located_and_nothing_is_built() -> None:
    steps = body(
        {"t": 2, "susceptible": 1, "infected": 1, "recovered": 1},
        {"t": 2, "susceptible": 1, "infected": 1, "recovered": 1},
        {"t": 3, "susceptible": 1, "infected": math.pi, "deceased": 1},
        {"t": 4, "susceptible": 60, "infected": 30, "recovered": 20},
        {"t": 5, "susceptible": 1, "infected": 1, "recovered": 1, "ts": NOW + DAY},
    )
    with pytest.raises(ValidationFailed) as caught:
        contract.parse(steps, ctx())
    locs = [e.loc for e in caught.value.errors]
    assert locs == [
        "body.steps[1].t",
        "body.steps[2].recovered",
        "body.steps[2].deceased",
        "body.steps[3]",
        "body.steps[4].ts",
    ]


def test_rounded_counts_may_pass_the_population_by_half_a_person_each() -> None:
    ok = body({"t": 0, "susceptible": 50.4, "infected": 30.4, "recovered": 20.4})
    assert len(contract.parse(ok, ctx())) == 3
    with pytest.raises(ValidationFailed):
        contract.parse(body({"t": 0, "susceptible": 52, "infected": 30, "recovered": 20}), ctx())


def test_models_allow_their_compartments() -> None:
    seird = body({"t": 0, "susceptible": 1, "exposed": 1, "infected": 1, "recovered": 1,
                  "deceased": 1})  # fmt: skip
    assert len(contract.parse(seird, ctx("seird"))) == 5
    with pytest.raises(ValidationFailed):
        contract.parse(seird, ctx("seir"))  # no deceased in SEIR


def test_versions_and_missing_run() -> None:
    with pytest.raises(UnsupportedContract, match="epidemic-run/v1"):
        contract.parse(orjson.dumps({"schema": "epidemic-run/v9", "steps": []}), ctx())
    with pytest.raises(BadRequest, match="started run"):
        contract.parse(body(), ParseContext(tenant_id=1, now_us=NOW, max_future_us=NOW))


def test_start_defaults_and_hash() -> None:
    doc = {"model": "sir", "parameters": {"population": 10, "beta": 0.2, "gamma": 0.1}}
    start = contract.start(orjson.dumps(doc), NOW, NOW)
    assert (start.id, start.started_us, start.origin_us, start.tick_us) == (None, NOW, NOW, DAY)
    again = contract.start(orjson.dumps(doc), NOW + 5, NOW + 5)
    assert again.start_hash == start.start_hash  # the server's defaults are not part of it
    other = contract.start(orjson.dumps({**doc, "name": "x"}), NOW, NOW)
    assert other.start_hash != start.start_hash


def test_finish_defaults() -> None:
    done = contract.finish(b"", NOW, NOW)
    assert (done.status, done.message, done.finished_us) == ("finished", None, NOW)


def test_growth_fit_recovers_an_exponential_rate() -> None:
    t = np.arange(0.0, 60.0)
    infected = 5 * np.exp(0.23 * t)
    infected[40:] = infected[39] * np.exp(-0.1 * (t[40:] - 39))  # a peak at t = 39
    fit = growth_fit(t, infected)
    assert fit is not None
    assert fit["rate"] == pytest.approx(0.23, rel=1e-9)
    assert fit["r_squared"] == pytest.approx(1.0)
    assert (fit["from_t"], fit["doubling_time"]) == (0.0, pytest.approx(math.log(2) / 0.23))


def test_growth_fit_starts_at_the_dip_and_refuses_decline() -> None:
    t = np.arange(0.0, 40.0)
    infected = np.where(t < 5, 10 - t, 5 * np.exp(0.2 * (t - 5)))
    fit = growth_fit(t, infected)
    assert fit is not None and fit["from_t"] == 5.0
    assert fit["rate"] == pytest.approx(0.2, rel=1e-6)
    assert growth_fit(t, 100 * np.exp(-0.1 * t)) is None


def test_a_t_beyond_the_calendar_is_an_error_not_an_overflow() -> None:
    for t in (1e300, 1.7e308):
        with pytest.raises(ValidationFailed, match=r"steps\[0\].t"):
            contract.parse(body({"t": t, "susceptible": 1, "infected": 1, "recovered": 1}), ctx())
