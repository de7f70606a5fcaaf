"""Pattern analysis of series (docs/patterns.md): change points, decomposition, dominant
periods, motifs and discords of one series; correlation and Granger causality between
series.

Every route reads aligned buckets (`bucket`, default 1m) of the tenant's series over
[from, to) (default the last 24 h), refuses bad parameters with a 400 naming them and
input over `analysis_max_points` with a 400 naming the limit. Large input (see the
thresholds below) or `async=true` runs as a task: 202 with the task (poll
`GET /tasks/{task_id}`), whose result is the body the route answers directly.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from ...analytics.patterns import changepoints as cp
from ...analytics.patterns import decompose as stl
from ...analytics.patterns import motifs as mp
from ...analytics.patterns.data import check_size, owned
from ...analytics.patterns.runner import analyse, execute, read, spec
from ...errors import BadParameter, NotFound
from ...jobs.pattern_analysis import KIND
from ...model import Principal
from ...query.buckets import Buckets
from ...query.params import (
    DAY_US,
    TimeRange,
    parse_duration,
    parse_series_id,
    parse_series_ids,
    time_range,
)
from ...services import Services
from ..deps import ReadPrincipal, ServicesDep
from ..patterns_models import (
    ChangePointsOut,
    CorrelationOut,
    DecomposeOut,
    GrangerOut,
    MotifsOut,
    SpectrumOut,
)
from ..problems import PROBLEM_RESPONSES
from ..read_models import READ_PROBLEMS
from ..read_params import From, To, json_response, now_us
from .tasks import TaskStatus, task_status

router = APIRouter(tags=["patterns"])

# Above these sizes (buckets of the range, before reading) an analysis runs as a task.
SYNC_BUCKETS = {
    "changepoints": 5_000,  # Pelt: up to quadratic in the buckets
    "decompose": 20_000,
    "spectrum": 100_000,
    "motifs": 10_000,  # matrix profile: quadratic in the buckets
}
SYNC_STL_WORK = 2_000_000  # decompose: buckets x period (known once the series is read)
SYNC_CORRELATION_WORK = 5_000_000  # pairs x lags x buckets
SYNC_GRANGER_WORK = 200_000  # lags x buckets
MAX_CORRELATED = 20
MAX_CORRELATION_LAG = 1000
MAX_GRANGER_LAG = 100

PROBLEMS: dict[int | str, dict[str, Any]] = {
    **READ_PROBLEMS,
    429: PROBLEM_RESPONSES[429],
    202: {
        "model": TaskStatus,
        "description": "Large input or `async=true`: the analysis runs as a task; poll "
        "`GET /tasks/{task_id}`, whose `result` is the body of a direct answer.",
    },
}

SeriesIdPath = Annotated[
    str, Path(pattern=r"^-?[0-9]{1,19}$", description="Series id (decimal, signed 64-bit).")
]
Bucket = Annotated[
    str, Query(description="Bucket width (10s, 1m, 1h...; under a day); means per bucket.")
]
Async = Annotated[
    bool,
    Query(alias="async", description="Run as a task (202) whatever the size of the input."),
]


def _sid(text: str) -> int:
    try:
        return parse_series_id("series_id", text)
    except BadParameter:
        raise NotFound(f"series {text} does not exist") from None


def _buckets(text: str) -> Buckets:
    width = parse_duration("bucket", text)
    if width >= DAY_US:
        raise BadParameter("bucket", "must be under a day for a pattern analysis (e.g. 1h)")
    return Buckets(width)


def _in_buckets(param: str, text: str, width_us: int) -> int:
    """A number of buckets (`12`) or a duration (`1h`) that is a whole number of them."""
    value = text.strip()
    if value.isascii() and value.isdigit():
        return int(value)
    micros = parse_duration(param, value)
    if micros % width_us:
        raise BadParameter(param, f"{value!r} is not a whole number of buckets")
    return micros // width_us


def _grid_size(span: TimeRange, buckets: Buckets) -> int:
    return -(-(span.to_us - span.from_us) // buckets.width_us)


def _answer(
    services: Services,
    principal: Principal,
    analysis: str,
    ids: list[int],
    span: TimeRange,
    buckets: Buckets,
    options: dict[str, Any],
    background: bool,
) -> Response:
    """Check size and ownership, then answer at once or start a task (202)."""
    with services.store.reader() as cur:
        owned(cur, principal.tenant_id, ids)  # 404 first (and now, not in a task)
    limit = services.settings.analysis_max_points
    check_size(buckets, span, len(ids), limit)
    given = spec(analysis, ids, span, buckets, limit, options)
    if background:
        return _task(services, principal, given)
    if analysis == "decompose":  # its cost depends on the period: read, then decide
        grid = read(services.store, principal.tenant_id, given)
        if stl.work(grid, options["period"]) > SYNC_STL_WORK:
            return _task(services, principal, given)
        return json_response(analyse(grid, given))
    return json_response(execute(services.store, principal.tenant_id, given))


def _series_answer(
    services: Services,
    principal: Principal,
    analysis: str,
    series_id: str,
    window: tuple[str | None, str | None],
    buckets: Buckets,
    options: dict[str, Any],
    background: bool,
) -> Response:
    """One series' analysis: a task when asked or when its bucket grid is large."""
    span = time_range(window[0], window[1], now_us())
    large = _grid_size(span, buckets) > SYNC_BUCKETS[analysis]
    ids = [_sid(series_id)]
    return _answer(services, principal, analysis, ids, span, buckets, options, background or large)


