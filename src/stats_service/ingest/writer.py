"""The single writer: a bounded queue drained by one thread that group-commits.

`submit()` returns a future that resolves only after the item's points are committed
(DuckDB syncs its write-ahead log at commit), so an ingest answer of 2xx means durable.
The queue is bounded by points: when full, `submit()` raises `Overloaded` (HTTP 429)
instead of letting memory grow.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Protocol

import structlog

from ..archive.base import Archive
from ..archive.envelope import archive_key
from ..errors import Overloaded, ServiceError, Unavailable
from ..model import Batch, WriteItem, WriteOutcome
from ..storage.commit import CommitMemory, KnownSeries, UsageDelta, commit_group
from ..storage.embedded import EmbeddedStore
from .usage import UsageCounter

log = structlog.get_logger(__name__)
KNOWN_SERIES_MAX = 1_000_000  # ~200 MB at most; forgetting only costs a look-up


class WriterMetrics:
    """Hooks the writer reports through (Prometheus in the app, no-ops elsewhere)."""

    def committed(self, items: int, points: int, seconds: float) -> None:  # pragma: no cover
        pass

    def queue_depth(self, points: int) -> None:  # pragma: no cover
        pass


class CommitListener(Protocol):
    """Told about what each group commit stored (the live feed). `committed` runs on the
    writer thread: it must return at once and never raise. The writer calls it only
    while `active` is true, so a listener without subscribers costs one attribute read."""

    @property
    def active(self) -> bool: ...

    def committed(self, batches: Sequence[Batch], known: KnownSeries) -> None: ...


class Writer:
    def __init__(
        self,
        store: EmbeddedStore,
        usage: UsageCounter,
        archive: Archive | None,
        *,
        max_queue_points: int,
        commit_max_points: int,
        linger_s: float,
        metrics: WriterMetrics | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC).replace(tzinfo=None),
        listener: CommitListener | None = None,
    ) -> None:
        self._store = store
        self._usage = usage
        self._archive = archive
        self._max_queue = max_queue_points
        self._commit_max = commit_max_points
        self._linger = linger_s
        self._metrics = metrics or WriterMetrics()
        self._clock = clock
        self._listener = listener
        self._queue: collections.deque[tuple[WriteItem, Future[WriteOutcome]]] = (
            collections.deque()
        )
        self._queued_points = 0
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._busy = False
        # series rows this writer has stored or confirmed: later groups skip their look-up
        self._known: KnownSeries = {}
        # newest point time per series and devices' last_seen, as this writer stored them
        self._memory = CommitMemory(max_entries=KNOWN_SERIES_MAX)

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="stats-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Commit everything queued, then stop the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def queued_points(self) -> int:
        return self._queued_points

    def drain(self, timeout: float = 30.0) -> None:
        """Wait until everything submitted so far is committed (tests, replay)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._busy:
                if not self._cond.wait(max(0.0, deadline - time.monotonic())):
                    raise TimeoutError("writer did not drain in time")

    # -- producer side -----------------------------------------------------------------

    def submit(self, item: WriteItem) -> Future[WriteOutcome]:
        future: Future[WriteOutcome] = Future()
        n = max(1, len(item.batch))
        with self._cond:
            if self._stopping:
                raise Unavailable("the server is shutting down; retry against the new one")
            if self._queued_points + n > self._max_queue and self._queued_points > 0:
                raise Overloaded(
                    f"the write queue is full ({self._queued_points} points waiting); "
                    "retry after a moment",
                    retry_after=1.0,
                )
            self._queue.append((item, future))
            self._queued_points += n
            self._metrics.queue_depth(self._queued_points)
            self._cond.notify_all()
        return future

    # -- the writer thread -------------------------------------------------------------

    def _take(self) -> list[tuple[WriteItem, Future[WriteOutcome]]]:
        with self._cond:
            while not self._queue and not self._stopping:
                self._cond.wait(1.0)
                if not self._queue and self._usage.pending():
                    return []
            if not self._queue:
                return []
            if self._linger and not self._stopping and self._queued_points < self._commit_max:
                self._cond.wait(self._linger)
            group: list[tuple[WriteItem, Future[WriteOutcome]]] = []
            points = 0
            while self._queue and (not group or points < self._commit_max):
                item, fut = self._queue.popleft()
                n = max(1, len(item.batch))
                points += n
                self._queued_points -= n
                # a future its request gave up on (timeout) is cancelled: that request
                # was answered 503 already, so it is dropped; the others become
                # uncancellable, and their answer is set after the commit
                if fut.set_running_or_notify_cancel():
                    group.append((item, fut))
            self._busy = True
            self._metrics.queue_depth(self._queued_points)
            return group

    def _run(self) -> None:
        while True:
            group = self._take()
            try:
                self._commit(group)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
            with self._cond:
                if self._stopping and not self._queue:
                    break
        self._commit([])  # flush usage counters

    def _archive_group(self, items: list[WriteItem]) -> None:
        """One archive object per tenant and hour in the group, written before the commit."""
        if self._archive is None:
            return
        objects: dict[tuple[str, str], list[bytes]] = {}
        for item in items:
            if item.archive_frame is not None:
                key = archive_key(item.tenant, item.received_at, item.batch_id)
                prefix = key.rsplit("/", 1)[0]
                objects.setdefault((prefix, key), []).append(item.archive_frame)
        firsts: dict[str, str] = {}
        for prefix, key in objects:
            firsts.setdefault(prefix, key)
        for prefix, key in firsts.items():
            frames = [f for (p, _), fs in objects.items() if p == prefix for f in fs]
            self._archive.put(key, b"".join(frames))

    def _commit(self, group: list[tuple[WriteItem, Future[WriteOutcome]]]) -> None:
        usage: UsageDelta = self._usage.take()
        if not group and not usage:
            return
        started = time.perf_counter()
        items = [item for item, _ in group]
        try:
            self._archive_group(items)
            learned: KnownSeries = {}
            self._memory.drop()
            with self._store.transaction() as con:
                outcomes = commit_group(
                    con, items, usage, self._clock(), self._known, learned, self._memory
                )
            self._memory.keep()
            if len(self._known) + len(learned) > KNOWN_SERIES_MAX:
                self._known.clear()
            self._known.update(learned)
        except Exception as exc:  # one bad item must not fail its neighbours
            if len(group) > 1:
                self._usage.give_back(usage)
                for one in group:
                    self._commit([one])
                return
            self._usage.give_back(usage)
            for item, fut in group:
                log.error(
                    "commit_failed",
                    batch_id=item.batch_id,
                    tenant_id=item.batch.tenant_id,
                    error=str(exc),
                )
                fut.set_exception(
                    exc if isinstance(exc, ServiceError) else Unavailable(f"commit failed: {exc}")
                )
            return
        elapsed = time.perf_counter() - started
        points = sum(o.points_written for o in outcomes)
        self._metrics.committed(len(group), points, elapsed)
        listener = self._listener
        if listener is not None and listener.active:
            self._tell(listener, items, outcomes)
        for (item, fut), outcome in zip(group, outcomes, strict=True):
            log.debug(
                "batch_committed",
                batch_id=item.batch_id,
                tenant_id=item.batch.tenant_id,
                points=outcome.points_written,
                replayed=outcome.replayed,
            )
            fut.set_result(outcome)

    def _tell(
        self, listener: CommitListener, items: list[WriteItem], outcomes: list[WriteOutcome]
    ) -> None:
        """Hand the batches this commit stored to the listener: not retries answered from
        the idempotency table, not replays from the archive (they only fill gaps)."""
        batches = [
            item.batch
            for item, outcome in zip(items, outcomes, strict=True)
            if not outcome.replayed and not item.only_missing and len(item.batch)
        ]
        if batches:
            try:
                listener.committed(batches, self._known)
            except Exception:  # the commit is done: a listener's bug must not undo the answer
                log.exception("commit_listener_failed")
