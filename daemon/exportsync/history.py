"""What the spool's past days say about the rest of today: how many exports usually still come
after this time of day. Pure functions of arrival instants; the spool supplies them
(`Spool.arrivals`), the pacing policy reads the `Outlook`.

An *export* is a run of files spooled less than `EXPORT_GAP_SECONDS` apart (a CSV and its
session, a folder's worth copied in): it costs one request when it goes alone. A *day* is a quota
period (a UTC day from `reset_utc`); a past day counts once the spool covered it whole, and days
with no export count too (a quiet afternoon is what lets the policy spend its requests early).
Weekdays and weekend days are told apart (by the UTC weekday at the period's middle): a day is
predicted from at least `MIN_DAYS` past days of its own kind, or not at all.
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "EXPORT_GAP_SECONDS",
    "HISTORY_DAYS",
    "LIKELY_QUANTILE",
    "MIN_DAYS",
    "History",
    "Outlook",
    "build_history",
    "exports_of",
    "exports_today",
    "read_history",
    "weighted_exports",
]

DAY = 86_400.0
# Files spooled closer together than this are one export (the pacing's longest quiet window).
EXPORT_GAP_SECONDS = 30.0
# How far back the policy looks, in days; fewer known days than MIN_DAYS teach it nothing.
HISTORY_DAYS = 14
MIN_DAYS = 5
# "Likely": on this share of past days at most that many exports still came (nearest rank, so
# the busiest or second busiest of 10 days).
LIKELY_QUANTILE = 0.9


def exports_of(arrivals: Sequence[float], gap: float = EXPORT_GAP_SECONDS) -> list[float]:
    """The instants exports began: the first of each run of arrivals less than `gap` apart."""
    return [at for at, _ in weighted_exports(arrivals, gap)]


def weighted_exports(
    arrivals: Sequence[float], gap: float = EXPORT_GAP_SECONDS
) -> list[tuple[float, int]]:
    """Each export's first instant and how many files it brought."""
    found: list[tuple[float, int]] = []
    last: float | None = None
    for at in sorted(arrivals):
        if last is None or at - last >= gap:
            found.append((at, 1))
        else:
            found[-1] = (found[-1][0], found[-1][1] + 1)
        last = at
    return found


def weekend(period_start: float) -> bool:
    return time.gmtime(period_start + DAY / 2).tm_wday >= 5


Day = tuple[tuple[float, int], ...]  # (offset into the day, files) per export, sorted


@dataclass(frozen=True)
class Outlook:
    """The rest of today as the past days of its kind saw it, from `offset` seconds into the day."""

    days: int  # past days consulted
    kind: str  # "weekday" or "weekend day"
    offset: float
    likely: int  # exports still to come on LIKELY_QUANTILE of those days
    usual: int  # ... on half of them
    chosen: tuple[Day, ...]

    def likely_at(self, offset: float) -> int:
        counts = [len(day) - bisect.bisect_right(day, (offset, math.inf)) for day in self.chosen]
        return int(_quantile(counts, LIKELY_QUANTILE))

    def settles_at(self, at_most: int) -> float | None:
        """The first offset (≥ self.offset) from which at most `at_most` exports likely still
        come; None if never today. The counts only fall as the day goes on: a binary search
        over the past days' export offsets."""
        if self.likely <= at_most:
            return self.offset
        later = sorted({o for day in self.chosen for o, _ in day if o > self.offset})
        lo, hi = 0, len(later)  # later[hi] is the first that settles (hi == len: none does)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.likely_at(later[mid]) <= at_most:
                hi = mid
            else:
                lo = mid + 1
        return later[lo] if lo < len(later) else None


@dataclass(frozen=True)
class History:
    """Past days' exports (offsets into each quota period, and their files), newest day first."""

    days: tuple[Day, ...]
    weekends: tuple[bool, ...]

    def outlook(self, offset: float, *, weekend_today: bool) -> Outlook | None:
        """What still comes after `offset` today, from the past days of today's kind (weekday
        or weekend day); None while fewer than MIN_DAYS of them are known (a week's weekends
        say nothing of a Monday)."""
        chosen = [d for d, w in zip(self.days, self.weekends, strict=True) if w == weekend_today]
        if len(chosen) < MIN_DAYS:
            return None
        kind = "weekend day" if weekend_today else "weekday"
        counts = [sum(1 for o, _ in day if o > offset) for day in chosen]
        return Outlook(
            days=len(chosen),
            kind=kind,
            offset=offset,
            likely=int(_quantile(counts, LIKELY_QUANTILE)),
            usual=int(_quantile(counts, 0.5)),
            chosen=tuple(chosen),
        )


def build_history(
    arrivals: Sequence[float],
    *,
    period_start: float,
    covered_since: float | None,
    days: int = HISTORY_DAYS,
) -> History:
    """The `days` whole quota periods before the one starting at `period_start` that the spool
    covered (it held its first arrival at `covered_since`; None: it never held one), from the
    instants files were spooled."""
    if covered_since is None or days <= 0:
        return History((), ())
    exports = weighted_exports(arrivals)
    chosen: list[Day] = []
    kinds: list[bool] = []
    for back in range(1, days + 1):
        begin = period_start - back * DAY
        if begin < covered_since:
            break  # the spool did not see this day whole
        chosen.append(tuple((at - begin, w) for at, w in exports if begin <= at < begin + DAY))
        kinds.append(weekend(begin))
    return History(tuple(chosen), tuple(kinds))


class ArrivalSource(Protocol):
    """What the spool offers (`Spool.arrivals`, `Spool.first_arrival`)."""

    def arrivals(self, since: float, until: float) -> list[float]: ...

    def first_arrival(self) -> float | None: ...


def read_history(source: ArrivalSource, *, period_start: float, days: int) -> History:
    """`build_history` over the spool's arrivals of the `days` periods before `period_start`.
    Past days do not change: callers keep the result for the rest of the period."""
    if days <= 0:
        return History((), ())
    arrivals = source.arrivals(period_start - days * DAY, period_start)
    return build_history(
        arrivals, period_start=period_start, covered_since=source.first_arrival(), days=days
    )


def exports_today(source: ArrivalSource, *, period_start: float) -> list[float]:
    """The instants today's exports began (the current quota period's, so far)."""
    return exports_of(source.arrivals(period_start, math.inf))


def _quantile(values: Sequence[float], q: float) -> float:
    """Nearest rank: the least v with at least ceil(q·n) of the values ≤ v."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q * len(ordered) - 1e-9)))
    return ordered[rank - 1]
