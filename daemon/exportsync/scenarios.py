"""When to send what waits, planned against the past days as samples of the rest of today.

Each past day of today's kind (`exportsync.history`), as the pacing policy lines it up with
today, is one scenario of what still comes. For each, the best schedule of its remaining exports
is known exactly (a DP over its export instants, leftovers going at the last call). Sending what
waits now costs a scenario one request; holding it costs its files the time they wait. A
candidate instant tau is now or one of the scenarios' next exports; it costs a scenario whose
next export comes after tau what waits held until tau and sent alone, plus the least hold of
its rest with one request fewer; and a scenario whose next export comes by tau what waits kept
for that export and planned with its rest (known from then on). The policy sends at the
instant of least mean cost (ties: the earliest); it looks again when anything arrives.

Cheap enough for every delivery step: each scenario's table of least totals over every suffix
and budget is computed once per (scenario, last call) and cached, over at most MOST_EXPORTS
exports; a decision then reads it.

Pure functions of offsets into the quota day; the pacing policy (`exportsync.pacing`) gives it
what waits, the requests it may spend before the last call, and the last call.
"""

from __future__ import annotations

import bisect
import functools
import math
from collections.abc import Sequence

__all__ = ["MOST_EXPORTS", "clear_cache", "send_offset"]

Day = tuple[tuple[float, int], ...]  # (offset into the day, files) per export, sorted

# A past day's rest is planned over at most this many exports (the closest ones merged): the DP
# costs O(n^2) per request, and a busy day's next hour matters more than its evening's detail.
MOST_EXPORTS = 32


@functools.lru_cache(maxsize=512)
def _table(day: Day, end: float, budget: int) -> tuple[tuple[float, ...], ...]:
    """least[i][m]: the least total hold (files x seconds) of the day's exports i.. (those
    before `end`) with at most m sends at export instants, whatever is left going at `end`."""
    rest = [(o, w) for o, w in day if o < end]
    n = len(rest)
    at = [o for o, _ in rest]
    weight = [0] * (n + 1)
    moment = [0.0] * (n + 1)
    for i, (o, w) in enumerate(rest):
        weight[i + 1] = weight[i] + w
        moment[i + 1] = moment[i] + w * o

    least: list[list[float]] = [[0.0] * (budget + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        # m = 0: all of them at the end; more sends never cost more.
        row = [(weight[n] - weight[i]) * end - (moment[n] - moment[i])] * (budget + 1)
        for j in range(i, n):
            # Exports i..j sent at export j's instant, the rest with one send fewer.
            sent = (weight[j + 1] - weight[i]) * at[j] - (moment[j + 1] - moment[i])
            after = least[j + 1]
            for m in range(1, budget + 1):
                cost = sent + after[m - 1]
                row[m] = min(row[m], cost)
        least[i] = row
    return tuple(tuple(row) for row in least)


def clear_cache() -> None:
    """Forget every past day's table (the bench times a decision that computes them afresh)."""
    _table.cache_clear()
    _coarse.cache_clear()


def _offsets(day: Day, end: float) -> list[float]:
    return [o for o, _ in day if o < end]


@functools.lru_cache(maxsize=512)
def _coarse(day: Day, end: float) -> Day:
    """The day's exports before `end`, at most MOST_EXPORTS of them: while there are more, the
    two closest merge into one at the later instant (their files wait for it)."""
    rest = [(o, w) for o, w in day if o < end]
    while len(rest) > MOST_EXPORTS:
        k = min(range(1, len(rest)), key=lambda i: rest[i][0] - rest[i - 1][0])
        rest[k - 1 : k + 1] = [(rest[k][0], rest[k - 1][1] + rest[k][1])]
    return tuple(rest)


def _costs(
    day: Day, *, now: float, files: int, end: float, budget: int, limit: int
) -> tuple[float, float, float]:
    """For one past day as the rest of today: its next export's offset (inf: none before the
    end); the least total hold of its remaining exports once what waits has gone alone (one
    request fewer); and the least total hold when what waits is kept until that next export and
    planned with the rest from there (the day's exports known from then on)."""
    table = _table(day, end, limit)
    offsets = _offsets(day, end)
    start = bisect.bisect_right(offsets, now)
    alone = table[start][budget - 1]
    if start == len(offsets):
        return math.inf, alone, math.inf
    # Kept: what waits goes with the rest's first send (at export j), or at the end.
    kept = files * (end - now) + table[start][0]
    carried = files
    moment = 0.0
    for k in range(start, len(offsets)):
        o, w = day[k]
        carried += w
        moment += w * o
        kept = min(kept, carried * o - moment - files * now + table[k + 1][budget - 1])
    return offsets[start], alone, kept


def send_offset(
    days: Sequence[Day], *, now: float, files: int, budget: int, end: float, limit: int
) -> float:
    """The offset at which `files` waiting at offset `now` should go if nothing new arrives
    meanwhile (`now`: at once; `end` at the latest), with `budget` requests (1..`limit`, the
    day's) to spend before the last call at offset `end`.

    A candidate instant tau costs a past day: if its next export comes after tau, what waits
    held until tau and sent alone; otherwise what it costs kept for that export. The instant of
    least mean cost wins (ties: the earliest); it is now or one of the days' next exports."""
    if not days or now >= end:
        return now
    costs = [
        _costs(_coarse(d, end), now=now, files=files, end=end, budget=budget, limit=limit)
        for d in days
    ]
    best, best_at = math.inf, now
    for at in sorted({now, *(c[0] for c in costs if c[0] < end)}):
        total = math.fsum(
            alone + files * (at - now) if at < nxt else kept for nxt, alone, kept in costs
        )
        if total < best - 1e-9:
            best, best_at = total, at
    return best_at
