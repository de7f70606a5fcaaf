"""Real-time anomaly scoring: new points of series with a trained model are scored as
they are committed, so a fresh anomaly shows within seconds (docs/anomaly-scoring.md).

The single writer hands every group commit to its listener (`CommitFanout`: the live
feed and this scorer). `RealtimeScorer.committed` runs on the writer thread and only
appends the batches of tenants that have models to a queue bounded in points (beyond
`queue_points` a batch is dropped and counted). A worker thread of its own does the
rest, once per cycle (`cycle_s`, 1 s): it takes everything queued, gathers the new
points of each series with a model, and feeds them to that series' streaming detector
(kept in memory, restored from where the last scoring stopped, else from the trained
artefact) in one call per series and window. It keeps each window's largest score and
its explanation (at that very point once it reaches the alarm threshold), upserts the
windows that changed — the open one too, so a spike is in `anomaly_scores` about a
cycle after its commit — in one statement, and adds an `anomaly` annotation the first
time a window reaches the alarm threshold.

It must not slow ingest: besides being off the writer thread, the worker keeps to a
CPU budget (`cpu_budget`, 10 % of one core): after a cycle that took `busy` seconds it
waits at least `busy * (1 / budget - 1)`. Under bulk ingest faster than that budget
can score, the queue fills and batches are dropped (`stats_realtime_dropped_points`);
the windows they fall into keep the scores of the points that were scored.

Points older than what the detector has seen (late writes) are not fed to it. The
model list is read again every `refresh_s`: a new or retrained model takes effect
within that time.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from ..ingest.timestamps import format_us
from ..model import Batch
from ..storage import anomaly_scores, models
from ..storage.anomaly_scores import WindowScore
from ..storage.commit import KnownSeries
from ..storage.embedded import EmbeddedStore
from . import pipeline
from .detectors import Detector

log = structlog.get_logger(__name__)

IntArray = np.ndarray[Any, np.dtype[np.int64]]
FloatArray = np.ndarray[Any, np.dtype[np.float64]]


class Listener(Protocol):
    @property
    def active(self) -> bool: ...

    def committed(self, batches: Sequence[Batch], known: KnownSeries) -> None: ...


class CommitFanout:
    """The writer's one listener, told to several (each only while it is active)."""

    def __init__(self, *listeners: Listener) -> None:
        self._listeners = listeners

    @property
    def active(self) -> bool:
        return any(listener.active for listener in self._listeners)

    def committed(self, batches: Sequence[Batch], known: KnownSeries) -> None:
        for listener in self._listeners:
            if listener.active:
                try:
                    listener.committed(batches, known)
                except Exception:  # one listener's bug must not starve the others
                    log.exception("commit_listener_failed")


@dataclass(slots=True)
class _Stream:
    model: models.ModelRecord
    detector: Detector
    threshold: float
    seen_us: int  # newest point fed to the detector (later points only)
    window_start: int | None = None
    best: float = -1.0
    why: dict[str, Any] = field(default_factory=dict)
    points: int = 0
    dirty: bool = False
    written: bool = False  # the open window has a row already (usage counted)
    written_best: float = -1.0  # the open window's score in its row
    annotated: bool = False


class ScorerMetrics:
    def __init__(self, registry: CollectorRegistry | None) -> None:
        r = registry if registry is not None else CollectorRegistry()
        self.points = Counter(
            "stats_realtime_scored_points",
            "Points scored by real-time anomaly scoring.",
            registry=r,
        )
        self.dropped = Counter(
            "stats_realtime_dropped_points",
            "Points of series with a model that real-time scoring dropped (its queue was "
            "full: it keeps to its CPU budget).",
            registry=r,
        )
        self.windows = Counter(
            "stats_realtime_window_rows",
            "Window score rows written by real-time scoring (an open window again each cycle "
            "it changed).",
            registry=r,
        )
        self.busy = Counter(
            "stats_realtime_busy_seconds",
            "Time the real-time scoring worker spent scoring and writing.",
            registry=r,
        )
        self.queued = Gauge(
            "stats_realtime_queued_points", "Points waiting for real-time scoring.", registry=r
        )


