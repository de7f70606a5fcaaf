"""The anomaly scoring pipeline: window features, training a detector, scoring windows
(docs/anomaly-scoring.md).

    features(store, tenant, series_ids, from_us, to_us, window_us=...)   # per window stats
    train(store, model_dir, tenant, series_ids, from_us, to_us, detector="ensemble")
    score(store, model_dir, tenant, series_ids, from_us, to_us)           # -> counts

Points are read like the read API reads them (`points_source`: the hot table and the
cold tier's files of the range), at most `max_points` per series (the setting
`analysis_max_points`; more is refused with a 400 naming the limit).

Training feeds the range to the detector and saves its `state()` as JSON, atomically,
under `<model_dir>/<tenant id>/<series id>/<detector>.json`, and upserts the `models`
row of (tenant, series, detector). Scoring restores the detector from that artefact —
or from the state a previous scoring stopped at, when the range goes on exactly where
that one ended (`<detector>.live.json`) — scores every point, and gives each closed
window [k·w, (k+1)·w) the largest point score inside it, explained by the detector's
`explain()` at that very point. The rows are upserted into `anomaly_scores` on (tenant,
series, window_end); a window whose score reaches the alarm threshold also gets an
`anomaly` annotation (a band over the window), which the dashboard's charts draw.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import structlog

from ..errors import BadParameter, NotFound
from ..ingest.timestamps import format_us, us_to_datetime
from ..query.series import SeriesInfo, series_by_ids
from ..storage import anomaly_scores, models
from ..storage.annotations import InvalidAnnotation, add_annotation
from ..storage.embedded import EmbeddedStore
from ..storage.sources import points_source
from .detectors import CATALOGUE, DEFAULT, Detector, make
from .features import window_features

log = structlog.get_logger(__name__)

DEFAULT_WINDOW_US = 300_000_000  # 300 s
ALARM_SCORE = 0.9  # detectors without their own `threshold`: scores are in [0, 1]
FEATURES = ("count", "mean", "std", "median", "mad", "min", "max", "range")

Progress = Callable[[int, int], None]  # (done, total) series


def _no_progress(done: int, total: int) -> None:
    pass


# -- reading points ----------------------------------------------------------------------


_SQL = """
SELECT epoch_us(ts) AS t, value FROM {source}
WHERE series_id = ? AND ts >= make_timestamp(?::BIGINT) AND ts < make_timestamp(?::BIGINT)
ORDER BY ts LIMIT ?
"""


def read_points(
    store: EmbeddedStore,
    tenant_id: int,
    series_id: int,
    from_us: int,
    to_us: int,
    max_points: int,
) -> tuple[np.ndarray[Any, np.dtype[np.int64]], np.ndarray[Any, np.dtype[np.float64]]]:
    """Times (µs) and values of one series in [from, to), oldest first. More than
    `max_points` is a BadParameter naming the limit."""
    with store.reader() as cur:
        source = points_source(cur, tenant_id, from_us, to_us)
        data = cur.execute(
            _SQL.format(source=source), [series_id, from_us, to_us, max_points + 1]
        ).fetchnumpy()
    t = np.asarray(data["t"], dtype=np.int64)
    v = np.asarray(data["value"], dtype=np.float64)
    if t.size > max_points:
        raise BadParameter(
            "from",
            f"series {series_id} has more than {max_points} points in the range "
            "(analysis_max_points); narrow the range",
        )
    return t, v


def resolve_series(
    store: EmbeddedStore, tenant_id: int, series_ids: Sequence[int]
) -> list[SeriesInfo]:
    """The tenant's series of these ids (NotFound for any other)."""
    with store.reader() as cur:
        return series_by_ids(cur, tenant_id, list(series_ids))


def check_window(window_us: int) -> int:
    if window_us < 1_000_000:
        raise BadParameter("window", "at least 1s")
    return int(window_us)


# -- features ------------------------------------------------------------------------------


