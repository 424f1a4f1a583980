"""The usage plan per API key: each key has its own token bucket and its own DAY quota.

API Gateway meters a usage plan per key ("throttling and quota limits ... apply to each API key
that is added to the usage plan"), so one user's burst or spent day never touches another's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from .apikeys import GatewayKey
from .clock import Clock
from .quota import DailyQuota, MemoryQuotaStore, QuotaSnapshot, QuotaStore
from .throttle import TokenBucket

__all__ = ["Admission", "KeyPlan", "PlanLedger", "PlanLimits"]

Admission = Literal["accepted", "throttled", "quota_exceeded"]


@dataclass(frozen=True)
class PlanLimits:
    """`rate` requests/s with `burst`, `quota` per UTC day; 0 means unlimited."""

    rate: float = 1.0
    burst: int = 1
    quota: int = 10


@dataclass(frozen=True)
class KeyPlan:
    throttle: TokenBucket
    quota: DailyQuota


class PlanLedger:
    """Hands each key its own plan state on first sight; `store_for` keeps a key's day on disk."""

    def __init__(
        self,
        limits: PlanLimits,
        clock: Clock,
        store_for: Callable[[GatewayKey], QuotaStore] | None = None,
    ) -> None:
        self._limits = limits
        self._clock = clock
        self._store_for = store_for
        self._lock = threading.Lock()
        self._plans: dict[str, KeyPlan] = {}

    def plan_for(self, key: GatewayKey) -> KeyPlan:
        with self._lock:
            plan = self._plans.get(key.key_id)
            if plan is None:
                store = self._store_for(key) if self._store_for is not None else MemoryQuotaStore()
                plan = KeyPlan(
                    TokenBucket(self._limits.rate, self._limits.burst, self._clock),
                    DailyQuota(self._limits.quota, self._clock, store),
                )
                self._plans[key.key_id] = plan
            return plan

    def admit(self, key: GatewayKey, arrived: float | None = None) -> Admission:
        """Throttle before quota, as API Gateway does: a throttled request costs no quota.

        `arrived` is the request's arrival on the clock's monotonic time (default: now).
        """
        plan = self.plan_for(key)
        if not plan.throttle.try_acquire(arrived):
            return "throttled"
        if not plan.quota.try_consume():
            return "quota_exceeded"
        return "accepted"

    def primary_snapshot(self) -> QuotaSnapshot:
        """The first key's day (the ready line's `api_key`), or an unused day before any key."""
        with self._lock:
            first = next(iter(self._plans.values()), None)
        if first is not None:
            return first.quota.snapshot()
        return DailyQuota(self._limits.quota, self._clock).snapshot()
