"""The yardstick for the pacing policy: the best schedule anyone could have chosen, knowing the
whole day's exports in advance.

A day is a sorted list of export instants and a budget of `budget` requests. A request sent at
time t carries every export that arrived by t and is not sent yet; an export's hold is the time
from its arrival to the request that carries it, plus `floor` (the quiet window every export
waits before anyone can know it is complete, so the policy and the yardstick pay it alike).

Sending at an arrival instant is never worse than sending between two: moving a request back to
the latest arrival it carries shortens every hold in it and carries the same exports. So a
schedule is a choice of at most `budget` arrival instants, the last arrival among them (every
export goes the same day), and dynamic programming over those instants finds:

* `optimal_schedule`: the schedule of least total hold (O(n² k));
* `least_quantile_hold`: the least value any schedule can give the q-quantile of the holds (the
  median for q = 0.5), by a binary search over the candidate holds with a DP that counts the
  exports a schedule can keep within a bound; with `last_calls`, the least any schedule can give
  that keeps one request for each day's last call, as the pacing policy guarantees.

Several days (a budget each, the day boundaries given) are independent: the total adds up, and a
bound's counts add up, so the pooled quantile is exact too.

Pure functions of their arguments; tests/daemon/test_pacing_optimum.py checks them against brute
force on small days.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "Schedule",
    "holds_of",
    "least_quantile_hold",
    "optimal_schedule",
    "quantile",
]


@dataclass(frozen=True)
class Schedule:
    """Send instants (indexes into the arrivals, each request sent at that arrival + floor) and
    the holds they give, one per export in arrival order."""

    sends: tuple[int, ...]
    holds: tuple[float, ...]

    @property
    def total(self) -> float:
        return sum(self.holds)


def quantile(values: Sequence[float], q: float) -> float:
    """The nearest-rank q-quantile: the least v with at least ceil(q·n) values ≤ v (the lower
    median for q = 0.5). The bench and the yardstick use this one definition."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[_rank(len(ordered), q) - 1]


def _rank(n: int, q: float) -> int:
    return min(n, max(1, math.ceil(q * n - 1e-9)))


def holds_of(arrivals: Sequence[float], sends: Sequence[int], floor: float = 0.0) -> list[float]:
    """The holds a schedule gives: each export goes with the first send at or after it."""
    holds: list[float] = []
    chosen = sorted(sends)
    j = 0
    for i, at in enumerate(arrivals):
        while chosen[j] < i:
            j += 1
        holds.append(arrivals[chosen[j]] - at + floor)
    return holds


def optimal_schedule(arrivals: Sequence[float], budget: int, floor: float = 0.0) -> Schedule:
    """The schedule of least total hold for one day (arrivals sorted, budget ≥ 1)."""
    n = len(arrivals)
    if n == 0:
        return Schedule((), ())
    if budget < 1:
        raise ValueError("a day with exports needs a budget of at least one request")
    k = min(budget, n)
    prefix = [0.0]
    for at in arrivals:
        prefix.append(prefix[-1] + at)

    def group(i: int, j: int) -> float:
        # Exports i..j (inclusive) sent at arrival j.
        return (j - i + 1) * arrivals[j] - (prefix[j + 1] - prefix[i])

    inf = math.inf
    # best[m][j]: least total hold of exports 0..j with m sends, the last at j.
    best = [[inf] * n for _ in range(k + 1)]
    back = [[-1] * n for _ in range(k + 1)]
    for j in range(n):
        best[1][j] = group(0, j)
    for m in range(2, k + 1):
        for j in range(m - 1, n):
            for i in range(m - 2, j):
                cost = best[m - 1][i] + group(i + 1, j)
                if cost < best[m][j]:
                    best[m][j] = cost
                    back[m][j] = i
    m = min(range(1, k + 1), key=lambda c: best[c][n - 1])
    sends = []
    j = n - 1
    while m >= 1 and j >= 0:
        sends.append(j)
        j = back[m][j]
        m -= 1
    sends.reverse()
    return Schedule(tuple(sends), tuple(holds_of(arrivals, sends, floor)))


