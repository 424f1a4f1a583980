"""What the gateway did with each request, for GET {admin_url}/usage."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any, Literal

from .quota import QuotaSnapshot

__all__ = ["Outcome", "UsageCounters"]

# Every request ends in exactly one outcome; `faults` is a subset of `accepted`.
Outcome = Literal["accepted", "forbidden", "throttled", "quota_exceeded", "too_large"]
_FIELDS: tuple[str, ...] = (
    "requests",
    "accepted",
    "throttled",
    "quota_exceeded",
    "faults",
    "forbidden",
    "too_large",
)


class UsageCounters:
    """Thread-safe counters, overall and per route ("POST /upload")."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._total: Counter[str] = Counter()
        self._routes: dict[str, Counter[str]] = {}
        self._faults_by_kind: Counter[str] = Counter()

    def record(self, route: str, outcome: Outcome) -> None:
        with self._lock:
            per_route = self._routes.setdefault(route, Counter())
            for counter in (self._total, per_route):
                counter["requests"] += 1
                counter[outcome] += 1

    def record_fault(self, route: str, kind: str) -> None:
        with self._lock:
            self._total["faults"] += 1
            self._routes.setdefault(route, Counter())["faults"] += 1
            self._faults_by_kind[kind] += 1

    def snapshot(self, quota: QuotaSnapshot) -> dict[str, Any]:
        with self._lock:
            out: dict[str, Any] = {name: self._total[name] for name in _FIELDS}
            out["by_route"] = {
                route: {name: counts[name] for name in _FIELDS}
                for route, counts in sorted(self._routes.items())
            }
            out["faults_by_kind"] = dict(sorted(self._faults_by_kind.items()))
        out["quota"] = {
            "used": quota.used,
            "limit": quota.limit,
            "day": quota.day,
            "resets_at": quota.resets_at,
        }
        out["used"] = quota.used
        return out
