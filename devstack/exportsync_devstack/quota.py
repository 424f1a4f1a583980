"""The usage plan's DAY quota: requests counted per UTC calendar day, persisted through a store."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from .clock import Clock

__all__ = ["DailyQuota", "MemoryQuotaStore", "QuotaSnapshot", "QuotaStore"]


class QuotaStore(Protocol):
    """Where the day's count lives, so a restart keeps it."""

    def load(self) -> tuple[str, int] | None:
        """The saved (UTC day as YYYY-MM-DD, used) or None."""
        ...

    def save(self, day: str, used: int) -> None: ...


class MemoryQuotaStore:
    """A store that forgets on exit (the default without --state-dir)."""

    def __init__(self) -> None:
        self.saved: tuple[str, int] | None = None

    def load(self) -> tuple[str, int] | None:
        return self.saved

    def save(self, day: str, used: int) -> None:
        self.saved = (day, used)


@dataclass(frozen=True)
class QuotaSnapshot:
    limit: int
    used: int
    day: str
    resets_at: str  # ISO-8601 UTC, the next 00:00


def _utc_day(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC).replace(hour=0, minute=0, second=0, microsecond=0)


class DailyQuota:
    """`limit` requests per UTC day; `limit == 0` means unlimited (still counted)."""

    def __init__(self, limit: int, clock: Clock, store: QuotaStore | None = None) -> None:
        if limit < 0:
            raise ValueError("quota must be >= 0")
        self._limit = limit
        self._clock = clock
        self._store = store if store is not None else MemoryQuotaStore()
        self._lock = threading.Lock()
        saved = self._store.load()
        self._day, self._used = saved if saved is not None else ("", 0)

    def _roll(self) -> str:
        today = _utc_day(self._clock.time()).date().isoformat()
        if today != self._day:
            self._day, self._used = today, 0
        return today

    def try_consume(self) -> bool:
        """Count one request if the day has room; False means 'Limit Exceeded'."""
        with self._lock:
            day = self._roll()
            if self._limit and self._used >= self._limit:
                return False
            self._used += 1
            self._store.save(day, self._used)
            return True

    def snapshot(self) -> QuotaSnapshot:
        with self._lock:
            day = self._roll()
            resets = _utc_day(self._clock.time()) + timedelta(days=1)
            return QuotaSnapshot(self._limit, self._used, day, resets.isoformat())
