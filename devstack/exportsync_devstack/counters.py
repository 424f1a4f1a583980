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
    """Thread-safe counters, overall, per route ("POST /upload") and per key's user."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._total: Counter[str] = Counter()
        self._routes: dict[str, Counter[str]] = {}
        self._users: dict[str, Counter[str]] = {}
        self._faults_by_kind: Counter[str] = Counter()

    def _targets(self, route: str, user: str | None) -> list[Counter[str]]:
        targets = [self._total, self._routes.setdefault(route, Counter())]
        if user is not None:
            targets.append(self._users.setdefault(user, Counter()))
        return targets

    def record(self, route: str, outcome: Outcome, user: str | None = None) -> None:
        """Count one request; `user` is the matched key's user (None before a key matched)."""
        with self._lock:
            for counter in self._targets(route, user):
                counter["requests"] += 1
                counter[outcome] += 1

    def record_fault(self, route: str, kind: str, user: str | None = None) -> None:
        with self._lock:
            for counter in self._targets(route, user):
                counter["faults"] += 1
            self._faults_by_kind[kind] += 1

    def snapshot(self, quota: QuotaSnapshot) -> dict[str, Any]:
        with self._lock:
            out: dict[str, Any] = {name: self._total[name] for name in _FIELDS}
            out["by_route"] = {
                route: {name: counts[name] for name in _FIELDS}
                for route, counts in sorted(self._routes.items())
            }
            out["by_key"] = {
                user: {name: counts[name] for name in _FIELDS}
                for user, counts in sorted(self._users.items())
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