def _most_within(arrivals: Sequence[float], budget: int, bound: float) -> int:
    """The most exports of one day any schedule of ≤ budget sends keeps within `bound` (the
    floor left out), every export sent."""
    n = len(arrivals)
    if n == 0:
        return 0
    k = min(budget, n)
    neg = -1
    # most[m][j]: most exports of 0..j within bound, m sends, the last at j.
    most = [[neg] * n for _ in range(k + 1)]

    for j in range(n):
        most[1][j] = _within(arrivals, 0, j, bound)
    for m in range(2, k + 1):
        for j in range(m - 1, n):
            for i in range(m - 2, j):
                if most[m - 1][i] >= 0:
                    most[m][j] = max(
                        most[m][j], most[m - 1][i] + _within(arrivals, i + 1, j, bound)
                    )
    return max(most[m][n - 1] for m in range(1, k + 1))


def _most_within_kept(
    arrivals: Sequence[float], budget: int, bound: float, last_call: float
) -> int:
    """`_most_within` for a schedule that keeps one request for the last call, as the pacing
    policy guarantees: at most budget - 1 sends before `last_call`; whatever of the earlier
    exports still waits goes at it (a request, unless nothing waits); the exports from it on go
    with what is left, the last of them among the sends (every export sent that day)."""
    pre = [a for a in arrivals if a < last_call]
    post = [a for a in arrivals if a >= last_call]
    n = len(pre)

    def at_last_call(i: int) -> int:
        # Exports i.. of the earlier ones, sent at the last call.
        return sum(1 for a in pre[i:] if last_call - a <= bound)

    # (exports within bound before the last call, requests those took, the last call included)
    options = [(at_last_call(0), 1 if n else 0)]
    k = min(budget - 1, n)
    most = [[-1] * n for _ in range(k + 1)]
    for j in range(n):
        if k >= 1:
            most[1][j] = _within(pre, 0, j, bound)
    for m in range(2, k + 1):
        for j in range(m - 1, n):
            for i in range(m - 2, j):
                if most[m - 1][i] >= 0:
                    most[m][j] = max(most[m][j], most[m - 1][i] + _within(pre, i + 1, j, bound))
    for m in range(1, k + 1):
        for j in range(n):
            if most[m][j] >= 0:
                options.append((most[m][j] + at_last_call(j + 1), m + (j < n - 1)))
    best = -1
    for count, spent in options:
        left = budget - spent
        if not post:
            best = max(best, count)
        elif left >= 1:
            best = max(best, count + _most_within(post, left, bound))
    return best


def _within(arrivals: Sequence[float], i: int, j: int, bound: float) -> int:
    """Of exports i..j sent at j, those that arrived no earlier than arrivals[j] - bound."""
    lo, hi = i, j + 1
    while lo < hi:
        mid = (lo + hi) // 2
        if arrivals[j] - arrivals[mid] <= bound:
            hi = mid
        else:
            lo = mid + 1
    return j + 1 - lo


def least_quantile_hold(
    days: Sequence[Sequence[float]],
    budget: int,
    q: float,
    floor: float = 0.0,
    *,
    last_calls: Sequence[float] | None = None,
) -> float:
    """The least q-quantile of the holds over all the days' exports pooled, over every choice of
    ≤ `budget` sends per day (each day's exports all sent that day).

    `last_calls` (one instant per day): only schedules that keep one request for that day's last
    call (`_most_within_kept`), the guarantee the pacing policy gives; no policy keeping it,
    however much it knew of the day in advance, can do better."""
    n = sum(len(d) for d in days)
    if n == 0:
        return 0.0
    if last_calls is not None and budget < 2:
        raise ValueError("keeping a request for the last call needs a budget of at least two")
    need = _rank(n, q)
    candidates = {d[j] - d[i] for d in days for j in range(len(d)) for i in range(j + 1)}
    if last_calls is not None:
        candidates |= {c - a for d, c in zip(days, last_calls, strict=True) for a in d if a < c}

    def most(bound: float) -> int:
        if last_calls is None:
            return sum(_most_within(d, budget, bound) for d in days)
        return sum(
            _most_within_kept(d, budget, bound, c) for d, c in zip(days, last_calls, strict=True)
        )

    ordered = sorted(candidates)
    lo, hi = 0, len(ordered) - 1  # the largest gap always works (one send at the end)
    while lo < hi:
        mid = (lo + hi) // 2
        if most(ordered[mid]) >= need:
            hi = mid
        else:
            lo = mid + 1
    return ordered[lo] + floor
