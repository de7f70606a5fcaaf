"""Simulation runs (epidemic-run/v1) against the real app: contract examples, a real SIR
and SEIR simulation computed here with numpy, validation, idempotency, reads, export."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from conftest import new_key

EXAMPLES = Path(__file__).parents[3] / "docs/contracts/examples/epidemic-run-v1"
SCHEMA = "epidemic-run/v1"


def contract_schema(part: str) -> dict[str, Any]:
    text = resources.files("stats_service").joinpath(
        f"contracts/epidemic-run-v1-{part}.schema.json"
    )
    return json.loads(text.read_text())  # type: ignore[no-any-return]


def validate(part: str, body: object) -> None:
    jsonschema.Draft202012Validator(contract_schema(part)).validate(body)


def example(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / name).read_text())  # type: ignore[no-any-return]


def simulate(
    population: int,
    infected: float,
    beta: float,
    gamma: float,
    days: int,
    sigma: float | None = None,
    mu: float = 0.0,
    per_day: int = 20,
) -> dict[str, np.ndarray]:
    """Deterministic S(E)I R(D) model, Euler steps of 1/per_day, one row per day."""
    s, e, i, r, d = population - infected, 0.0, infected, 0.0, 0.0
    rows = np.zeros((days + 1, 5))
    rows[0] = (s, e, i, r, d)
    dt = 1.0 / per_day
    for day in range(1, days + 1):
        for _ in range(per_day):
            new_inf = beta * s * i / population * dt
            onset = sigma * e * dt if sigma is not None else new_inf
            rec, die = gamma * i * dt, mu * i * dt
            if sigma is None:
                s, i, r, d = s - new_inf, i + new_inf - rec - die, r + rec, d + die
            else:
                s, e = s - new_inf, e + new_inf - onset
                i, r, d = i + onset - rec - die, r + rec, d + die
        rows[day] = (s, e, i, r, d)
    names = ("susceptible", "exposed", "infected", "recovered", "deceased")
    return {name: rows[:, k] for k, name in enumerate(names)}


def steps_of(sim: dict[str, np.ndarray], fields: tuple[str, ...], lo: int, hi: int) -> list[Any]:
    return [{"t": t, **{f: float(sim[f][t]) for f in fields}} for t in range(lo, hi)]


def start(client: TestClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    answer = client.post("/v1/runs", json={"schema": SCHEMA, **body}, headers=headers)
    assert answer.status_code == 201, answer.text
    return answer.json()  # type: ignore[no-any-return]


def post_steps(
    client: TestClient, headers: dict[str, str], run: str, steps: list[Any], **extra: str
) -> dict[str, Any]:
    answer = client.post(
        f"/v1/runs/{run}/steps",
        json={"schema": SCHEMA, "steps": steps},
        headers={**headers, **extra},
    )
    assert answer.status_code == 202, answer.text
    return answer.json()  # type: ignore[no-any-return]


def problem(answer: Any, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    return answer.json()  # type: ignore[no-any-return]


# -- the contract's examples --------------------------------------------------------------


def test_every_example_validates_and_is_accepted(client: TestClient, admin: dict[str, str]) -> None:
    files = sorted(p.name for p in EXAMPLES.glob("*.json"))
    assert len(files) >= 7
    flows = [
        ("sir-start.json", ["sir-steps.json", "wall-clock-steps.json"], "finish.json"),
        ("seird-start.json", ["seird-steps.json"], "failed.json"),
    ]
    used = {name for s, steps, f in flows for name in (s, *steps, f)}
    assert used == set(files), "every example is posted by this test"
    for start_file, step_files, finish_file in flows:
        body = example(start_file)
        validate("start", body)
        made = client.post("/v1/runs", json=body, headers=admin)
        assert made.status_code == 201, made.text
        run = made.json()["id"]
        assert run == body["id"]
        for name in step_files:
            steps = example(name)
            validate("steps", steps)
            post_steps(client, admin, run, steps["steps"])
        end = example(finish_file)
        validate("finish", end)
        done = client.post(f"/v1/runs/{run}/finish", json=end, headers=admin)
        assert done.status_code == 200, done.text
        assert done.json()["status"] == end["status"]
        counted = sum(len(example(n)["steps"]) for n in step_files)
        assert client.get(f"/v1/runs/{run}", headers=admin).json()["steps"] == counted
    line = client.get("/v1/runs/sir-baseline-001/timeline", headers=admin).json()
    assert line["t"] == [0, 1, 2, 3, 4, 5]  # the wall-clock steps keep their t
    assert line["ts"][4:] == ["2026-12-01T10:00:00.000000Z", "2026-12-01T10:00:02.500000Z"]
    seird = client.get("/v1/runs/seird-hourly-7", headers=admin).json()
    assert seird["time_origin"] == "2026-03-01T00:00:00.000000Z"
    assert seird["tick_seconds"] == 3600
    assert set(seird["series"]) == {"susceptible", "exposed", "infected", "recovered", "deceased"}


def test_schemas_refuse_what_the_service_refuses(client: TestClient, admin: dict[str, str]) -> None:
    bad_starts = [
        {"model": "sir", "parameters": {"population": 100, "beta": 0.3}},  # no gamma
        {"model": "sirs", "parameters": {"population": 100}},
        {"model": "seir", "parameters": {"population": 100, "beta": 0.3, "gamma": 0.1}},
        {"model": "custom", "parameters": {"population": 0}},
        {"model": "custom", "parameters": {"population": 10, "flag": True}},
        {"model": "custom", "id": "-bad", "parameters": {"population": 10}},
        {"model": "custom", "parameters": {"population": 10}, "colour": "red"},
    ]
    for body in bad_starts:
        assert not jsonschema.Draft202012Validator(contract_schema("start")).is_valid(body), body
        assert client.post("/v1/runs", json=body, headers=admin).status_code == 400, body
    start(client, admin, id="schema-check", model="sir",
          parameters={"population": 100, "beta": 0.3, "gamma": 0.1})  # fmt: skip
    bad_steps = [
        {"steps": []},
        {"steps": [{"t": 0, "susceptible": 1, "infected": -1, "recovered": 0}]},
        {"steps": [{"t": 0, "susceptible": 1, "infected": 1}]},
        {"steps": [{"t": -1, "susceptible": 1, "infected": 1, "recovered": 0}]},
        {"steps": [{"t": 0, "susceptible": 1, "infected": 1, "recovered": 0, "extra": 1}]},
    ]
    for body in bad_steps:
        assert not jsonschema.Draft202012Validator(contract_schema("steps")).is_valid(body), body
        answer = client.post("/v1/runs/schema-check/steps", json=body, headers=admin)
        assert answer.status_code == 400, body
    validator = jsonschema.Draft202012Validator(contract_schema("finish"))
    for body in ({"status": "done"}, {"status": "failed", "why": "x"}):
        assert not validator.is_valid(body)
        answer = client.post("/v1/runs/schema-check/finish", json=body, headers=admin)
        assert answer.status_code == 400, body


# -- a real SIR simulation ------------------------------------------------------------------


def test_sir_run_timeline_summary_and_r0(client: TestClient, admin: dict[str, str]) -> None:
    beta, gamma, population = 0.3, 0.1, 100_000
    sim = simulate(population, 10, beta, gamma, 200)
    fields = ("susceptible", "infected", "recovered")
    run = start(client, admin, id="sir-r0", model="sir", device="sim-1",
                parameters={"population": population, "beta": beta, "gamma": gamma,
                            "seed": 1})["id"]  # fmt: skip
    for lo in range(0, 201, 50):  # four batches and a retry of one (replayed, not doubled)
        batch = steps_of(sim, fields, lo, min(lo + 50, 201))
        first = post_steps(client, admin, run, batch, **{"Idempotency-Key": f"sir-{lo}"})
        again = client.post(
            f"/v1/runs/{run}/steps",
            json={"schema": SCHEMA, "steps": batch},
            headers={**admin, "Idempotency-Key": f"sir-{lo}"},
        )
        assert again.status_code == 202 and again.headers["Idempotent-Replayed"] == "true"
        assert again.json()["batch_id"] == first["batch_id"]
    ended = client.post(f"/v1/runs/{run}/finish", json={"status": "finished"}, headers=admin)
    assert ended.status_code == 200 and ended.json()["status"] == "finished"

    info = client.get(f"/v1/runs/{run}", headers=admin).json()
    assert (info["steps"], info["last_t"], info["device"]) == (201, 200.0, "sim-1")
    line = client.get(f"/v1/runs/{run}/timeline", headers=admin).json()
    assert line["t"] == list(range(201))
    for field in fields:
        np.testing.assert_allclose(line[field], sim[field][:201], rtol=1e-12)
    sub = client.get(f"/v1/runs/{run}/timeline?fields=infected&bucket=10", headers=admin).json()
    assert set(sub) == {"run", "bucket", "fields", "t", "infected"}
    assert sub["t"] == [10.0 * k for k in range(21)]
    np.testing.assert_allclose(sub["infected"][0], sim["infected"][:10].mean())

    summary = client.get(f"/v1/runs/{run}/summary", headers=admin).json()
    epi = summary["epidemic"]
    peak = int(np.argmax(sim["infected"]))
    assert epi["peak_t"] == peak
    assert epi["peak_infected"] == pytest.approx(sim["infected"][peak])
    expected_attack = (population - sim["susceptible"][200]) / population
    assert epi["attack_rate"] == pytest.approx(expected_attack)
    assert epi["final"]["recovered"] == pytest.approx(sim["recovered"][200])
    assert epi["r0_parameters"] == pytest.approx(beta / gamma)
    assert epi["r0_estimate"] == pytest.approx(beta / gamma, rel=0.05)
    assert epi["growth"]["rate"] == pytest.approx(beta - gamma, rel=0.05)
    assert epi["growth"]["r_squared"] > 0.99
    assert summary["duration"] == 200 and summary["steps"] == 201
    assert summary["fields"]["infected"]["max"] == pytest.approx(sim["infected"].max())
    assert summary["fields"]["susceptible"]["count"] == 201

    # the steps are ordinary series: the generic reads see them by the run tag
    listed = client.get("/v1/series", params={"tag.run": run}, headers=admin).json()["items"]
    assert sorted(s["metric"] for s in listed) == sorted(fields)
    assert all(s["tags"] == {"run": run, "model": "sir", "device": "sim-1"} for s in listed)
    # steps after the end are refused
    late = client.post(
        f"/v1/runs/{run}/steps",
        json={"steps": steps_of(sim, fields, 200, 201)},
        headers=admin,
    )
    assert "ended" in problem(late, 409)["detail"]


def test_seir_and_sird_r0_estimates(client: TestClient, admin: dict[str, str]) -> None:
    cases = [
        ("seir", dict(beta=0.5, gamma=0.2, sigma=0.25), ("susceptible", "exposed", "infected",
                                                         "recovered")),
        ("sird", dict(beta=0.4, gamma=0.1, mu=0.02), ("susceptible", "infected", "recovered",
                                                      "deceased")),
    ]  # fmt: skip
    for model, rates, fields in cases:
        sim = simulate(50_000, 5, days=250, **rates)  # type: ignore[arg-type]
        run = start(client, admin, model=model,
                    parameters={"population": 50_000, **rates})["id"]  # fmt: skip
        post_steps(client, admin, run, steps_of(sim, fields, 0, 251))
        epi = client.get(f"/v1/runs/{run}/summary", headers=admin).json()["epidemic"]
        implied = rates["beta"] / (rates["gamma"] + rates.get("mu", 0.0))
        assert epi["r0_parameters"] == pytest.approx(implied)
        assert epi["r0_estimate"] == pytest.approx(implied, rel=0.1), (model, epi)
        assert set(epi["final"]) == set(fields)


# -- validation -----------------------------------------------------------------------------


def test_bad_steps_are_refused_whole_with_every_location(
    client: TestClient, admin: dict[str, str]
) -> None:
    run = start(client, admin, id="bad-steps", model="sir",
                parameters={"population": 1000, "beta": 0.3, "gamma": 0.1})["id"]  # fmt: skip
    steps = [
        {"t": 0, "susceptible": 990, "infected": 10, "recovered": 0},
        {"t": 1, "susceptible": 985, "infected": 14, "recovered": 1},
        {"t": 1, "susceptible": 980, "infected": 18, "recovered": 2},  # t not increasing
        {"t": 3, "susceptible": 975, "infected": -1, "recovered": 3},
        {"t": 4, "susceptible": 900, "infected": 100, "recovered": 50},  # > population
        {"t": 5, "susceptible": 900, "infected": 10, "recovered": 5, "exposed": 1},  # not SIR
        {"t": "6", "susceptible": 900, "infected": 10, "recovered": 5, "ts": "yesterday"},
        "step",
    ]
    answer = client.post(f"/v1/runs/{run}/steps", json={"schema": SCHEMA, "steps": steps},
                         headers=admin)  # fmt: skip
    body = problem(answer, 400)
    locs = {e["loc"]: e["msg"] for e in body["errors"]}
    assert "greater than" in locs["body.steps[2].t"]
    assert locs["body.steps[3].infected"] == "must be ≥ 0"
    assert "exceeds the population 1000" in locs["body.steps[4]"]
    assert "not a compartment of model 'sir'" in locs["body.steps[5].exposed"]
    assert "body.steps[6].t" in locs and "body.steps[6].ts" in locs
    assert "body.steps[7]" in locs
    assert client.get(f"/v1/runs/{run}", headers=admin).json()["steps"] == 0  # nothing written


@pytest.mark.parametrize(
    ("body", "status", "loc"),
    [
        ({"schema": "epidemic-run/v2", "model": "sir"}, 422, "body.schema"),
        ({"schema": "temperature/v1", "model": "sir"}, 422, "body.schema"),
        (
            {"model": "sir", "parameters": {"population": 10, "beta": 1, "gamma": -1}},
            400,
            "body.parameters.gamma",
        ),
        (
            {"model": "sir", "parameters": {"population": 2.5, "beta": 1, "gamma": 1}},
            400,
            "body.parameters.population",
        ),
        (
            {"model": "custom", "parameters": {"population": 9}, "tick_seconds": 0},
            400,
            "body.tick_seconds",
        ),
        (
            {"model": "custom", "parameters": {"population": 9}, "started_at": "soon"},
            400,
            "body.started_at",
        ),
        ({"parameters": {"population": 9}}, 400, "body.model"),
        ({"model": "custom"}, 400, "body.parameters"),
    ],
)
def test_bad_starts(
    client: TestClient, admin: dict[str, str], body: dict[str, Any], status: int, loc: str
) -> None:
    answer = problem(client.post("/v1/runs", json=body, headers=admin), status)
    assert loc in {e["loc"] for e in answer["errors"]}, answer
    if status == 422:
        assert "epidemic-run/v1" in answer["detail"]  # names what is supported


def test_not_json_and_unknown_runs(client: TestClient, admin: dict[str, str]) -> None:
    problem(client.post("/v1/runs", content=b"{nope", headers=admin), 400)
    steps = {"steps": [{"t": 0, "susceptible": 1, "infected": 1, "recovered": 1}]}
    problem(client.post("/v1/runs/nope/steps", json=steps, headers=admin), 404)
    problem(client.post("/v1/runs/nope/finish", json={}, headers=admin), 404)
    for suffix in ("", "/timeline", "/summary", "/export"):
        problem(client.get(f"/v1/runs/nope{suffix}", headers=admin), 404)
    bad = problem(client.get("/v1/runs/bad%20id", headers=admin), 400)
    assert bad["errors"][0]["loc"] == "path.run"


# -- start, finish, repeated t --------------------------------------------------------------


def test_start_is_idempotent_and_finish_once(client: TestClient, admin: dict[str, str]) -> None:
    body = {"schema": SCHEMA, "id": "same", "model": "custom", "parameters": {"population": 5}}
    first = client.post("/v1/runs", json=body, headers=admin)
    again = client.post("/v1/runs", json=body, headers=admin)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json() == again.json()
    other = {**body, "parameters": {"population": 6}}
    assert "other parameters" in problem(client.post("/v1/runs", json=other, headers=admin),
                                         409)["detail"]  # fmt: skip
    anonymous = {k: v for k, v in body.items() if k != "id"}
    a = client.post("/v1/runs", json=anonymous, headers=admin).json()["id"]
    b = client.post("/v1/runs", json=anonymous, headers=admin).json()["id"]
    assert a != b and len(a) == 36  # new UUIDs
    keyed = {**admin, "Idempotency-Key": "start-1"}
    c = client.post("/v1/runs", json=anonymous, headers=keyed)
    d = client.post("/v1/runs", json=anonymous, headers=keyed)
    assert (c.status_code, d.status_code) == (201, 200) and c.json()["id"] == d.json()["id"]

    end = {"status": "cancelled", "message": "stopped by the user"}
    assert client.post("/v1/runs/same/finish", json=end, headers=admin).status_code == 200
    retry = client.post("/v1/runs/same/finish", json=end, headers=admin)
    assert retry.status_code == 200 and retry.json()["message"] == "stopped by the user"
    problem(client.post("/v1/runs/same/finish", json={"status": "failed"}, headers=admin), 409)


def test_repeated_t_keeps_the_last_write(client: TestClient, admin: dict[str, str]) -> None:
    run = start(client, admin, model="custom", parameters={"population": 100})["id"]
    post_steps(
        client,
        admin,
        run,
        [
            {"t": 0, "susceptible": 99, "infected": 1, "recovered": 0},
            {"t": 1, "susceptible": 98, "infected": 2, "recovered": 0},
        ],
    )
    post_steps(client, admin, run, [{"t": 1, "susceptible": 90, "infected": 9, "recovered": 1}])
    line = client.get(f"/v1/runs/{run}/timeline", headers=admin).json()
    assert (line["t"], line["infected"]) == ([0, 1], [1, 9])
    assert client.get(f"/v1/runs/{run}", headers=admin).json()["steps"] == 2


# -- list, compare, export, keys ------------------------------------------------------------


def test_list_filters_and_pages(client: TestClient, admin: dict[str, str]) -> None:
    made = []
    for k in range(7):
        run = start(client, admin, id=f"list-{k}", model="sir" if k % 2 else "custom",
                    device=f"host-{k % 3}", started_at=f"2026-01-0{k + 1}T00:00:00Z",
                    parameters={"population": 10, "beta": 1, "gamma": 1})  # fmt: skip
        made.append(run["id"])
    client.post("/v1/runs/list-3/finish", json={"status": "failed"}, headers=admin)
    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/runs", params=params, headers=admin).json()
        seen += [r["id"] for r in page["items"]]
        if not (cursor := page["next_cursor"]):
            break
    assert seen == made[::-1]  # newest start first, no overlap, no gap

    def ids(**params: str) -> list[str]:
        answer = client.get("/v1/runs", params=params, headers=admin)
        assert answer.status_code == 200, answer.text
        return [r["id"] for r in answer.json()["items"]]

    assert ids(status="failed") == ["list-3"]
    assert ids(device="host-1") == ["list-4", "list-1"]
    assert ids(model="sir", status="running") == ["list-5", "list-1"]
    assert ids(kind="epidemic", **{"from": "2026-01-06T00:00:00Z"}) == ["list-6", "list-5"]
    assert ids(to="2026-01-02T00:00:00Z") == ["list-0"]
    assert ids(kind="other") == []
    problem(client.get("/v1/runs", params={"status": "done"}, headers=admin), 400)
    problem(client.get("/v1/runs", params={"from": "yesterday"}, headers=admin), 400)


def test_compare_aligns_on_t(client: TestClient, admin: dict[str, str]) -> None:
    fields = ("susceptible", "infected", "recovered")
    sims = {"cmp-a": simulate(1000, 5, 0.4, 0.1, 30), "cmp-b": simulate(1000, 5, 0.2, 0.1, 30)}
    for run, sim in sims.items():
        start(client, admin, id=run, model="sir",
              parameters={"population": 1000, "beta": 0.4, "gamma": 0.1})  # fmt: skip
    post_steps(client, admin, "cmp-a", steps_of(sims["cmp-a"], fields, 0, 31))
    post_steps(client, admin, "cmp-b", steps_of(sims["cmp-b"], fields, 10, 21))
    both = client.get("/v1/runs/compare?ids=cmp-a,cmp-b&fields=infected", headers=admin).json()
    assert both["t"] == list(range(31))
    assert set(both["runs"]["cmp-b"]) == {"infected"}
    b_line = both["runs"]["cmp-b"]["infected"]
    assert b_line[:10] == [None] * 10 and b_line[21:] == [None] * 10
    np.testing.assert_allclose(b_line[10:21], sims["cmp-b"]["infected"][10:21])
    assert both["summaries"]["cmp-a"]["epidemic"]["peak_infected"] == pytest.approx(
        sims["cmp-a"]["infected"].max()
    )
    bucketed = client.get("/v1/runs/compare?ids=cmp-a,cmp-b&bucket=10", headers=admin).json()
    assert bucketed["t"] == [0, 10, 20, 30]
    many = ",".join(f"r{k}" for k in range(11))
    assert "at most 10" in problem(client.get(f"/v1/runs/compare?ids={many}", headers=admin),
                                   400)["detail"]  # fmt: skip
    missing = problem(client.get("/v1/runs/compare?ids=cmp-a,x1,x2", headers=admin), 404)
    assert "x1, x2" in missing["detail"]


def test_export_csv_json_parquet(client: TestClient, admin: dict[str, str]) -> None:
    sim = simulate(1000, 5, 0.4, 0.1, 9)
    fields = ("susceptible", "infected", "recovered")
    start(client, admin, id="exp-1", model="sir", device="exporter",
          parameters={"population": 1000, "beta": 0.4, "gamma": 0.1})  # fmt: skip
    start(client, admin, id="exp-2", model="sir", device="exporter",
          parameters={"population": 1000, "beta": 0.4, "gamma": 0.1})  # fmt: skip
    post_steps(client, admin, "exp-1", steps_of(sim, fields, 0, 10))
    post_steps(client, admin, "exp-2", steps_of(sim, fields, 0, 3))  # not in exp-1's export
    csv = client.get("/v1/runs/exp-1/export?format=csv", headers=admin)
    assert (
        csv.status_code == 200 and 'filename="run-exp-1.csv"' in csv.headers["content-disposition"]
    )
    assert len(csv.text.strip().splitlines()) == 1 + 30
    rows = client.get("/v1/runs/exp-1/export?format=json", headers=admin).json()
    assert len(rows) == 30 and {r["metric"] for r in rows} == set(fields)
    parquet = client.get("/v1/runs/exp-1/export?format=parquet&layout=wide", headers=admin)
    table = pq.read_table(io.BytesIO(parquet.content))
    assert table.num_rows == 10 and table.num_columns == 4
    generic = client.get("/v1/export", params={"tag.run": "exp-1", "format": "json"},
                         headers=admin)  # fmt: skip
    assert generic.json() == rows  # the same as the generic export selected by tag
    start(client, admin, id="exp-empty", model="custom", parameters={"population": 3})
    problem(client.get("/v1/runs/exp-empty/export", headers=admin), 404)


def test_keys_and_device_tokens(client: TestClient, admin: dict[str, str]) -> None:
    ingest, read = new_key(client, "ingest"), new_key(client, "read")
    params = {"population": 10, "beta": 1, "gamma": 1}
    run = start(client, ingest, id="keyed", model="sir", parameters=params)["id"]
    assert client.get("/v1/runs", headers=ingest).status_code == 403
    assert client.get(f"/v1/runs/{run}", headers=read).status_code == 200
    body = {"schema": SCHEMA, "model": "sir", "parameters": params}
    assert client.post("/v1/runs", json=body, headers=read).status_code == 403
    made = client.post("/v1/admin/keys", json={"role": "ingest", "device": "board-7"},
                       headers=admin)  # fmt: skip
    token = {"X-API-Key": made.json()["key"]}
    own = client.post("/v1/runs", json=body, headers=token)
    assert own.status_code == 201 and own.json()["device"] == "board-7"
    step = [{"t": 0, "susceptible": 9, "infected": 1, "recovered": 0}]
    post_steps(client, token, own.json()["id"], step)
    problem(client.post("/v1/runs", json={**body, "device": "board-8"}, headers=token), 403)
    problem(client.post(f"/v1/runs/{run}/steps", json={"steps": step}, headers=token), 403)


def test_replay_of_the_raw_archive_restores_the_steps(
    client: TestClient, admin: dict[str, str]
) -> None:
    """The archived steps carry what the parser needs of the run (pipeline params)."""
    services = client.app.state.services  # type: ignore[attr-defined]
    sim = simulate(1000, 5, 0.4, 0.1, 20)
    fields = ("susceptible", "infected", "recovered")
    start(client, admin, id="replayed", model="sir", device="sim-r",
          parameters={"population": 1000, "beta": 0.4, "gamma": 0.1})  # fmt: skip
    post_steps(client, admin, "replayed", steps_of(sim, fields, 0, 21))
    before = client.get("/v1/runs/replayed/timeline", headers=admin).json()
    with services.store.transaction() as con:
        con.execute("DELETE FROM points")
    assert client.get("/v1/runs/replayed/timeline", headers=admin).json()["t"] == []
    today = datetime.now(UTC).date().isoformat()
    answer = client.post("/v1/admin/replay", json={"from": today, "to": today}, headers=admin)
    assert answer.status_code == 200, answer.text
    assert answer.json()["failed"] == []
    assert client.get("/v1/runs/replayed/timeline", headers=admin).json() == before
