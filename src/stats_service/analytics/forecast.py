"""Forecasts of one bucketed series (docs/forecasting.md).

The input is the series' bucket means over [from, to) as the read API computes them
(query/aggregate.py, same buckets and tiers). Short gaps (at most MAX_GAP buckets) are
interpolated linearly; before a longer gap the history is dropped when what follows is
long enough to forecast from (else the gap is interpolated too, with a note). At most
MAX_HISTORY buckets, the latest, are used.

Seasonality is given (`season`, in buckets) or detected: for each candidate period (an
hour, a day, a week in buckets; at least two whole cycles in the history) the series is
detrended with a moving average of one period, and the period with the strongest
seasonal component (seasonal strength = 1 - var(remainder) / var(detrended), at least
SEASON_MIN_STRENGTH, and a positive autocorrelation at that lag) wins.

Candidates: `seasonal_naive` (the value one season ago; the last value without a
season), `ets` (statsmodels ETSModel: additive errors, damped additive trend, additive
season when there is one) and `arima` (statsmodels ARIMA with drift, the order of
ARIMA_ORDERS with the best AIC, Fourier terms of the season as regressors). Each is
backtested on rolling origins (BACKTEST_FOLDS folds, horizon = the request's, capped);
the one with the lowest mean MASE is chosen and refitted on the whole history. Its
prediction intervals answer `levels`; the seasonal naive intervals come from the normal
approximation of its residuals, widened as sqrt(number of seasons ahead).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats as sstats

from ..errors import BadParameter

FloatArray = npt.NDArray[np.float64]

MODELS = ("seasonal_naive", "ets", "arima")
MAX_HISTORY = 3000  # buckets (the latest) a forecast learns from
MAX_HORIZON = 1000  # buckets
MAX_GAP = 12  # buckets interpolated across; longer gaps cut the history
MIN_POINTS = 12  # buckets with data needed to forecast at all
MIN_TRAIN = 8  # buckets of training in a backtest fold (two seasons with a season)
MAX_SEASON = 400  # buckets; longer seasons are not modelled
MAX_FOURIER = 4  # Fourier pairs of the season in the ARIMA regressors
BACKTEST_FOLDS = 3
MAX_BACKTEST_HORIZON = 200
SEASON_MIN_STRENGTH = 0.4
TIME_BUDGET_S = 60.0  # the remaining candidates are skipped after that (noted)
ARIMA_ORDERS = ((0, 1, 1), (1, 1, 0), (1, 1, 1))
SEASON_CANDIDATES_US = (3600 * 10**6, 86_400 * 10**6, 7 * 86_400 * 10**6)


# -- preparing the history ---------------------------------------------------------------


@dataclass
class History:
    """The values the models learn from (no gaps), the UTC start of each bucket."""

    starts: npt.NDArray[np.int64]
    values: FloatArray
    filled: int = 0  # buckets interpolated
    notes: list[str] = field(default_factory=list)


def prepare(starts: npt.NDArray[np.int64], raw: FloatArray) -> History:
    """Trim empty ends, cut at the last long gap when enough follows, interpolate the rest
    linearly, keep the latest MAX_HISTORY buckets."""
    notes: list[str] = []
    have = np.isfinite(raw)
    if not have.any():
        return History(starts[:0], raw[:0], 0, notes)
    first, last = int(np.argmax(have)), len(have) - 1 - int(np.argmax(have[::-1]))
    starts, raw, have = starts[first : last + 1], raw[first : last + 1], have[first : last + 1]
    runs = _gaps(have)
    long_gaps = [(a, b) for a, b in runs if b - a > MAX_GAP]
    if long_gaps:
        a, b = long_gaps[-1]
        if int(have[b:].sum()) >= MIN_POINTS * 2:
            notes.append(
                f"history starts after a gap of {b - a} empty buckets (longer than {MAX_GAP})"
            )
            starts, raw, have = starts[b:], raw[b:], have[b:]
        else:
            notes.append(f"a gap of {b - a} empty buckets was interpolated linearly")
    if len(raw) > MAX_HISTORY:
        notes.append(f"only the latest {MAX_HISTORY} buckets are used")
        starts, raw, have = starts[-MAX_HISTORY:], raw[-MAX_HISTORY:], have[-MAX_HISTORY:]
    filled = int((~have).sum())
    values = raw.copy()
    if filled:
        index = np.arange(len(raw))
        values[~have] = np.interp(index[~have], index[have], raw[have])
        notes.append(f"{filled} empty bucket(s) interpolated linearly (gaps of at most {MAX_GAP})")
    return History(starts, values, filled, notes)


def _gaps(have: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    """[start, end) of each run of empty buckets."""
    edges = np.diff(np.concatenate(([1], have.astype(np.int8), [1])))
    return list(
        zip(np.flatnonzero(edges == -1).tolist(), np.flatnonzero(edges == 1).tolist(), strict=True)
    )


# -- seasonality -------------------------------------------------------------------------


@dataclass(frozen=True)
class Season:
    buckets: int | None
    detected: bool
    strength: float | None = None

    def as_dict(self, bucket_us: int) -> dict[str, Any]:
        return {
            "buckets": self.buckets,
            "duration": None if self.buckets is None else duration_text(self.buckets * bucket_us),
            "detected": self.detected,
            "strength": None if self.strength is None else round(self.strength, 4),
        }


def seasonal_strength(y: FloatArray, period: int) -> tuple[float, float]:
    """(strength, autocorrelation at `period`) of the series detrended by a moving average
    of one period."""
    n = len(y)
    if period < 2 or n < 2 * period + 2:
        return 0.0, 0.0
    if period % 2 == 0:  # 2 x period moving average, centred
        weights = np.r_[0.5, np.ones(period - 1), 0.5] / period
    else:
        weights = np.ones(period) / period
    trend = np.convolve(y, weights, mode="valid")
    half = (len(weights) - 1) // 2
    detrended = y[half : half + len(trend)] - trend
    phase = (np.arange(len(detrended)) + half) % period
    means = np.bincount(phase, detrended, minlength=period) / np.maximum(
        np.bincount(phase, minlength=period), 1
    )
    means -= means.mean()
    remainder = detrended - means[phase]
    total = float(np.var(detrended))
    if total <= 1e-12 * max(1.0, float(np.var(y))):
        return 0.0, 0.0
    strength = max(0.0, 1.0 - float(np.var(remainder)) / total)
    d = detrended - detrended.mean()
    acf = float(np.dot(d[:-period], d[period:]) / np.dot(d, d)) if len(d) > period else 0.0
    return strength, acf


def detect_season(y: FloatArray, bucket_us: int) -> Season:
    """The strongest calendar period (an hour, a day, a week in buckets), or none."""
    best: Season = Season(None, True)
    for span in SEASON_CANDIDATES_US:
        ratio = span / bucket_us
        period = round(ratio)
        if period < 3 or abs(ratio - period) > 0.05 * ratio or period > MAX_SEASON:
            continue
        strength, acf = seasonal_strength(y, period)
        strong = strength >= SEASON_MIN_STRENGTH and acf > 0.2
        if strong and (best.strength is None or strength > best.strength + 0.05):
            best = Season(period, True, strength)
    return best


# -- the candidates ----------------------------------------------------------------------


@dataclass
class Fitted:
    """A model fitted on a history: `predict(h, levels)` -> (mean, {level: (lo, hi)})."""

    predict: Callable[
        [int, tuple[float, ...]], tuple[FloatArray, dict[float, tuple[FloatArray, FloatArray]]]
    ]
    detail: str
    order: tuple[int, int, int] | None = None  # ARIMA's


def fit_naive(y: FloatArray, season: int | None) -> Fitted:
    m = season or 1
    residuals = y[m:] - y[:-m]
    sigma = float(np.std(residuals, ddof=1)) if len(residuals) > 1 else 0.0
    last = y[-m:]

    def predict(h: int, levels: tuple[float, ...]) -> Any:
        steps = np.arange(h)
        mean = last[steps % m].astype(np.float64)
        scale = sigma * np.sqrt(steps // m + 1.0)
        bands = {}
        for level in levels:
            z = float(sstats.norm.ppf(0.5 + level / 200))
            bands[level] = (mean - z * scale, mean + z * scale)
        return mean, bands

    what = f"the value {m} bucket(s) before" if m > 1 else "the last value"
    return Fitted(predict, f"{what}; intervals from its residuals (normal)")


def fit_ets(y: FloatArray, season: int | None) -> Fitted:
    import pandas as pd
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    seasonal = season is not None and len(y) >= 2 * season + 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = ETSModel(
            pd.Series(y),  # get_prediction needs an index
            error="add",
            trend="add",
            damped_trend=True,
            seasonal="add" if seasonal else None,
            seasonal_periods=season if seasonal else None,
            initialization_method="heuristic" if seasonal else "estimated",
        )
        result = model.fit(disp=False, maxiter=200)
    n = len(y)

    def predict(h: int, levels: tuple[float, ...]) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prediction = result.get_prediction(start=n, end=n + h - 1)
            mean = np.asarray(prediction.predicted_mean, dtype=np.float64)
            bands = {}
            for level in levels:
                frame = prediction.summary_frame(alpha=1 - level / 100)
                bands[level] = (
                    np.asarray(frame["pi_lower"], dtype=np.float64),
                    np.asarray(frame["pi_upper"], dtype=np.float64),
                )
        return mean, bands

    kind = f"additive season of {season}" if seasonal else "no season"
    return Fitted(predict, f"ETS(A,Ad,{'A' if seasonal else 'N'}): damped trend, {kind}")


def _fourier(index: npt.NDArray[np.int64], season: int) -> FloatArray:
    pairs = min(MAX_FOURIER, season // 2)
    columns = []
    for k in range(1, pairs + 1):
        angle = 2 * np.pi * k * index / season
        columns += [np.sin(angle), np.cos(angle)]
        if 2 * k == season:  # the sine of the Nyquist pair is all zeros
            columns.pop(-2)
    return np.column_stack(columns).astype(np.float64)


def fit_arima(
    y: FloatArray, season: int | None, order: tuple[int, int, int] | None = None
) -> Fitted:
    from statsmodels.tsa.arima.model import ARIMA

    n = len(y)
    exog = _fourier(np.arange(n), season) if season else None
    orders = (order,) if order is not None else ARIMA_ORDERS
    best: Any = None
    best_order = orders[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for candidate in orders:
            try:
                result = ARIMA(y, exog=exog, order=candidate, trend="t").fit(
                    method="innovations_mle"
                )
            except Exception:  # noqa: S112 - an order the data does not allow (singular, ...)
                continue
            if best is None or result.aic < best.aic:
                best, best_order = result, candidate
    if best is None:
        raise ValueError("no ARIMA order could be fitted")
    chosen = best

    def predict(h: int, levels: tuple[float, ...]) -> Any:
        future = _fourier(np.arange(n, n + h), season) if season else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prediction = chosen.get_forecast(h, exog=future)
            mean = np.asarray(prediction.predicted_mean, dtype=np.float64)
            bands = {}
            for level in levels:
                bounds = np.asarray(prediction.conf_int(alpha=1 - level / 100), dtype=np.float64)
                bands[level] = (bounds[:, 0], bounds[:, 1])
        return mean, bands

    regressors = (
        f", {exog.shape[1]} Fourier terms of the season {season}" if exog is not None else ""
    )
    return Fitted(predict, f"ARIMA{best_order} with drift{regressors}", best_order)


def fit(name: str, y: FloatArray, season: int | None, **options: Any) -> Fitted:
    if name == "seasonal_naive":
        return fit_naive(y, season)
    if name == "ets":
        return fit_ets(y, season)
    return fit_arima(y, season, **options)


# -- errors and the backtest -------------------------------------------------------------


def mase(actual: FloatArray, predicted: FloatArray, train: FloatArray, m: int) -> float:
    """Mean absolute error scaled by the in-sample MAE of the seasonal naive forecast."""
    m = m if len(train) > m else 1
    scale = float(np.mean(np.abs(train[m:] - train[:-m]))) if len(train) > m else 0.0
    error = float(np.mean(np.abs(actual - predicted)))
    if scale <= 0.0:
        return 0.0 if error <= 0.0 else math.inf
    return error / scale


def smape(actual: FloatArray, predicted: FloatArray) -> float:
    """Symmetric MAPE in percent (0..200); a point where both are 0 counts as 0."""
    denominator = np.abs(actual) + np.abs(predicted)
    ratio = np.divide(
        2 * np.abs(actual - predicted),
        denominator,
        out=np.zeros_like(denominator),
        where=denominator > 0,
    )
    return float(100 * np.mean(ratio))


@dataclass
class Candidate:
    model: str
    mase: float | None = None
    smape: float | None = None
    folds: int = 0
    detail: str = ""
    error: str | None = None
    seconds: float = 0.0

    def as_dict(self, chosen: str) -> dict[str, Any]:
        return {
            "model": self.model,
            "mase": _round(self.mase),
            "smape": _round(self.smape),
            "folds": self.folds,
            "chosen": self.model == chosen,
            "detail": self.detail,
            "error": self.error,
            "seconds": round(self.seconds, 3),
        }


def _round(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else round(x, 6)


def backtest_plan(n: int, horizon: int, season: int | None) -> tuple[int, list[int]]:
    """(fold horizon, training lengths of the folds): origins step back by the fold
    horizon from the end; every training part keeps at least two seasons (or MIN_TRAIN)."""
    h = max(1, min(horizon, MAX_BACKTEST_HORIZON, n // 4))
    minimum = 2 * season + 2 if season else MIN_TRAIN
    origins = [n - h * k for k in range(BACKTEST_FOLDS, 0, -1)]
    return h, [o for o in origins if o >= minimum]


def evaluate(
    name: str, y: FloatArray, season: int | None, horizon: int, options: dict[str, Any]
) -> Candidate:
    started = time.monotonic()
    candidate = Candidate(name)
    h, origins = backtest_plan(len(y), horizon, season)
    scores: list[tuple[float, float]] = []
    try:
        for origin in origins:
            train, test = y[:origin], y[origin : origin + h]
            fitted = fit(name, train, season, **options)
            candidate.detail = fitted.detail
            mean, _ = fitted.predict(len(test), ())
            if not np.isfinite(mean).all():
                raise ValueError("the forecast is not finite")
            scores.append((mase(test, mean, train, season or 1), smape(test, mean)))
    except Exception as exc:  # a candidate that cannot fit this history is reported, not fatal
        candidate.error = f"{type(exc).__name__}: {exc}"[:300]
    if scores and candidate.error is None:
        candidate.mase = float(np.mean([s[0] for s in scores]))
        candidate.smape = float(np.mean([s[1] for s in scores]))
        candidate.folds = len(scores)
    candidate.seconds = time.monotonic() - started
    return candidate


# -- the whole forecast ------------------------------------------------------------------


@dataclass
class Outcome:
    season: Season
    chosen: str
    candidates: list[Candidate]
    mean: FloatArray
    bands: dict[float, tuple[FloatArray, FloatArray]]
    backtest_horizon: int
    notes: list[str]


def run(
    y: FloatArray,
    horizon: int,
    levels: tuple[float, ...],
    bucket_us: int,
    *,
    season: int | None = None,
    detect: bool = True,
    model: str | None = None,
    budget_s: float = TIME_BUDGET_S,
    progress: Callable[[float], None] | None = None,
) -> Outcome:
    """Select, fit and forecast. `season`: given in buckets (0/None: none), `detect`:
    look for one when not given; `model`: only that candidate."""
    notes: list[str] = []
    if len(y) < MIN_POINTS:
        raise BadParameter(
            "from", f"{len(y)} buckets with data; a forecast needs at least {MIN_POINTS}"
        )
    if season is not None and season > 0:
        if len(y) < 2 * season + 2:
            raise BadParameter(
                "season",
                f"a season of {season} buckets needs at least {2 * season + 2} buckets of "
                f"history; there are {len(y)}",
            )
        found = Season(season, False, seasonal_strength(y, season)[0])
    elif detect and season is None:
        found = detect_season(y, bucket_us)
    else:
        found = Season(None, False)
    m = found.buckets
    if m is not None and m > MAX_SEASON:
        raise BadParameter("season", f"at most {MAX_SEASON} buckets; use a larger bucket")
    started = time.monotonic()
    names = (model,) if model else MODELS
    candidates: list[Candidate] = []
    options: dict[str, dict[str, Any]] = {name: {} for name in MODELS}
    if "arima" in names:  # the order is chosen once, by AIC on the whole history
        try:
            chosen_order = fit_arima(y, m).order
            options["arima"] = {"order": chosen_order}
        except ValueError as exc:  # no order fits: the backtest reports it
            notes.append(f"arima: {exc}")
    for done, name in enumerate(names):
        if time.monotonic() - started > budget_s and candidates:
            notes.append(f"{name} skipped: the time budget of {budget_s:g} s was spent")
            candidates.append(Candidate(name, error="skipped (time budget)"))
            continue
        candidates.append(evaluate(name, y, m, horizon, options[name]))
        if progress is not None:
            progress((done + 1) / (len(names) + 1))
    scored = [c for c in candidates if c.mase is not None and math.isfinite(c.mase)]
    if scored:
        best = min(scored, key=lambda c: (c.mase, MODELS.index(c.model)))
    else:
        best = candidates[0]
        notes.append("no candidate could be backtested; the first one is used")
    try:
        fitted = fit(best.model, y, m, **options[best.model])
        mean, bands = fitted.predict(horizon, levels)
        if not np.isfinite(mean).all():
            raise ValueError("the forecast is not finite")
    except Exception as exc:  # the whole history broke the chosen model: fall back
        notes.append(f"{best.model} failed on the whole history ({exc}); seasonal_naive used")
        naive = next((c for c in candidates if c.model == "seasonal_naive"), None)
        if naive is None:
            naive = evaluate("seasonal_naive", y, m, horizon, {})
            candidates.append(naive)
        best = naive
        fitted = fit_naive(y, m)
        mean, bands = fitted.predict(horizon, levels)
    for c in candidates:
        if c.model == best.model:
            c.detail = fitted.detail
    h, _ = backtest_plan(len(y), horizon, m)
    return Outcome(found, best.model, candidates, mean, bands, h, notes)


# -- parameters --------------------------------------------------------------------------


def parse_levels(text: str | None) -> tuple[float, ...]:
    """`80,95` -> (80.0, 95.0): 1 to 5 distinct levels, each in (0, 100)."""
    parts = [p.strip() for p in (text or "80,95").split(",") if p.strip()]
    if not parts or len(parts) > 5:
        raise BadParameter("levels", "give 1 to 5 interval levels in percent, e.g. 80,95")
    out: list[float] = []
    for part in parts:
        try:
            level = float(part)
        except ValueError:
            raise BadParameter("levels", f"{part!r} is not a number; e.g. levels=80,95") from None
        if not 0 < level < 100 or not math.isfinite(level):
            raise BadParameter("levels", f"{part!r} must be between 0 and 100 (exclusive)")
        out.append(level)
    return tuple(sorted(set(out)))


def level_key(level: float) -> str:
    return f"{level:g}"


def duration_text(us: int) -> str:
    for unit, size in (("w", 7 * 86_400 * 10**6), ("d", 86_400 * 10**6), ("h", 3600 * 10**6),
                       ("m", 60 * 10**6), ("s", 10**6)):  # fmt: skip
        if us % size == 0:
            return f"{us // size}{unit}"
    return f"{us / 10**6:g}s"


# -- one series of the store -------------------------------------------------------------

NICE_BUCKETS_US = tuple(
    s * 10**6
    for s in (10, 30, 60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 604800)
)
TARGET_BUCKETS = 500  # the default bucket gives about this many buckets over the range
ASYNC_BUCKETS = 1500  # history buckets above which the work runs as a task
ASYNC_HORIZON = 500  # horizons above which the work runs as a task


def default_bucket_us(span_us: int) -> int:
    """The smallest nice width giving at most TARGET_BUCKETS buckets over the span."""
    for width in NICE_BUCKETS_US:
        if span_us / width <= TARGET_BUCKETS:
            return width
    return NICE_BUCKETS_US[-1]


@dataclass(frozen=True)
class Request:
    """A parsed forecast request (JSON-able through `as_params`, for the task)."""

    series_id: int
    from_us: int
    to_us: int
    bucket_us: int
    tz: str
    horizon: int
    levels: tuple[float, ...]
    season: int | None  # buckets; 0: none; None: detect
    model: str | None

    def as_params(self) -> dict[str, Any]:
        return {
            "series_id": self.series_id,
            "from_us": self.from_us,
            "to_us": self.to_us,
            "bucket_us": self.bucket_us,
            "tz": self.tz,
            "horizon": self.horizon,
            "levels": list(self.levels),
            "season": self.season,
            "model": self.model,
        }

    @classmethod
    def of(cls, params: dict[str, Any]) -> Request:
        return cls(
            int(params["series_id"]),
            int(params["from_us"]),
            int(params["to_us"]),
            int(params["bucket_us"]),
            str(params["tz"]),
            int(params["horizon"]),
            tuple(float(x) for x in params["levels"]),
            None if params["season"] is None else int(params["season"]),
            params["model"],
        )


@dataclass
class Loaded:
    """A request's history, read and prepared (before any model runs)."""

    request: Request
    unit: str | None
    history: History
    raw_points: int

    @property
    def long(self) -> bool:
        """True when the work should run as a task (ASYNC_BUCKETS, ASYNC_HORIZON)."""
        return len(self.history.values) > ASYNC_BUCKETS or self.request.horizon > ASYNC_HORIZON


