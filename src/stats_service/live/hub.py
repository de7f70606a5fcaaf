"""The live hub: committed points fanned out to the subscribers of `WS /v1/live`.

The single writer calls `LiveHub.committed()` after each successful group commit. That
call costs one attribute read when nobody subscribes; otherwise it keeps the batches of
tenants that have subscribers and hands them to the event loop with one
`call_soon_threadsafe` (the batches are not copied: nothing changes them after the
commit). Everything else runs on the event loop: points are grouped per series, each
series that at least one subscriber selects is encoded to JSON once, and the same text
frames go into the queue of every subscriber that selects it.

Each subscriber's queue is bounded in bytes (`live_queue_bytes`, counted as characters
of JSON text, including the message being sent). A subscriber whose queue would pass
the bound is dropped: its queue is emptied, its `dropped` event set, and its connection
closed with `CLOSE_TOO_SLOW`. The messages of one batch are always let into an empty
queue, so a subscriber holds at most the bound plus one batch's messages; the frames
are shared by every subscriber that selects the same series. Ingestion never waits for
a subscriber, and memory never grows with a slow one.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

import anyio
import numpy as np
import orjson
import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from ..model import Batch, Float64Array, Int64Array, SeriesKey, SeriesMeta
from ..query.columns import times, values
from .selection import Selection

log = structlog.get_logger(__name__)

CLOSE_TOO_SLOW = 4008
MAX_POINTS_PER_MESSAGE = 1000  # a longer run of one series is sent as several messages
MATCH_CACHE_MAX = 100_000  # remembered match results per subscriber

KnownUnits = Mapping[int, tuple[SeriesKey, str | None]]  # the writer's stored series


class TooManySubscribers(Exception):
    pass


class Subscriber:
    """One subscription: its selection and its bounded queue of text frames.

    Used only on the event loop thread."""

    def __init__(self, selection: Selection, max_bytes: int) -> None:
        self.selection = selection
        self.max_bytes = max_bytes
        self.queued_bytes = 0
        self.dropped = asyncio.Event()
        self._frames: collections.deque[str] = collections.deque()
        self._ready = asyncio.Event()
        self._matches: dict[int, bool] = {}

    def matches(self, series_id: int, key: SeriesKey) -> bool:
        found = self._matches.get(series_id)
        if found is None:
            if len(self._matches) >= MATCH_CACHE_MAX:
                self._matches.clear()
            found = self._matches[series_id] = self.selection.matches(series_id, key)
        return found

    def offer(self, frames: list[str]) -> bool:
        """Queue `frames`; False (and the subscriber dropped) when they do not fit. The
        frames of one batch always fit an empty queue (a subscriber that keeps up is
        never dropped for one large request)."""
        if self.dropped.is_set():
            return False
        size = sum(len(f) for f in frames)
        if self.queued_bytes and self.queued_bytes + size > self.max_bytes:
            self._frames.clear()
            self.queued_bytes = 0
            self.dropped.set()
            self._ready.set()
            return False
        self._frames.extend(frames)
        self.queued_bytes += size
        self._ready.set()
        return True

    async def next(self, timeout: float) -> str | None:
        """The next frame, or None when none came within `timeout` s (or when dropped).
        Its bytes count against the bound until `sent()`."""
        while not self._frames:
            if self.dropped.is_set():
                return None
            self._ready.clear()
            with anyio.move_on_after(timeout) as scope:
                await self._ready.wait()
            if scope.cancelled_caught:
                return None
        return self._frames.popleft()

    def sent(self, frame: str) -> None:
        self.queued_bytes = max(0, self.queued_bytes - len(frame))


class LiveHub:
    """Subscribers by tenant, and the commit hook that feeds them."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        queue_bytes: int = 4 * 1024 * 1024,
        max_subscribers: int = 1000,
    ) -> None:
        self.queue_bytes = queue_bytes
        self.max_subscribers = max_subscribers
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscribers: dict[int, set[Subscriber]] = {}
        self._count = 0
        # read by the writer thread without a lock: replaced whole, never changed in place
        self.tenants: frozenset[int] = frozenset()
        r = registry if registry is not None else CollectorRegistry()
        self.subscribers_gauge = Gauge(
            "stats_live_subscribers", "Live-feed subscribers connected now.", registry=r
        )
        self.messages_sent = Counter(
            "stats_live_messages_sent",
            "Messages sent to live-feed subscribers (points, states, hello, ping).",
            registry=r,
        )
        self.dropped = Counter(
            "stats_live_dropped_subscribers",
            "Live-feed subscribers closed by the server, by reason (slow: queue overflow; "
            "unauthorized: key revoked).",
            ["reason"],
            registry=r,
        )
        self.refused = Counter(
            "stats_live_refused",
            "Live-feed connections refused, by close code (4400, 4401, 4403, 1013).",
            ["code"],
            registry=r,
        )

    @property
    def active(self) -> bool:
        return bool(self.tenants)

    @property
    def count(self) -> int:
        return self._count

    # -- the event loop side -----------------------------------------------------------

    def subscribe(self, selection: Selection) -> Subscriber:
        """A new subscriber (call on the event loop). Raises TooManySubscribers."""
        if self._count >= self.max_subscribers:
            raise TooManySubscribers(
                f"this server already has {self._count} live subscribers; try again later"
            )
        self._loop = asyncio.get_running_loop()
        subscriber = Subscriber(selection, self.queue_bytes)
        self._subscribers.setdefault(selection.tenant_id, set()).add(subscriber)
        self._changed(+1)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        tenant = subscriber.selection.tenant_id
        group = self._subscribers.get(tenant)
        if group is None or subscriber not in group:
            return
        group.discard(subscriber)
        if not group:
            del self._subscribers[tenant]
        self._changed(-1)

    def _changed(self, delta: int) -> None:
        self._count += delta
        self.tenants = frozenset(self._subscribers)
        self.subscribers_gauge.set(self._count)

    # -- the writer side ---------------------------------------------------------------

    def committed(self, batches: Sequence[Batch], known: KnownUnits) -> None:
        """Called by the writer thread after a commit; never blocks, never raises.
        `known` is the writer's map of stored series (for units a batch did not carry);
        it is only read, one key at a time, on the event loop."""
        tenants, loop = self.tenants, self._loop
        if not tenants or loop is None:
            return
        wanted = [b for b in batches if b.tenant_id in tenants]
        if not wanted:
            return
        # a closed loop (the server stopped) raises RuntimeError: nobody listens any more
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._dispatch, wanted, known)

    # -- on the event loop: fan out ----------------------------------------------------

    def _dispatch(self, batches: list[Batch], known: KnownUnits) -> None:
        try:
            for batch in batches:
                self._dispatch_batch(batch, known)
        except Exception:  # a bug here must not stop the loop's other work
            log.exception("live_dispatch_failed")

    def _dispatch_batch(self, batch: Batch, known: KnownUnits) -> None:
        group = self._subscribers.get(batch.tenant_id)
        if not group:
            return
        subscribers = [s for s in group if not s.dropped.is_set()]
        if not subscribers:
            return
        queued: dict[Subscriber, list[str]] = {}
        for frames, takers in _series_frames(batch, subscribers, known):
            for subscriber in takers:
                queued.setdefault(subscriber, []).extend(frames)
        for subscriber, frames in queued.items():
            if not subscriber.offer(frames):
                self.dropped.labels("slow").inc()
                log.info(
                    "live_subscriber_dropped",
                    tenant_id=batch.tenant_id,
                    reason="slow",
                    queue_bytes=subscriber.max_bytes,
                )