def features(
    store: EmbeddedStore,
    tenant_id: int,
    series_ids: Sequence[int],
    from_us: int,
    to_us: int,
    *,
    window_us: int = DEFAULT_WINDOW_US,
    max_points: int = 1_000_000,
    progress: Progress = _no_progress,
) -> dict[str, Any]:
    """Per series, one row per fixed window that has points: start, end and the window
    features (count, mean, std, median, MAD, min, max, range, and what features.py adds).
    No points: no windows (an empty list), not an error."""
    window_us = check_window(window_us)
    infos = resolve_series(store, tenant_id, series_ids)
    out: list[dict[str, Any]] = []
    progress(0, len(infos))
    for done, info in enumerate(infos, start=1):
        t, v = read_points(store, tenant_id, info.id, from_us, to_us, max_points)
        cols = window_features(t, v, window_us)
        names = [c for c in cols if c not in ("window_start", "window_end")]
        rows = []
        for k in range(int(cols["window_start"].shape[0])):
            row: dict[str, Any] = {
                "window_start": format_us(int(cols["window_start"][k])),
                "window_end": format_us(int(cols["window_end"][k])),
            }
            for name in names:
                value = cols[name][k].item()
                row[name] = value if not isinstance(value, float) or np.isfinite(value) else None
            rows.append(row)
        out.append({"series_id": str(info.id), "label": info.label, "windows": rows})
        progress(done, len(infos))
    return {"window_us": window_us, "series": out}


# -- artefacts -------------------------------------------------------------------------------


def artefact_path(model_dir: Path, tenant_id: int, series_id: int, detector: str) -> Path:
    return model_dir / str(tenant_id) / str(series_id) / f"{detector}.json"


def _live_path(path: Path) -> Path:
    return path.with_name(path.stem + ".live.json")


