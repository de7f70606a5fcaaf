"""The `epidemic-run/v1` contract (docs/contracts/epidemic-run-v1.md).

A run is started (`start`), sends batches of steps (`parse`, the wire format the
ingest pipeline runs for `POST /v1/runs/{run}/steps`) and is finished (`finish`).
Every check collects its error with a location (`body.steps[3].infected`), and a
request with any error is refused whole.

Stored time of a step: its wall-clock `ts` when it carries one, else
`time_origin + t * tick_seconds` (the origin defaults to the run's start, the tick to
one simulated day = 86400 s). The run's parameters needed here (run id, model, device,
origin, tick, population) reach the parser as pipeline params, so a replay of the raw
archive parses the same batch without looking at the runs table.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from typing import Any

import orjson

from ...errors import BadRequest, FieldError, ValidationFailed
from ...model import DEVICE_TAG, Batch
from ..timestamps import MAX_US, MIN_US, TimestampError, format_us, parse_timestamp
from .base import MAX_FIELD_ERRORS, BatchBuilder, ParseContext
from .contract_version import check

FAMILY = "epidemic-run"
PROTOCOL = "epidemic-run"  # the pipeline protocol of the steps
KIND = "epidemic"
RUN_TAG = "run"
MODEL_TAG = "model"
T_METRIC = "t"  # stored beside the compartments only for steps with a wall-clock `ts`
UNIT = "people"
MODELS = ("sir", "seir", "sird", "seird", "custom")
STATUSES = ("finished", "failed", "cancelled")
COMPARTMENTS = ("susceptible", "exposed", "infected", "recovered", "deceased")
REQUIRED = ("susceptible", "infected", "recovered")
OPTIONAL_BY_MODEL: dict[str, frozenset[str]] = {
    "sir": frozenset(),
    "seir": frozenset({"exposed"}),
    "sird": frozenset({"deceased"}),
    "seird": frozenset({"exposed", "deceased"}),
    "custom": frozenset({"exposed", "deceased"}),
}
RATES = ("beta", "gamma", "sigma", "mu")
NEEDED_RATES: dict[str, tuple[str, ...]] = {
    "sir": ("beta", "gamma"),
    "seir": ("beta", "gamma", "sigma"),
    "sird": ("beta", "gamma", "mu"),
    "seird": ("beta", "gamma", "sigma", "mu"),
    "custom": (),
}
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")
ID_MSG = "must be 1-128 characters: letters, digits and . _ : @ - (starting with a letter or digit)"
PARAM_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
START_KEYS = frozenset(
    {"schema", "id", "model", "name", "device", "started_at", "time_origin", "tick_seconds",
     "parameters"}
)  # fmt: skip
STEP_KEYS = frozenset({"t", "ts", *COMPARTMENTS})
FINISH_KEYS = frozenset({"schema", "status", "message", "finished_at"})
MAX_STEPS = 100_000
MAX_PARAMS = 64
MAX_TEXT = 256
MAX_MESSAGE = 2000
MAX_POPULATION = 10**12
DEFAULT_TICK_S = 86_400.0
SUM_SLACK = 1e-9  # relative: floating-point sums of an ODE solver
ROUNDING = 0.5  # per compartment: counts rounded to the nearest whole person


def _loads(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None


def _finite(value: Any) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, int | float)
        and math.isfinite(float(value))
    )


class _Errors:
    def __init__(self) -> None:
        self.items: list[FieldError] = []

    def add(self, loc: str, msg: str) -> None:
        if len(self.items) < MAX_FIELD_ERRORS:
            self.items.append(FieldError(loc, msg))

    def raise_any(self) -> None:
        if self.items:
            raise ValidationFailed(self.items)


def _unknown(doc: dict[str, Any], allowed: frozenset[str], loc: str, errors: _Errors) -> None:
    for key in sorted(doc.keys() - allowed):
        errors.add(f"{loc}.{key}", f"unknown field; allowed: {', '.join(sorted(allowed))}")


def _time(raw: Any, loc: str, errors: _Errors, now_us: int, max_future_us: int) -> int | None:
    try:
        us = parse_timestamp(raw, None)
    except TimestampError as exc:
        errors.add(loc, str(exc))
        return None
    if us > max_future_us:
        errors.add(loc, f"{format_us(us)} lies in the future (server time {format_us(now_us)})")
        return None
    return us


# -- start ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunStart:
    id: str | None  # None: the server picks one
    model: str
    name: str | None
    device: str | None
    started_us: int
    origin_us: int
    tick_us: int
    parameters: dict[str, Any]
    start_hash: str  # of the document as sent (with its id), to tell a retry from a clash

    @property
    def population(self) -> int:
        return int(self.parameters["population"])


def start(body: bytes, now_us: int, max_future_us: int) -> RunStart:
    """The checked start document; ValidationFailed lists every mistake."""
    doc = _loads(body)
    check(doc, FAMILY)
    errors = _Errors()
    _unknown(doc, START_KEYS, "body", errors)
    run_id = doc.get("id")
    if run_id is not None and not (isinstance(run_id, str) and ID_RE.fullmatch(run_id)):
        errors.add("body.id", ID_MSG)
    model = doc.get("model")
    if model is None:
        errors.add("body.model", f"is required: one of {', '.join(MODELS)}")
    elif model not in MODELS:
        errors.add("body.model", f"{model!r} is not one of {', '.join(MODELS)}")
    name = doc.get("name")
    if name is not None and not (isinstance(name, str) and 0 < len(name) <= MAX_TEXT):
        errors.add("body.name", f"must be a string of 1-{MAX_TEXT} characters")
    device = doc.get("device")
    if device is not None and not (isinstance(device, str) and ID_RE.fullmatch(device)):
        errors.add("body.device", ID_MSG)
    started_us = now_us
    if doc.get("started_at") is not None:
        started_us = _time(doc["started_at"], "body.started_at", errors, now_us, max_future_us) or 0
    origin_us = started_us
    if doc.get("time_origin") is not None:
        try:
            origin_us = parse_timestamp(doc["time_origin"], None)
        except TimestampError as exc:
            errors.add("body.time_origin", str(exc))
    tick_s = doc.get("tick_seconds", DEFAULT_TICK_S)
    if not _finite(tick_s) or not 1e-6 <= float(tick_s) <= 366 * 86_400:
        errors.add("body.tick_seconds", "must be a number of seconds from 0.000001 to 31622400")
        tick_s = DEFAULT_TICK_S
    parameters = _parameters(doc.get("parameters"), model if model in MODELS else None, errors)
    errors.raise_any()
    assert isinstance(model, str)
    canonical = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
    return RunStart(
        run_id,
        model,
        name,
        device,
        started_us,
        origin_us,
        round(float(tick_s) * 1_000_000),
        parameters,
        hashlib.sha256(canonical).hexdigest(),
    )


def _parameters(raw: Any, model: str | None, errors: _Errors) -> dict[str, Any]:
    loc = "body.parameters"
    if not isinstance(raw, dict):
        errors.add(loc, "is required: an object with population, beta, gamma, ...")
        return {}
    if len(raw) > MAX_PARAMS:
        errors.add(loc, f"at most {MAX_PARAMS} parameters")
    population = raw.get("population")
    if population is None:
        errors.add(f"{loc}.population", "is required")
    elif (
        isinstance(population, bool)
        or not isinstance(population, int)
        or not 1 <= population <= MAX_POPULATION
    ):
        errors.add(f"{loc}.population", f"must be a whole number from 1 to {MAX_POPULATION}")
    for rate in RATES:
        value = raw.get(rate)
        if value is None:
            if model is not None and rate in NEEDED_RATES[model]:
                errors.add(f"{loc}.{rate}", f"is required for model {model!r}")
        elif not _finite(value) or value < 0:
            errors.add(f"{loc}.{rate}", "must be a finite number ≥ 0 (a rate per tick)")
    if model in ("sir", "seir", "sird", "seird") and raw.get("gamma") == 0 and not raw.get("mu"):
        errors.add(f"{loc}.gamma", "must be > 0 (nobody would ever recover)")
    seed = raw.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        errors.add(f"{loc}.seed", "must be a whole number")
    for key, value in raw.items():
        if key in ("population", "seed", *RATES):
            continue
        if not PARAM_RE.fullmatch(key):
            errors.add(f"{loc}.{key}", "parameter names are 1-64 letters, digits, _ . -")
        elif isinstance(value, str):
            if len(value) > MAX_TEXT:
                errors.add(f"{loc}.{key}", f"text parameters hold at most {MAX_TEXT} characters")
        elif not _finite(value):
            errors.add(f"{loc}.{key}", "must be a finite number or a string")
    return dict(raw)


# -- finish -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunFinish:
    status: str
    message: str | None
    finished_us: int


def finish(body: bytes, now_us: int, max_future_us: int) -> RunFinish:
    doc = _loads(body or b"{}")
    check(doc, FAMILY)
    errors = _Errors()
    _unknown(doc, FINISH_KEYS, "body", errors)
    status = doc.get("status", "finished")
    if status not in STATUSES:
        errors.add("body.status", f"{status!r} is not one of {', '.join(STATUSES)}")
    message = doc.get("message")
    if message is not None and not (isinstance(message, str) and len(message) <= MAX_MESSAGE):
        errors.add("body.message", f"must be a string of at most {MAX_MESSAGE} characters")
    finished_us = now_us
    if doc.get("finished_at") is not None:
        at = _time(doc["finished_at"], "body.finished_at", errors, now_us, max_future_us)
        finished_us = at if at is not None else now_us
    errors.raise_any()
    return RunFinish(str(status), message, finished_us)


# -- steps: the wire format of POST /v1/runs/{run}/steps ----------------------------------


def step_params(
    run_id: str, model: str, device: str | None, origin_us: int, tick_us: int, population: int
) -> dict[str, str]:
    """What the parser needs of the run, as pipeline params (kept in the raw archive)."""
    params = {
        "run": run_id,
        "model": model,
        "origin_us": str(origin_us),
        "tick_us": str(tick_us),
        "population": str(population),
    }
    if device is not None:
        params["run_device"] = device
    return params


def parse(body: bytes, ctx: ParseContext) -> Batch:
    """A batch of steps -> points of the run's series (metric = compartment)."""
    params = ctx.params
    try:
        run_id, model = params["run"], params["model"]
        origin_us, tick_us = int(params["origin_us"]), int(params["tick_us"])
        population = int(params["population"])
    except (KeyError, ValueError):
        raise BadRequest("steps are posted to /v1/runs/{run}/steps of a started run") from None
    doc = _loads(body)
    check(doc, FAMILY)
    b = BatchBuilder(ctx.tenant_id)
    for key in sorted(doc.keys() - {"schema", "steps"}):
        b.error(f"body.{key}", "unknown field; allowed: schema, steps")
    steps = doc.get("steps")
    if not isinstance(steps, list) or not steps:
        b.error("body.steps", "must be a non-empty list of steps {t, susceptible, infected, ...}")
        return b.build()
    if len(steps) > MAX_STEPS:
        b.error("body.steps", f"at most {MAX_STEPS} steps per request: split the batch")
        return b.build()
    tags: dict[str, str] = {RUN_TAG: run_id, MODEL_TAG: model}
    device = params.get("run_device")
    if device is not None:
        tags[DEVICE_TAG] = device
    tag_tuple = tuple(sorted(tags.items()))
    allowed = frozenset(REQUIRED) | OPTIONAL_BY_MODEL.get(model, frozenset())
    previous_t: float | None = None
    for i, step in enumerate(steps):
        loc = f"body.steps[{i}]"
        if not isinstance(step, dict):
            b.error(loc, "must be an object {t, susceptible, infected, recovered, ...}")
            continue
        for key in sorted(step.keys() - STEP_KEYS):
            b.error(f"{loc}.{key}", f"unknown field; allowed: {', '.join(sorted(STEP_KEYS))}")
        t = step.get("t")
        if t is None:
            b.error(f"{loc}.t", "is required (the simulated day or tick)")
        elif not _finite(t) or t < 0:
            b.error(f"{loc}.t", "must be a finite number ≥ 0")
            t = None
        elif previous_t is not None and t <= previous_t:
            b.error(f"{loc}.t", f"must be greater than the step before's t ({previous_t:g})")
        if t is not None:
            previous_t = float(t)
        at: int | None = None
        wall = step.get("ts") is not None
        if wall:
            at = _step_time(step["ts"], f"{loc}.ts", b, ctx)
        elif t is not None:
            stored = origin_us + float(t) * tick_us
            if MIN_US <= stored <= MAX_US:
                at = origin_us + round(float(t) * tick_us)
            else:
                b.error(f"{loc}.t", "maps to a time outside 1900-01-01 .. 9999-12-31")
        total = 0.0
        values: list[tuple[str, float]] = []
        for name in COMPARTMENTS:
            value = step.get(name)
            if value is None:
                if name in REQUIRED:
                    b.error(f"{loc}.{name}", "is required")
                continue
            if name not in allowed:
                b.error(f"{loc}.{name}", f"is not a compartment of model {model!r}")
            elif not _finite(value):
                b.error(f"{loc}.{name}", "must be a finite number")
            elif value < 0:
                b.error(f"{loc}.{name}", "must be ≥ 0")
            else:
                total += float(value)
                values.append((name, float(value)))
        if total > population * (1 + SUM_SLACK) + ROUNDING * len(values):
            parts = "+".join(n[0].upper() for n, _ in values)
            b.error(loc, f"{parts} = {total:g} exceeds the population {population}")
            continue
        if at is None or t is None or b.errors:
            continue
        for name, value in values:
            b.add(b.series_id(name, tag_tuple, UNIT), at, value)
        if wall:
            b.add(b.series_id(T_METRIC, tag_tuple, None), at, float(t))
    return b.build()


def _step_time(raw: Any, loc: str, b: BatchBuilder, ctx: ParseContext) -> int | None:
    try:
        us = parse_timestamp(raw, ctx.precision)
    except TimestampError as exc:
        b.error(loc, str(exc))
        return None
    if us > ctx.max_future_us:
        b.error(loc, f"{format_us(us)} lies too far in the future; check the clock")
        return None
    return us
