"""Chart-ready reads of simulation runs: timelines, summaries, comparisons.

A run's steps are the points of the series tagged `run=<id>` (one series per
compartment). A step's `t` is `(stored time - time_origin) / tick`, or the value of the
run's `t` series at that time for steps that came with a wall-clock `ts`.

The summary of an epidemic run (docs/contracts/epidemic-run-v1.md, "Summary"):

- peak infected and its t; attack rate `(N - S_final) / N`; final sizes; duration
  `t_last - t_first`; `end_t`, the first t after the peak with fewer than one infected;
- the growth rate r of the early phase: a least-squares fit of ln(infected) on t from
  the lowest infected count before the growth (an SEIR run's infected first dip while
  the exposed fill up) to the first step where infected reach a tenth of the peak;
- R0 from r (Wallinga & Lipsitch 2007, exponentially distributed periods), with the
  removal rate g = gamma + mu: SIR/SIRD `1 + r/g`, SEIR/SEIRD `(1 + r/sigma)(1 + r/g)`,
  divided by S0/N (the susceptible share at the start);
- R0 implied by the parameters: beta / (gamma + mu) (mu = 0 when absent; the latent
  period of SEIR changes the speed of the epidemic, not R0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np

from ..errors import BadParameter
from ..ingest.protocols.epidemic_run import COMPARTMENTS, MODEL_TAG, RUN_TAG, T_METRIC
from ..ingest.timestamps import MAX_US, MIN_US
from ..model import DEVICE_TAG, Float64Array, Int64Array, SeriesKey
from ..storage.runs import RunRecord
from ..storage.sources import points_source
from .columns import floats, ints, number, series_id, times, values
from .params import TimeRange
from .series import SERIES_COLUMNS, SeriesFilter, SeriesInfo
from .stats import statistics

MAX_STEPS = 1_000_000  # a timeline without `bucket` holds at most this many steps
MAX_COMPARE = 10
GROWTH_SHARE = 0.1  # the early phase ends where infected first reach this share of the peak
MIN_FIT_POINTS = 3


def run_series(cur: duckdb.DuckDBPyConnection, run: RunRecord) -> list[SeriesInfo]:
    """The series of a run (tag run=<id>), in compartment order."""
    clause, params = SeriesFilter(tags=((RUN_TAG, run.id),)).where(run.tenant_id)
    rows = cur.execute(f"SELECT {SERIES_COLUMNS} FROM series s WHERE {clause}", params).fetchall()
    order = {name: i for i, name in enumerate((*COMPARTMENTS, T_METRIC))}
    found = [SeriesInfo.from_row(r) for r in rows]
    return sorted(found, key=lambda s: (order.get(s.metric, len(order)), s.metric))


@dataclass(frozen=True, slots=True)
class Steps:
    """Every step of a run: t, stored time and one column per field (NaN: no value)."""

    t: Float64Array
    ts: Int64Array
    fields: dict[str, Float64Array]

    def __len__(self) -> int:
        return int(self.t.shape[0])


def read_steps(cur: duckdb.DuckDBPyConnection, run: RunRecord) -> Steps:
    infos = run_series(cur, run)
    if not infos:
        return Steps(np.zeros(0), np.zeros(0, dtype=np.int64), {})
    metric = {s.id: s.metric for s in infos}
    source = points_source(cur, run.tenant_id, MIN_US, MAX_US)
    data = cur.execute(
        f"SELECT series_id, epoch_us(ts) AS us, value FROM {source} "
        "WHERE series_id IN (SELECT unnest(?::BIGINT[])) ORDER BY ts",
        [list(metric)],
    ).fetchnumpy()
    sids, us, vals = ints(data["series_id"]), ints(data["us"]), floats(data["value"])
    stamps, at = np.unique(us, return_inverse=True)
    columns: dict[str, Float64Array] = {}
    for sid, name in metric.items():
        column = np.full(stamps.shape[0], np.nan)
        mine = sids == sid
        column[at[mine]] = vals[mine]
        columns[name] = column
    derived = (stamps - run.origin_us) / run.tick_us
    given = columns.pop(T_METRIC, None)
    t = derived if given is None else np.where(np.isnan(given), derived, given)
    order = np.argsort(t, kind="stable")
    return Steps(t[order], stamps[order], {k: v[order] for k, v in columns.items()})


def pick_fields(steps: Steps, fields: str | None) -> list[str]:
    present = [c for c in COMPARTMENTS if c in steps.fields] + sorted(
        f for f in steps.fields if f not in COMPARTMENTS
    )
    if not fields:
        return present
    wanted = list(dict.fromkeys(f.strip() for f in fields.split(",") if f.strip()))
    unknown = [f for f in wanted if f not in present]
    if unknown or not wanted:
        raise BadParameter(
            "fields",
            f"unknown field{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
            f"this run has {', '.join(present) or 'no steps yet'}",
        )
    return wanted


def parse_bucket(text: str | None) -> float | None:
    """The bucket width in units of t (a positive number), or None."""
    if text is None or not text.strip():
        return None
    try:
        width = float(text)
    except ValueError:
        width = math.nan
    if not math.isfinite(width) or width <= 0:
        raise BadParameter("bucket", "must be a positive number of t units (e.g. 7 for weeks)")
    return width


def bucketed(steps: Steps, width: float) -> tuple[Float64Array, dict[str, Float64Array]]:
    """Bucket starts (multiples of `width`) and the mean of each field per bucket."""
    keys = np.floor(steps.t / width)
    unique, inverse = np.unique(keys, return_inverse=True)
    out: dict[str, Float64Array] = {}
    for name, column in steps.fields.items():
        ok = ~np.isnan(column)
        sums = np.bincount(inverse[ok], weights=column[ok], minlength=unique.shape[0])
        counts = np.bincount(inverse[ok], minlength=unique.shape[0])
        with np.errstate(invalid="ignore", divide="ignore"):
            out[name] = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return unique * width, out


def timeline(
    cur: duckdb.DuckDBPyConnection, run: RunRecord, fields: str | None, bucket: str | None
) -> dict[str, Any]:
    """{"run", "t": [...], "<field>": [...]} (and "ts" unbucketed), chart-ready."""
    steps = read_steps(cur, run)
    names = pick_fields(steps, fields)
    width = parse_bucket(bucket)
    out: dict[str, Any] = {"run": run.id, "bucket": width, "fields": names}
    if width is None:
        if len(steps) > MAX_STEPS:
            raise BadParameter("bucket", f"the run has {len(steps)} steps; give bucket=<t units>")
        out["t"] = values(steps.t)
        out["ts"] = times(steps.ts, micros=True)
        for name in names:
            out[name] = values(steps.fields[name])
        return out
    starts, columns = bucketed(steps, width)
    out["t"] = values(starts)
    for name in names:
        out[name] = values(columns[name])
    return out


# -- summary -----------------------------------------------------------------------------


def _rate(params: dict[str, Any], name: str) -> float | None:
    value = params.get(name)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def implied_r0(run: RunRecord) -> float | None:
    beta, gamma = _rate(run.params, "beta"), _rate(run.params, "gamma")
    if beta is None or gamma is None:
        return None
    removal = gamma + (_rate(run.params, "mu") or 0.0)
    return beta / removal if removal > 0 else None


def growth_fit(t: Float64Array, infected: Float64Array) -> dict[str, Any] | None:
    """Least-squares fit of ln(infected) on t over the early growth phase, or None."""
    ok = ~np.isnan(infected)
    t, infected = t[ok], infected[ok]
    if t.shape[0] < MIN_FIT_POINTS:
        return None
    peak = int(np.argmax(infected))
    if peak == 0 or infected[peak] <= 0:
        return None
    end = None
    for share in (GROWTH_SHARE, 0.5, 1.0):
        reached = np.flatnonzero(infected[: peak + 1] >= share * infected[peak])
        candidate = int(reached[0]) if reached.shape[0] else peak
        positive = np.flatnonzero(infected[: candidate + 1] > 0)
        if positive.shape[0] == 0:
            continue
        start = int(positive[np.argmin(infected[positive])])
        if candidate - start + 1 >= MIN_FIT_POINTS:
            end = candidate
            break
    if end is None:
        return None
    x, y = t[start : end + 1], np.log(infected[start : end + 1])
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (slope * x + intercept)
    spread = float(np.sum((y - y.mean()) ** 2))
    r_squared = 1.0 - float(np.sum(residual**2)) / spread if spread > 0 else None
    rate = float(slope)
    return {
        "rate": rate,
        "doubling_time": math.log(2) / rate if rate > 0 else None,
        "from_t": float(x[0]),
        "to_t": float(x[-1]),
        "points": int(x.shape[0]),
        "r_squared": r_squared,
    }


def growth_r0(run: RunRecord, rate: float, s0_share: float) -> tuple[float | None, str]:
    gamma, sigma = _rate(run.params, "gamma"), _rate(run.params, "sigma")
    if rate <= 0:
        return None, "infected did not grow: no estimate"
    if gamma is None:
        return None, "needs gamma in the parameters to turn the growth rate into R0"
    removal = gamma + (_rate(run.params, "mu") or 0.0)
    if removal <= 0:
        return None, "gamma + mu is 0: no estimate"
    factor = 1.0 + rate / removal
    method = "1 + r/(gamma+mu)"
    if run.model in ("seir", "seird"):
        if not sigma:
            return None, "needs sigma in the parameters for an SEIR run"
        factor *= 1.0 + rate / sigma
        method = "(1 + r/sigma)(1 + r/(gamma+mu))"
    if s0_share <= 0:
        return None, "no susceptible at the start: no estimate"
    return factor / s0_share, f"{method}, divided by S0/N"


def _first(column: Float64Array) -> float | None:
    ok = np.flatnonzero(~np.isnan(column))
    return float(column[ok[0]]) if ok.shape[0] else None


def _last(column: Float64Array) -> float | None:
    ok = np.flatnonzero(~np.isnan(column))
    return float(column[ok[-1]]) if ok.shape[0] else None


def epidemic(run: RunRecord, steps: Steps) -> dict[str, Any]:
    population = int(run.params.get("population", 0)) or None
    out: dict[str, Any] = {"population": population, "r0_parameters": number(implied_r0(run))}
    susceptible, infected = steps.fields.get("susceptible"), steps.fields.get("infected")
    out["final"] = {
        name: number(_last(steps.fields[name])) for name in COMPARTMENTS if name in steps.fields
    }
    if infected is None or susceptible is None or not len(steps):
        out.update(peak_infected=None, peak_t=None, attack_rate=None, end_t=None)
        out.update(growth=None, r0_estimate=None, r0_method="no steps yet")
        return out
    filled = np.where(np.isnan(infected), -np.inf, infected)
    peak = int(np.argmax(filled))
    out["peak_infected"] = number(infected[peak])
    out["peak_t"] = number(steps.t[peak])
    s_final = _last(susceptible)
    out["attack_rate"] = (
        number((population - s_final) / population) if population and s_final is not None else None
    )
    below = np.flatnonzero(infected[peak:] < 1.0)
    out["end_t"] = number(steps.t[peak + int(below[0])]) if below.shape[0] else None
    fit = growth_fit(steps.t, infected)
    out["growth"] = fit
    s0 = _first(susceptible)
    if fit is None:
        out["r0_estimate"], out["r0_method"] = None, "no early growth phase of 3 steps or more"
    else:
        share = s0 / population if population and s0 is not None else 1.0
        estimate, method = growth_r0(run, fit["rate"], share)
        out["r0_estimate"], out["r0_method"] = number(estimate), method
    return out


def summary(cur: duckdb.DuckDBPyConnection, run: RunRecord) -> dict[str, Any]:
    steps = read_steps(cur, run)
    infos = [s for s in run_series(cur, run) if s.metric != T_METRIC]
    span = TimeRange(MIN_US, MAX_US)
    stats = statistics(cur, run.tenant_id, infos, span)["series"] if infos else []
    per_field = {
        entry["metric"]: {
            k: v for k, v in entry.items() if k not in ("device", "metric", "tags", "unit")
        }
        for entry in stats
    }
    t_first = float(steps.t[0]) if len(steps) else None
    t_last = float(steps.t[-1]) if len(steps) else None
    out: dict[str, Any] = {
        "run": run.id,
        "kind": run.kind,
        "model": run.model,
        "status": run.status,
        "steps": len(steps),
        "t_first": t_first,
        "t_last": t_last,
        "duration": None if t_first is None or t_last is None else t_last - t_first,
        "tick_seconds": run.tick_seconds,
        "fields": per_field,
    }
    if run.kind == "epidemic":
        out["epidemic"] = epidemic(run, steps)
    return out


def run_tags(run: RunRecord) -> dict[str, str]:
    """The tags of the run's series, as the steps parser writes them."""
    tags = {RUN_TAG: run.id, MODEL_TAG: run.model or "custom"}
    if run.device is not None:
        tags[DEVICE_TAG] = run.device
    return tags


