"""Per-tenant, per-day usage counters kept in memory and flushed by the writer."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, date, datetime

from ..storage.commit import UsageDelta


class UsageCounter:
    """Counts requests and rejected points; the writer adds them to the store at commit."""

    def __init__(self, today: Callable[[], date] = lambda: datetime.now(UTC).date()) -> None:
        self._lock = threading.Lock()
        self._delta: UsageDelta = {}
        self._today = today

    def _add(self, tenant_id: int, index: int, amount: int) -> None:
        with self._lock:
            row = self._delta.setdefault((tenant_id, self._today()), [0, 0, 0, 0])
            row[index] += amount

    def request(self, tenant_id: int) -> None:
        self._add(tenant_id, 2, 1)

    def rejected(self, tenant_id: int, points: int) -> None:
        self._add(tenant_id, 3, max(1, points))

    def pending(self) -> bool:
        with self._lock:
            return bool(self._delta)

    def peek(self) -> UsageDelta:
        with self._lock:
            return {k: list(v) for k, v in self._delta.items()}

    def take(self) -> UsageDelta:
        with self._lock:
            delta, self._delta = self._delta, {}
        return delta

    def give_back(self, delta: UsageDelta) -> None:
        with self._lock:
            for key, values in delta.items():
                row = self._delta.setdefault(key, [0, 0, 0, 0])
                for i, v in enumerate(values):
                    row[i] += v