class RealtimeScorer:
    def __init__(
        self,
        store: EmbeddedStore,
        registry: CollectorRegistry | None = None,
        *,
        queue_points: int = 500_000,
        cycle_s: float = 1.0,
        refresh_s: float = 2.0,
        cpu_budget: float = 0.1,
    ) -> None:
        self._store = store
        self._queue: collections.deque[list[Batch] | None] = collections.deque()
        self._queued = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._queue_points = queue_points
        self._cycle_s = cycle_s
        self._refresh_s = refresh_s
        self._budget = cpu_budget
        self._models: dict[tuple[int, int], models.ModelRecord] = {}
        self._streams: dict[tuple[int, int], _Stream] = {}
        self._thread: threading.Thread | None = None
        # read by the writer thread without a lock: replaced whole, never changed in place
        self.tenants: frozenset[int] = frozenset()
        self.metrics = ScorerMetrics(registry)
        self._idle = threading.Event()
        self._stopping = False
        # closed windows waiting for the flush: (tenant, series, stream, window, whether
        # this is the window's first row)
        self._pending: list[tuple[int, int, _Stream, WindowScore, bool]] = []

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        self._refresh()
        self._thread = threading.Thread(target=self._run, name="stats-scorer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Score what is queued, write it, save where each detector stopped."""
        thread = self._thread
        if thread is None:
            return
        with self._lock:
            self._queue.append(None)
        self._stopping = True
        self._wake.set()
        thread.join(timeout)
        self._thread = None
        self.tenants = frozenset()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """True once everything queued so far is scored and written (tests); wakes the
        worker instead of waiting for its next cycle."""
        deadline = time.monotonic() + timeout
        self._idle.clear()
        self._wake.set()
        while time.monotonic() < deadline:
            if self._idle.wait(0.05):
                with self._lock:
                    if not self._queue:
                        return True
                self._idle.clear()
                self._wake.set()
        return False

    # -- the writer side -----------------------------------------------------------------

    @property
    def active(self) -> bool:
        return bool(self.tenants)

    def committed(self, batches: Sequence[Batch], known: KnownSeries) -> None:
        tenants = self.tenants
        wanted = [b for b in batches if b.tenant_id in tenants and b.numeric]
        if not wanted:
            return
        points = sum(b.numeric for b in wanted)
        with self._lock:
            if self._queued + points > self._queue_points:
                self.metrics.dropped.inc(points)
                return
            self._queue.append(wanted)
            self._queued += points

    # -- the worker ----------------------------------------------------------------------

    def _run(self) -> None:
        next_refresh = time.monotonic() + self._refresh_s
        pause = self._cycle_s
        while True:
            self._wake.wait(pause)
            self._wake.clear()
            started = time.monotonic()
            with self._lock:
                taken = list(self._queue)
                self._queue.clear()
                self._queued = 0
            stop = any(item is None for item in taken)
            try:
                self._score([b for item in taken if item is not None for b in item])
            except Exception:
                log.exception("realtime_scoring_failed")
            self._flush_safely()
            if started >= next_refresh and not stop:
                try:
                    self._refresh()
                except Exception:
                    log.exception("realtime_refresh_failed")
                next_refresh = started + self._refresh_s
            busy = time.monotonic() - started
            self.metrics.busy.inc(busy)
            with self._lock:
                self.metrics.queued.set(self._queued)
            self._idle.set()
            if stop or self._stopping:
                break
            # keep to the budget: a cycle that took `busy` is followed by a rest
            pause = max(self._cycle_s - busy, busy * (1 / self._budget - 1))
        self._save_all()

    def _refresh(self) -> None:
        with self._store.reader() as cur:
            latest = models.latest_per_series(models.list_models(cur))
        for key, stream in list(self._streams.items()):
            model = latest.get(key)
            if (
                model is None
                or model.id != stream.model.id
                or (model.updated_us != stream.model.updated_us)
            ):
                self._streams.pop(key)  # a retrained or removed model: load it afresh
        self._models = latest
        self.tenants = frozenset(tenant for tenant, _ in latest)

    def _stream(self, tenant_id: int, series_id: int) -> _Stream | None:
        key = (tenant_id, series_id)
        stream = self._streams.get(key)
        if stream is not None:
            return stream
        model = self._models.get(key)
        if model is None:
            return None
        live = pipeline.load_live(model)
        if live is not None:
            seen, state = live[0] - 1, live[1]
        else:
            seen, state = model.train_to_us - 1, pipeline.load_state(model)
        detector = pipeline.restore(model, state)
        stream = _Stream(model, detector, pipeline.alarm_threshold(detector), seen)
        self._streams[key] = stream
        return stream

    def _score(self, batches: list[Batch]) -> None:
        """Gather the new points of each series with a model, then score them."""
        gathered: dict[tuple[int, int], list[tuple[IntArray, FloatArray]]] = {}
        for batch in batches:
            sid, ts, value = batch.series_id, batch.ts, batch.value
            if not batch.points_sorted:
                order = np.lexsort((ts, sid))
                sid, ts, value = sid[order], ts[order], value[order]
            if sid.size == 0:
                continue
            starts = np.flatnonzero(np.concatenate(([True], sid[1:] != sid[:-1])))
            ends = np.append(starts[1:], sid.size)
            for series_id, lo, hi in zip(
                sid[starts].tolist(), starts.tolist(), ends.tolist(), strict=True
            ):
                key = (batch.tenant_id, series_id)
                if key in self._models:
                    gathered.setdefault(key, []).append((ts[lo:hi], value[lo:hi]))
        for (tenant, series_id), parts in gathered.items():
            stream = self._stream(tenant, series_id)
            if stream is None:
                continue
            t = np.concatenate([p[0] for p in parts])
            v = np.concatenate([p[1] for p in parts])
            if len(parts) > 1:
                order = np.argsort(t, kind="stable")
                t, v = t[order], v[order]
            keep = t > stream.seen_us  # late points: the detector has gone past them
            t, v = t[keep], v[keep]
            if t.size > 1:
                first = np.concatenate(([True], t[1:] != t[:-1]))  # one point per time
                if not first.all():
                    t, v = t[first], v[first]
            if t.size:
                self._feed(tenant, series_id, stream, t, v)
                self.metrics.points.inc(int(t.size))

    def _feed(
        self, tenant: int, series_id: int, stream: _Stream, t: IntArray, v: FloatArray
    ) -> None:
        """Score points (new, in time order) window by window."""
        w = stream.model.window_us
        win = np.floor_divide(t, w)
        cuts = np.flatnonzero(win[1:] != win[:-1]) + 1
        for lo, hi in zip(
            np.concatenate(([0], cuts)).tolist(), np.append(cuts, t.size).tolist(), strict=True
        ):
            start = int(win[lo]) * w
            if stream.window_start is not None and start != stream.window_start:
                self._close(tenant, series_id, stream)
            if stream.window_start is None:
                stream.window_start = start
            self._segment(stream, t[lo:hi], v[lo:hi])

    def _segment(self, stream: _Stream, t: IntArray, v: FloatArray) -> None:
        """Points of one window: the largest score, explained. A new best that reaches the
        alarm threshold is explained at that very point (scored again up to it from a
        snapshot when it is not the last one); a lower one by `explain()` at the last
        point, which `explained_at` then names (scoring twice costs twice)."""
        det = stream.detector
        snapshot = det.state() if t.size > 1 and stream.best < stream.threshold else None
        scores = det.score(t, v)
        top = int(np.argmax(scores))
        best = float(scores[top])
        if best > stream.best:
            last = t.size - 1
            if snapshot is not None and top != last and best >= stream.threshold:
                det = pipeline.restore(stream.model, snapshot)
                det.score(t[: top + 1], v[: top + 1])
                why = dict(det.explain())
                det.score(t[top + 1 :], v[top + 1 :])
                stream.detector = det
            else:
                why = dict(det.explain())
                if top != last:
                    why["explained_at"] = format_us(int(t[last]))
            stream.best = best
            stream.why = why | {"point": format_us(int(t[top])), "value": float(v[top])}
        stream.seen_us = int(t[-1])
        stream.points += int(t.size)
        stream.dirty = True

    def _window(self, stream: _Stream) -> WindowScore:
        assert stream.window_start is not None
        w = stream.model.window_us
        why = stream.why | {"points": stream.points, "realtime": True}
        return WindowScore(stream.window_start, stream.window_start + w, max(stream.best, 0.0), why)

    def _close(self, tenant: int, series_id: int, stream: _Stream) -> None:
        """The window ends: its final row goes with the next flush."""
        if stream.dirty:
            window = self._window(stream)
            self._pending.append((tenant, series_id, stream, window, not stream.written))
        stream.window_start = None
        stream.best = -1.0
        stream.why = {}
        stream.points = 0
        stream.dirty = False
        stream.written = False
        stream.written_best = -1.0
        stream.annotated = False

    def _flush_safely(self) -> None:
        try:
            self._flush()
        except Exception:
            log.exception("realtime_flush_failed")
            self._pending = []

    def _flush(self) -> None:
        closed = self._pending
        self._pending = []
        usage: dict[int, int] = {}
        for tenant, _sid, _stream, _w, first in closed:
            if first:
                usage[tenant] = usage.get(tenant, 0) + 1
        open_rows: list[tuple[int, int, _Stream, WindowScore]] = []
        for (tenant, series_id), stream in self._streams.items():
            # an open window's row is written when it opens and when its score rises (a
            # fresh anomaly shows at once); its final row (point count) when it closes
            rises = not stream.written or stream.best > stream.written_best
            if stream.dirty and stream.window_start is not None and rises:
                open_rows.append((tenant, series_id, stream, self._window(stream)))
                if not stream.written:
                    usage[tenant] = usage.get(tenant, 0) + 1
        everything = [(t, s, st, w) for t, s, st, w, _ in closed] + open_rows
        if not everything:
            return
        with self._store.transaction() as con:
            anomaly_scores.upsert_many(
                con, [(t, s, st.model.detector, w) for t, s, st, w in everything], usage
            )
        self.metrics.windows.inc(len(everything))
        for _t, _s, stream, _w in open_rows:
            stream.written = True
            stream.written_best = stream.best
            stream.dirty = False
        for tenant, series_id, stream, window in everything:
            is_open = stream.window_start == window.start_us
            if window.score >= stream.threshold and not (is_open and stream.annotated):
                pipeline.annotate(self._store, tenant, series_id, stream.model.detector, window)
                if is_open:
                    stream.annotated = True

    def _save_all(self) -> None:
        """Where each detector stopped, for the next start and the scheduled job."""
        self._flush_safely()
        for stream in self._streams.values():
            try:
                pipeline.save_live(stream.model, stream.seen_us + 1, stream.detector.state())
            except Exception:
                log.exception("realtime_save_failed", series_id=stream.model.series_id)