def _series_frames(
    batch: Batch, subscribers: list[Subscriber], known: KnownUnits
) -> list[tuple[list[str], list[Subscriber]]]:
    """(frames of one series, the subscribers that select it) for every series of
    `batch` that at least one of `subscribers` selects, in series order."""
    out: list[tuple[list[str], list[Subscriber]]] = []
    if batch.numeric:
        sid, ts, value = batch.series_id, batch.ts, batch.value
        if not batch.points_sorted:
            order = np.lexsort((ts, sid))
            sid, ts, value = sid[order], ts[order], value[order]
        for series_id, lo, hi in _runs(sid):
            meta = batch.series.get(series_id)
            takers = _takers(series_id, meta, subscribers)
            if meta is not None and takers:
                head = _head("points", series_id, meta, known)
                frames = _numeric_frames(head, ts[lo:hi], value[lo:hi])
                out.append((frames, takers))
    states = batch.states
    if states is not None and len(states):
        order = np.lexsort((states.ts, states.series_id))
        sid, ts = states.series_id[order], states.ts[order]
        text = [states.text[i] for i in order.tolist()]
        for series_id, lo, hi in _runs(sid):
            meta = batch.series.get(series_id)
            takers = _takers(series_id, meta, subscribers)
            if meta is not None and takers:
                head = _head("states", series_id, meta, known)
                frames = _text_frames(head, ts[lo:hi], text[lo:hi])
                out.append((frames, takers))
    return out


def _takers(
    series_id: int, meta: SeriesMeta | None, subscribers: list[Subscriber]
) -> list[Subscriber]:
    if meta is None:  # a batch names every series it has points of; never seen so far
        return []
    return [s for s in subscribers if s.matches(series_id, meta.key)]


def _runs(sid: Int64Array) -> list[tuple[int, int, int]]:
    """(series id, start, end) of each run of equal ids in a sorted array."""
    if sid.size == 0:
        return []
    starts = np.flatnonzero(np.concatenate(([True], sid[1:] != sid[:-1])))
    ends = np.append(starts[1:], sid.size)
    return list(zip(sid[starts].tolist(), starts.tolist(), ends.tolist(), strict=True))


def _head(kind: str, series_id: int, meta: SeriesMeta, known: KnownUnits) -> dict[str, Any]:
    unit = meta.unit
    if unit is None:
        stored = known.get(series_id)
        unit = stored[1] if stored is not None else None
    key = meta.key
    return {
        "type": kind,
        "series": str(series_id),
        "device": key.device,
        "metric": key.metric,
        "tags": key.tags_dict(),
        "unit": unit,
    }


def _numeric_frames(head: dict[str, Any], ts: Int64Array, value: Float64Array) -> list[str]:
    frames = []
    for lo in range(0, ts.size, MAX_POINTS_PER_MESSAGE):
        hi = lo + MAX_POINTS_PER_MESSAGE
        body = head | {"t": times(ts[lo:hi], micros=True), "v": values(value[lo:hi])}
        frames.append(orjson.dumps(body).decode())
    return frames


def _text_frames(head: dict[str, Any], ts: Int64Array, text: list[str]) -> list[str]:
    frames = []
    for lo in range(0, ts.size, MAX_POINTS_PER_MESSAGE):
        hi = lo + MAX_POINTS_PER_MESSAGE
        body = head | {"t": times(ts[lo:hi], micros=True), "text": text[lo:hi]}
        frames.append(orjson.dumps(body).decode())
    return frames