def step_stats(cur: duckdb.DuckDBPyConnection, run: RunRecord) -> tuple[int, float | None]:
    """Stored steps (points of `infected`, which every step carries) and the largest t
    (of the `t` series when steps came with a wall-clock `ts`, else from the last time)."""
    tags = run_tags(run)
    infected = SeriesKey.of(run.tenant_id, "infected", tags).series_id
    given = SeriesKey.of(run.tenant_id, T_METRIC, tags).series_id
    source = points_source(cur, run.tenant_id, MIN_US, MAX_US)
    row = cur.execute(
        f"SELECT count(*) FILTER (WHERE series_id = ?), "
        f"epoch_us(max(ts) FILTER (WHERE series_id = ?)), "
        f"max(value) FILTER (WHERE series_id = ?) FROM {source} WHERE series_id IN (?, ?)",
        [infected, infected, given, infected, given],
    ).fetchone()
    assert row is not None
    count, last_us, last_given = int(row[0]), row[1], row[2]
    if last_given is not None:
        return count, float(last_given)
    if last_us is None:
        return count, None
    return count, (int(last_us) - run.origin_us) / run.tick_us


def compare(
    cur: duckdb.DuckDBPyConnection, runs: list[RunRecord], fields: str | None, bucket: str | None
) -> dict[str, Any]:
    """Timelines aligned on t (the union of every run's t; None where a run has no step)
    and the summaries side by side."""
    width = parse_bucket(bucket)
    lines: dict[str, tuple[Float64Array, dict[str, Float64Array]]] = {}
    for run in runs:
        steps = read_steps(cur, run)
        names = pick_fields(steps, fields) if fields else list(steps.fields)
        if width is None:
            t, columns = steps.t, steps.fields
        else:
            t, columns = bucketed(steps, width)
        lines[run.id] = (t, {n: columns[n] for n in names})
    grid = np.unique(np.concatenate([t for t, _ in lines.values()])) if lines else np.zeros(0)
    if grid.shape[0] > MAX_STEPS:
        raise BadParameter("bucket", f"the aligned runs have {grid.shape[0]} steps; give bucket=")
    aligned: dict[str, dict[str, list[float | None]]] = {}
    for run_id, (t, columns) in lines.items():
        at = np.searchsorted(grid, t)
        aligned[run_id] = {}
        for name, column in columns.items():
            full = np.full(grid.shape[0], np.nan)
            full[at] = column
            aligned[run_id][name] = values(full)
    return {
        "ids": [r.id for r in runs],
        "bucket": width,
        "t": values(grid),
        "runs": aligned,
        "summaries": {r.id: summary(cur, r) for r in runs},
    }


def run_dict(run: RunRecord, infos: list[SeriesInfo] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": run.id,
        "kind": run.kind,
        "model": run.model,
        "name": run.name,
        "device": run.device,
        "status": run.status,
        "message": run.message,
        "parameters": run.params,
        "started_at": times(np.array([run.started_us]), micros=True)[0],
        "finished_at": (
            None if run.finished_us is None else times(np.array([run.finished_us]), micros=True)[0]
        ),
        "time_origin": times(np.array([run.origin_us]), micros=True)[0],
        "tick_seconds": run.tick_seconds,
        "steps": run.steps,
        "last_t": run.last_t,
    }
    if infos is not None:
        out["series"] = {s.metric: series_id(s.id) for s in infos}
    return out
