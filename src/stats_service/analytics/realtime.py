"""Real-time anomaly scoring: new points of series with a trained model are scored as
they are committed, so a fresh anomaly shows within seconds (docs/anomaly-scoring.md).

The single writer hands every group commit to its listener (`CommitFanout`: the live
feed and this scorer). `RealtimeScorer.committed` runs on the writer thread and only
puts the batches of tenants that have models into a bounded queue (a full queue drops
them and counts it: the scheduled job scores those windows later). A worker thread of
its own does the rest: for each series with a model it keeps the streaming detector in
memory (restored from where the last scoring stopped, else from the trained artefact),
feeds it the new points with `update()` and keeps the window's largest score and its
explanation. Every `flush_s` it upserts the windows that changed — the open one too, so
a spike is in `anomaly_scores` about a second after its commit — in one statement, and
adds an `anomaly` annotation the first time a window reaches the alarm threshold.

Points older than what the detector has seen (late writes) are not fed to it. The
model list is read again every `refresh_s`: a new or retrained model takes effect
within that time.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import structlog

from ..ingest.timestamps import format_us
from ..model import Batch
from ..storage import anomaly_scores, models
from ..storage.anomaly_scores import WindowScore
from ..storage.commit import KnownSeries
from ..storage.embedded import EmbeddedStore
from . import pipeline
from .detectors import Detector

log = structlog.get_logger(__name__)


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
    annotated: bool = False


class RealtimeScorer:
    def __init__(
        self,
        store: EmbeddedStore,
        *,
        enabled: bool = True,
        queue_max: int = 10_000,
        flush_s: float = 0.5,
        refresh_s: float = 2.0,
    ) -> None:
        self._store = store
        self.enabled = enabled
        self._queue: queue.Queue[list[Batch] | None] = queue.Queue(queue_max)
        self._flush_s = flush_s
        self._refresh_s = refresh_s
        self._models: dict[tuple[int, int], models.ModelRecord] = {}
        self._streams: dict[tuple[int, int], _Stream] = {}
        self._thread: threading.Thread | None = None
        # read by the writer thread without a lock: replaced whole, never changed in place
        self.tenants: frozenset[int] = frozenset()
        self.dropped_batches = 0
        self.points_scored = 0
        self.windows_written = 0
        self._idle = threading.Event()
        # closed windows waiting for the next flush: (tenant, series, stream, window,
        # whether this is the window's first row)
        self._pending: list[tuple[int, int, _Stream, WindowScore, bool]] = []

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        if not self.enabled:
            return
        self._refresh()
        self._thread = threading.Thread(target=self._run, name="stats-scorer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Score what is queued, write it, save where each detector stopped."""
        thread = self._thread
        if thread is None:
            return
        self._queue.put(None)
        thread.join(timeout)
        self._thread = None
        self.tenants = frozenset()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """True once everything queued so far is scored and written (tests)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.empty() and self._idle.is_set():
                return True
            time.sleep(0.01)
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
        try:
            self._queue.put_nowait(wanted)
        except queue.Full:
            self.dropped_batches += len(wanted)

    # -- the worker ----------------------------------------------------------------------

    def _run(self) -> None:
        next_flush = time.monotonic() + self._flush_s
        next_refresh = time.monotonic() + self._refresh_s
        running = True
        while running:
            timeout = max(0.0, min(next_flush, next_refresh) - time.monotonic())
            try:
                item = self._queue.get(timeout=timeout)
                self._idle.clear()
            except queue.Empty:
                item = []
            if item is None:
                running = False
            else:
                try:
                    for batch in item:
                        self._feed(batch)
                except Exception:
                    log.exception("realtime_scoring_failed")
            now = time.monotonic()
            if now >= next_flush or not running:
                self._flush_safely()
                next_flush = now + self._flush_s
                if self._queue.empty():
                    self._idle.set()
            if now >= next_refresh and running:
                try:
                    self._refresh()
                except Exception:
                    log.exception("realtime_refresh_failed")
                next_refresh = now + self._refresh_s
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

    def _feed(self, batch: Batch) -> None:
        sid, ts, value = batch.series_id, batch.ts, batch.value
        if not batch.points_sorted:
            order = np.lexsort((ts, sid))
            sid, ts, value = sid[order], ts[order], value[order]
        if sid.size == 0:
            return
        starts = np.flatnonzero(np.concatenate(([True], sid[1:] != sid[:-1])))
        ends = np.append(starts[1:], sid.size)
        tenant = batch.tenant_id
        for series_id, lo, hi in zip(
            sid[starts].tolist(), starts.tolist(), ends.tolist(), strict=True
        ):
            if (tenant, series_id) not in self._models:
                continue
            stream = self._stream(tenant, series_id)
            if stream is None:
                continue
            times = ts[lo:hi].tolist()
            vals = value[lo:hi].tolist()
            for t, v in zip(times, vals, strict=True):
                if t <= stream.seen_us:
                    continue  # late: the detector has gone past it
                self._point(tenant, series_id, stream, t, v)

    def _point(self, tenant: int, series_id: int, stream: _Stream, t: int, v: float) -> None:
        w = stream.model.window_us
        start = (t // w) * w
        if stream.window_start is not None and start != stream.window_start:
            self._close(tenant, series_id, stream)
        if stream.window_start is None:
            stream.window_start = start
        s = float(stream.detector.update(t, v))
        stream.seen_us = t
        stream.points += 1
        self.points_scored += 1
        if s > stream.best:
            stream.best = s
            stream.why = dict(stream.detector.explain()) | {
                "point": format_us(t),
                "value": float(v),
            }
        stream.dirty = True

    def _window(self, stream: _Stream) -> WindowScore:
        assert stream.window_start is not None
        w = stream.model.window_us
        why = stream.why | {"points": stream.points, "realtime": True}
        return WindowScore(stream.window_start, stream.window_start + w, max(stream.best, 0.0), why)

    def _close(self, tenant: int, series_id: int, stream: _Stream) -> None:
        """The window ends: write its final row now (with the others of this flush)."""
        if stream.dirty:
            window = self._window(stream)
            self._pending.append((tenant, series_id, stream, window, not stream.written))
        stream.window_start = None
        stream.best = -1.0
        stream.why = {}
        stream.points = 0
        stream.dirty = False
        stream.written = False
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
            if stream.dirty and stream.window_start is not None:
                open_rows.append((tenant, series_id, stream, self._window(stream)))
                if not stream.written:
                    usage[tenant] = usage.get(tenant, 0) + 1
        everything = [(t, s, st, w) for t, s, st, w, _ in closed] + open_rows
        if not everything:
            return
        with self._store.transaction() as con:
            anomaly_scores.upsert_many(
                con,
                [(t, s, st.model.detector, w) for t, s, st, w in everything],
                usage,
            )
        self.windows_written += len(everything)
        for _t, _s, stream, _w in open_rows:
            stream.written = True
            stream.dirty = False
        for tenant, series_id, stream, window in everything:
            if window.score >= stream.threshold and not (
                stream.annotated and stream.window_start == window.start_us
            ):
                pipeline.annotate(self._store, tenant, series_id, stream.model.detector, window)
                if stream.window_start == window.start_us:
                    stream.annotated = True

    def _save_all(self) -> None:
        """Where each detector stopped, for the next start and the scheduled job."""
        self._flush_safely()
        for stream in self._streams.values():
            try:
                pipeline.save_live(stream.model, stream.seen_us + 1, stream.detector.state())
            except Exception:
                log.exception("realtime_save_failed", series_id=stream.model.series_id)