def load(
    cur: Any,
    tenant_id: int,
    request: Request,
    max_points: int,
    *,
    marks: Any = None,
    cold: Any = None,
) -> Loaded:
    """Read the bucket means of the series (NotFound for another tenant's), refuse more
    than `max_points` raw points, prepare the history."""
    from ..query.aggregate import AggregateQuery, aggregate
    from ..query.buckets import Buckets
    from ..query.params import TimeRange
    from ..query.series import get_series

    info = get_series(cur, tenant_id, request.series_id)
    buckets = Buckets(request.bucket_us, request.tz)
    span = TimeRange(request.from_us, request.to_us)
    query = AggregateQuery(span, buckets, ("mean",), "null", duration_text(request.bucket_us))
    body = aggregate(
        cur, tenant_id, [request.series_id], query, scoped=True, marks=marks, cold=cold
    )[0]
    raw_points = int(sum(body["count"]))
    if raw_points > max_points:
        raise BadParameter(
            "from",
            f"the range holds {raw_points} points; a forecast reads at most {max_points} "
            "(analysis_max_points): shorten the range",
        )
    starts = buckets.starts(buckets.keys(span.from_us, span.to_us))
    raw = np.array([np.nan if v is None else v for v in body["mean"]], dtype=np.float64)
    history = prepare(starts[: len(raw)], raw)
    if len(history.values) < MIN_POINTS:
        raise BadParameter(
            "from",
            f"{int(np.isfinite(raw).sum())} buckets of {duration_text(request.bucket_us)} hold "
            f"data in the range; a forecast needs at least {MIN_POINTS}: widen the range or "
            "use a smaller bucket",
        )
    season = request.season
    if season and len(history.values) < 2 * season + 2:
        raise BadParameter(
            "season",
            f"a season of {season} buckets needs at least {2 * season + 2} buckets of "
            f"history; the range gives {len(history.values)}",
        )
    return Loaded(request, info.unit, history, raw_points)