def write_json_atomic(path: Path, body: Any) -> None:
    """Write, fsync, then rename over `path`: a reader sees the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def load_state(model: models.ModelRecord) -> dict[str, Any]:
    try:
        state: dict[str, Any] = orjson.loads(Path(model.path).read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise NotFound(
            f"the model of series {model.series_id} ({model.detector}) cannot be read at "
            f"{model.path} ({exc}); train it again"
        ) from None
    return state


def load_live(model: models.ModelRecord) -> tuple[int, dict[str, Any]] | None:
    """(until_us, state) that the last scoring of this model stopped at, if any."""
    try:
        body = orjson.loads(_live_path(Path(model.path)).read_bytes())
        return int(body["until_us"]), dict(body["state"])
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def save_live(model: models.ModelRecord, until_us: int, state: dict[str, Any]) -> None:
    write_json_atomic(_live_path(Path(model.path)), {"until_us": until_us, "state": state})


def restore(model: models.ModelRecord, state: dict[str, Any]) -> Detector:
    return make(model.detector, state=state, **model.detector_params)


def alarm_threshold(detector: Detector) -> float:
    found = getattr(detector, "threshold", None)
    return float(found) if isinstance(found, int | float) else ALARM_SCORE


# -- training --------------------------------------------------------------------------------


def check_detector(name: str, params: dict[str, Any]) -> None:
    """400 naming `detector` for an unknown name or parameter."""
    if name not in CATALOGUE:
        known = ", ".join(sorted(CATALOGUE))
        raise BadParameter("detector", f"unknown detector {name!r}; known: {known}")
    try:
        make(name, **params)
    except (ValueError, TypeError) as exc:
        raise BadParameter("params", str(exc)) from None


def train(
    store: EmbeddedStore,
    model_dir: Path,
    tenant_id: int,
    series_ids: Sequence[int],
    from_us: int,
    to_us: int,
    *,
    detector: str = DEFAULT,
    params: dict[str, Any] | None = None,
    window_us: int = DEFAULT_WINDOW_US,
    max_points: int = 1_000_000,
    progress: Progress = _no_progress,
) -> dict[str, Any]:
    """Fit `detector` on each series' points in [from, to), save the artefact and upsert
    the model record (training again replaces it). A series without points in the range
    is refused (nothing to learn from)."""
    window_us = check_window(window_us)
    det_params = dict(params or {})
    check_detector(detector, det_params)
    infos = resolve_series(store, tenant_id, series_ids)
    trained: list[dict[str, Any]] = []
    progress(0, len(infos))
    for done, info in enumerate(infos, start=1):
        started = time.perf_counter()
        t, v = read_points(store, tenant_id, info.id, from_us, to_us, max_points)
        if t.size == 0:
            raise NotFound(
                f"series {info.id} ({info.label}) has no points in the training range; "
                "choose a range with data"
            )
        det = make(detector, **det_params)
        scores = det.score(t, v)
        threshold = alarm_threshold(det)
        path = artefact_path(model_dir, tenant_id, info.id, detector)
        write_json_atomic(path, det.state())
        _live_path(path).unlink(missing_ok=True)  # a new model starts from its own state
        metrics = {
            "points": int(t.size),
            "first": format_us(int(t[0])),
            "last": format_us(int(t[-1])),
            "mean_score": float(np.mean(scores)) if scores.size else 0.0,
            "max_score": float(np.max(scores)) if scores.size else 0.0,
            "alarm_threshold": threshold,
            "alarm_fraction": float(np.mean(scores >= threshold)) if scores.size else 0.0,
            "seconds": round(time.perf_counter() - started, 4),
        }
        record = models.upsert_model(
            store,
            tenant_id,
            series_id=info.id,
            detector=detector,
            params={"window_us": window_us, "detector": det_params},
            train_from_us=from_us,
            train_to_us=to_us,
            path=str(path),
            metrics=metrics,
        )
        trained.append(record.as_dict() | {"label": info.label})
        progress(done, len(infos))
    return {"models": trained}


# -- scoring ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scored:
    windows: list[anomaly_scores.WindowScore]
    points: int
    detector: Detector


def score_windows(
    detector_name: str,
    params: dict[str, Any],
    state: dict[str, Any] | None,
    t: np.ndarray[Any, np.dtype[np.int64]],
    v: np.ndarray[Any, np.dtype[np.float64]],
    window_us: int,
) -> Scored:
    """Score points (t, v) from `state` and give each window the largest point score in
    it, with `explain()` taken at that point (a second pass, cut after each window's
    top point: scores of a prefix are the scores of the same rows of the whole)."""
    first = make(detector_name, state=state, **params)
    scores = first.score(t, v)
    if t.size == 0:
        return Scored([], 0, first)
    win = np.floor_divide(t, window_us)
    starts = np.flatnonzero(np.concatenate(([True], win[1:] != win[:-1])))
    ends = np.append(starts[1:], t.size)
    tops = [int(lo + np.argmax(scores[lo:hi])) for lo, hi in zip(starts, ends, strict=True)]
    again = make(detector_name, state=state, **params)
    out: list[anomaly_scores.WindowScore] = []
    done = 0
    for k, top in enumerate(tops):
        again.score(t[done : top + 1], v[done : top + 1])
        done = top + 1
        why = dict(again.explain())
        why |= {
            "point": format_us(int(t[top])),
            "value": float(v[top]),
            "points": int(ends[k] - starts[k]),
        }
        start = int(win[starts[k]]) * window_us
        out.append(anomaly_scores.WindowScore(start, start + window_us, float(scores[top]), why))
    if done < t.size:
        again.score(t[done:], v[done:])
    return Scored(out, int(t.size), again)


def annotate(
    store: EmbeddedStore,
    tenant_id: int,
    series_id: int,
    detector: str,
    window: anomaly_scores.WindowScore,
) -> bool:
    """An `anomaly` band over the window, once per (series, window, detector)."""
    source = f"detector:{detector}"
    with store.reader() as cur:
        found = cur.execute(
            "SELECT 1 FROM annotations WHERE tenant_id = ? AND series_id = ? AND kind = 'anomaly' "
            "AND source = ? AND start_ts = ?",
            [tenant_id, series_id, source, us_to_datetime(window.start_us).replace(tzinfo=None)],
        ).fetchone()
    if found is not None:
        return False
    rule = str(window.explanation.get("rule", detector))
    if "member" in window.explanation:  # an ensemble names the member that drove it
        rule = f"{rule}: {window.explanation['member']}"
    meta = {"score": round(window.score, 4), "explanation": window.explanation}
    try:
        add_annotation(
            store,
            tenant_id,
            kind="anomaly",
            title=f"anomaly score {window.score:.2f} ({rule})",
            start_us=window.start_us,
            end_us=window.end_us,
            series_id=series_id,
            severity="critical" if window.score >= 0.99 else "warning",
            source=source,
            meta=meta,
        )
    except InvalidAnnotation as exc:  # e.g. the series was deleted meanwhile
        log.warning("anomaly_annotation_refused", series_id=series_id, error=exc.detail)
        return False
    return True


def model_for(
    store: EmbeddedStore, tenant_id: int, series_id: int, detector: str | None
) -> models.ModelRecord | None:
    with store.reader() as cur:
        if detector is not None:
            return models.get_model(cur, tenant_id, series_id, detector)
        found = models.list_models(cur, tenant_id, [series_id])
    return found[0] if found else None


def score_model(
    store: EmbeddedStore,
    model: models.ModelRecord,
    from_us: int,
    to_us: int,
    *,
    max_points: int,
    annotate_alarms: bool = True,
) -> dict[str, int]:
    """Score the closed windows of one model's series in [from, to) (the range is
    widened to whole windows at its start and cut to closed ones at its end)."""
    w = model.window_us
    lo = (from_us // w) * w
    hi = (to_us // w) * w
    if hi <= lo:
        return {"windows": 0, "points": 0, "alarms": 0}
    live = load_live(model)
    continuing = live is not None and live[0] == lo
    state = live[1] if live is not None and continuing else load_state(model)
    t, v = read_points(store, model.tenant_id, model.series_id, lo, hi, max_points)
    scored = score_windows(model.detector, model.detector_params, state, t, v, w)
    with store.transaction() as con:
        anomaly_scores.upsert_scores(
            con, model.tenant_id, model.series_id, model.detector, scored.windows
        )
    if live is None or hi > live[0]:
        save_live(model, hi, scored.detector.state())
    alarms = 0
    if annotate_alarms:
        threshold = alarm_threshold(scored.detector)
        for window in scored.windows:
            if window.score >= threshold and annotate(
                store, model.tenant_id, model.series_id, model.detector, window
            ):
                alarms += 1
    return {"windows": len(scored.windows), "points": scored.points, "alarms": alarms}


def score(
    store: EmbeddedStore,
    tenant_id: int,
    series_ids: Sequence[int],
    from_us: int,
    to_us: int,
    *,
    detector: str | None = None,
    max_points: int = 1_000_000,
    progress: Progress = _no_progress,
) -> dict[str, Any]:
    """Score each series with its trained model (of `detector`, or its most recently
    trained one) and upsert the windows' scores. Series without a model are listed
    under `untrained`; when none has one, NotFound says to train first."""
    if detector is not None and detector not in CATALOGUE:
        known = ", ".join(sorted(CATALOGUE))
        raise BadParameter("detector", f"unknown detector {detector!r}; known: {known}")
    infos = resolve_series(store, tenant_id, series_ids)
    found = [(info, model_for(store, tenant_id, info.id, detector)) for info in infos]
    if not any(model for _, model in found):
        which = f" with detector {detector!r}" if detector else ""
        raise NotFound(
            f"no trained model{which} for series {', '.join(str(i.id) for i in infos)}; "
            "run train first"
        )
    totals = {"series": 0, "windows": 0, "points": 0, "alarms": 0}
    untrained: list[str] = []
    progress(0, len(found))
    for done, (info, model) in enumerate(found, start=1):
        if model is None:
            untrained.append(str(info.id))
        else:
            counts = score_model(store, model, from_us, to_us, max_points=max_points)
            totals["series"] += 1
            for key, n in counts.items():
                totals[key] += n
        progress(done, len(found))
    return totals | {"untrained": untrained}