def _task(services: Services, principal: Principal, given: dict[str, Any]) -> Response:
    task_id = services.tasks.submit(principal.tenant_id, KIND, given)
    status = task_status(services, principal.tenant_id, task_id)
    return Response(status.model_dump_json(), status_code=202, media_type="application/json")


@router.get(
    "/v1/series/{series_id}/changepoints", response_model=ChangePointsOut, responses=PROBLEMS
)
def get_changepoints(
    series_id: SeriesIdPath,
    principal: ReadPrincipal,
    services: ServicesDep,
    from_: From = None,
    to: To = None,
    bucket: Bucket = "1m",
    model: Annotated[
        str, Query(description="l2: changes of level; rbf: changes of distribution.")
    ] = "l2",
    n_bkps: Annotated[
        int | None, Query(ge=0, le=100, description="Find this many changes (default: Pelt).")
    ] = None,
    penalty: Annotated[
        float | None, Query(gt=0, description="Pelt penalty (default: from the noise, BIC-like).")
    ] = None,
    min_size: Annotated[int, Query(ge=2, le=10_000, description="Fewest buckets a segment.")] = 3,
    async_: Async = False,
) -> Response:
    """Change points of the series' level (ruptures): where a new segment starts, the
    means before and after, and the segments."""
    buckets = _buckets(bucket)
    if model not in cp.MODELS:
        raise BadParameter("model", f"{model!r} is not a model; valid are {', '.join(cp.MODELS)}")
    if n_bkps is not None and penalty is not None:
        raise BadParameter("penalty", "give n_bkps or penalty, not both")
    options = {"model": model, "n_bkps": n_bkps, "pen": penalty, "min_size": min_size}
    return _series_answer(
        services, principal, "changepoints", series_id, (from_, to), buckets, options, async_
    )


@router.get("/v1/series/{series_id}/decompose", response_model=DecomposeOut, responses=PROBLEMS)
def get_decompose(
    series_id: SeriesIdPath,
    principal: ReadPrincipal,
    services: ServicesDep,
    from_: From = None,
    to: To = None,
    bucket: Bucket = "1m",
    period: Annotated[
        str | None,
        Query(description="Season length: a duration (1h) or buckets (60); default detected."),
    ] = None,
    async_: Async = False,
) -> Response:
    """Trend, seasonal and residual components (STL) on the bucket grid, the period used
    and the strength of trend and seasonality."""
    buckets = _buckets(bucket)
    options: dict[str, Any] = {"period": None}
    if period is not None and period.strip():
        options["period"] = _in_buckets("period", period, buckets.width_us)
        if options["period"] < 2:
            raise BadParameter("period", "must be at least 2 buckets")
    return _series_answer(
        services, principal, "decompose", series_id, (from_, to), buckets, options, async_
    )


@router.get("/v1/series/{series_id}/spectrum", response_model=SpectrumOut, responses=PROBLEMS)
def get_spectrum(
    series_id: SeriesIdPath,
    principal: ReadPrincipal,
    services: ServicesDep,
    from_: From = None,
    to: To = None,
    bucket: Bucket = "1m",
    top: Annotated[int, Query(ge=1, le=20, description="Periods to list.")] = 5,
    async_: Async = False,
) -> Response:
    """Dominant periods (periodogram of the detrended buckets): each with its length in
    buckets, seconds and as a duration, and its share of the power."""
    buckets = _buckets(bucket)
    return _series_answer(
        services, principal, "spectrum", series_id, (from_, to), buckets, {"top": top}, async_
    )