def answer(loaded: Loaded, progress: Callable[[float], None] | None = None) -> dict[str, Any]:
    """The forecast body of a loaded request."""
    from ..query.buckets import Buckets
    from ..query.columns import series_id, times
    from ..query.columns import values as json_values

    request, history = loaded.request, loaded.history
    y = history.values
    season = request.season
    outcome = run(
        y,
        request.horizon,
        request.levels,
        request.bucket_us,
        season=season if season else None,
        detect=season is None,
        model=request.model,
        progress=progress,
    )
    buckets = Buckets(request.bucket_us, request.tz)
    last = int(history.starts[-1])
    width = request.bucket_us
    ahead = buckets.starts(buckets.keys(last, last + (request.horizon + 2) * width))
    future = ahead[ahead > last][: request.horizon]
    chosen = next(c for c in outcome.candidates if c.model == outcome.chosen)
    notes = [*history.notes, *outcome.notes]
    notes.append(
        f"backtest: {chosen.folds} rolling-origin fold(s) of {outcome.backtest_horizon} "
        "bucket(s); the lowest mean MASE wins"
    )
    return {
        "series_id": series_id(request.series_id),
        "unit": loaded.unit,
        "bucket": duration_text(width),
        "tz": request.tz,
        "horizon": request.horizon,
        "levels": [level_key(v) for v in request.levels],
        "season": outcome.season.as_dict(width),
        "model": outcome.chosen,
        "mase": _round(chosen.mase),
        "smape": _round(chosen.smape),
        "candidates": [c.as_dict(outcome.chosen) for c in outcome.candidates],
        "t": times(future, request.tz),
        "forecast": json_values(outcome.mean),
        "intervals": {
            level_key(level): {"lo": json_values(lo), "hi": json_values(hi)}
            for level, (lo, hi) in sorted(outcome.bands.items())
        },
        "history": {
            "from": times(history.starts[:1], request.tz)[0],
            "to": times(np.array([last + width], dtype=np.int64), request.tz)[0],
            "points": len(y),
            "raw_points": loaded.raw_points,
            "interpolated": history.filled,
        },
        "notes": notes,
    }