@router.get("/v1/series/{series_id}/motifs", response_model=MotifsOut, responses=PROBLEMS)
def get_motifs(
    series_id: SeriesIdPath,
    principal: ReadPrincipal,
    services: ServicesDep,
    from_: From = None,
    to: To = None,
    bucket: Bucket = "1m",
    window: Annotated[
        str | None,
        Query(description="Pattern length: a duration (30m) or buckets (30); default derived."),
    ] = None,
    top: Annotated[int, Query(ge=1, le=10, description="Motifs and discords to list.")] = 3,
    async_: Async = False,
) -> Response:
    """Recurring patterns (motif pairs) and discords (windows unlike any other) from the
    matrix profile (stumpy)."""
    buckets = _buckets(bucket)
    options: dict[str, Any] = {"window": None, "top": top}
    if window is not None and window.strip():
        options["window"] = _in_buckets("window", window, buckets.width_us)
        if options["window"] < mp.MIN_WINDOW:
            raise BadParameter("window", f"must be at least {mp.MIN_WINDOW} buckets")
    return _series_answer(
        services, principal, "motifs", series_id, (from_, to), buckets, options, async_
    )


@router.get("/v1/analysis/correlation", response_model=CorrelationOut, responses=PROBLEMS)
def get_correlation(
    principal: ReadPrincipal,
    services: ServicesDep,
    series: Annotated[
        str, Query(description=f"2 to {MAX_CORRELATED} series ids, comma-separated.")
    ],
    from_: From = None,
    to: To = None,
    bucket: Bucket = "1m",
    max_lag: Annotated[
        str, Query(description="Largest lag tried: buckets (10) or a duration (10m).")
    ] = "0",
    async_: Async = False,
) -> Response:
    """Pearson matrix at lag 0 and, per pair, the lag in [-max_lag, max_lag] with the
    strongest correlation (positive: b follows a), with Spearman's at that lag."""
    buckets = _buckets(bucket)
    ids = parse_series_ids("series", series)
    if not 2 <= len(ids) <= MAX_CORRELATED:
        raise BadParameter("series", f"give 2 to {MAX_CORRELATED} different series ids")
    lag = _in_buckets("max_lag", max_lag, buckets.width_us)
    if lag > MAX_CORRELATION_LAG:
        raise BadParameter("max_lag", f"at most {MAX_CORRELATION_LAG} buckets")
    span = time_range(from_, to, now_us())
    pairs = len(ids) * (len(ids) - 1) // 2
    large = pairs * (2 * lag + 1) * _grid_size(span, buckets) > SYNC_CORRELATION_WORK
    return _answer(
        services, principal, "correlation", ids, span, buckets, {"max_lag": lag},
        async_ or large,
    )  # fmt: skip


@router.get("/v1/analysis/granger", response_model=GrangerOut, responses=PROBLEMS)
def get_granger(
    principal: ReadPrincipal,
    services: ServicesDep,
    cause: Annotated[str, Query(description="Series id of the supposed cause.")],
    effect: Annotated[str, Query(description="Series id of the supposed effect.")],
    from_: From = None,
    to: To = None,
    bucket: Bucket = "1m",
    max_lag: Annotated[
        str, Query(description="Lags tested, 1..max_lag: buckets (5) or a duration (5m).")
    ] = "5",
    alpha: Annotated[float, Query(gt=0, lt=0.5, description="Significance level.")] = 0.05,
    difference: Annotated[
        str, Query(description="auto (when a unit root is likely), true or false.")
    ] = "auto",
    async_: Async = False,
) -> Response:
    """Granger causality of `cause` on `effect` (SSR F test per lag): p-values, the best
    lag and a plain verdict at `alpha`."""
    buckets = _buckets(bucket)
    ids = [parse_series_id("cause", cause), parse_series_id("effect", effect)]
    if ids[0] == ids[1]:
        raise BadParameter("effect", "must be another series than cause")
    lag = _in_buckets("max_lag", max_lag, buckets.width_us)
    if not 1 <= lag <= MAX_GRANGER_LAG:
        raise BadParameter("max_lag", f"must be between 1 and {MAX_GRANGER_LAG} buckets")
    mode = difference.strip().lower()
    if mode not in ("auto", "true", "false"):
        raise BadParameter("difference", f"{difference!r}: valid are auto, true and false")
    span = time_range(from_, to, now_us())
    large = lag * _grid_size(span, buckets) > SYNC_GRANGER_WORK
    options = {"max_lag": lag, "alpha": alpha, "difference": mode}
    return _answer(services, principal, "granger", ids, span, buckets, options, async_ or large)
