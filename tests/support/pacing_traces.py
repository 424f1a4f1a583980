"""Seeded days of exports for measuring the pacing policy (bench/bench_pacing.py and
tests/daemon/test_pacing_traces.py). No network, no files: instants only.

A trace is a run of consecutive quota days (UTC, reset at 00:00); the first ones are history the
policy learns from, the last `measured` are the days measured. Each instant is one export (a CSV
and its session written together).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from exportsync.history import exports_of

__all__ = ["HISTORY", "TRACES", "Trace", "from_arrivals", "trace"]

DAY = 86_400.0
HOUR = 3600.0
MINUTE = 60.0
# Monday 2027-01-04 00:00 UTC: the first day of every trace.
FIRST_DAY = 1_799_020_800.0
# Days of history before the measured ones.
HISTORY = 14
# The office's time zone: UTC+1, so 08:00 local is 07:00 UTC.
LOCAL = -1 * HOUR

Day = Callable[[random.Random, float, int], list[float]]


@dataclass(frozen=True)
class Trace:
    name: str
    start: float  # when the first day begins (a UTC midnight)
    days: tuple[tuple[float, ...], ...]  # export instants per quota day, sorted
    measured: int  # the last `measured` days are measured; the others are history

    @property
    def first_measured(self) -> int:
        return len(self.days) - self.measured


def _window(rng: random.Random, start: float, first: float, last: float, n: int) -> list[float]:
    return [start + rng.uniform(first, last) for _ in range(n)]


def office(rng: random.Random, start: float, weekday: int) -> list[float]:
    """20-40 exports 08:00-17:00 in UTC+1, in 4-8 clusters of exports minutes apart; none at
    weekends."""
    if weekday >= 5:
        return []
    first, last = 8 * HOUR + LOCAL, 17 * HOUR + LOCAL
    centres = _window(rng, start, first, last - 30 * MINUTE, rng.randint(4, 8))
    times = []
    for _ in range(rng.randint(20, 40)):
        at = rng.choice(centres) + abs(rng.gauss(0, 10 * MINUTE))
        times.append(min(at, start + last))
    return times


def quiet_morning(rng: random.Random, start: float, weekday: int) -> list[float]:
    """5 exports before noon (UTC+1), nothing after."""
    return _window(rng, start, 8 * HOUR + LOCAL, 12 * HOUR + LOCAL, 5)


def bursty(rng: random.Random, start: float, weekday: int) -> list[float]:
    """3 bursts of 10 exports, a minute or so apart, at random hours of the working day."""
    times = []
    for begin in _window(rng, start, 8 * HOUR, 18 * HOUR, 3):
        at = begin
        for _ in range(10):
            times.append(at)
            at += rng.expovariate(1 / MINUTE) + 5.0
    return times


def uniform(rng: random.Random, start: float, weekday: int) -> list[float]:
    """40 exports spread evenly at random over 08:00-20:00 UTC."""
    return _window(rng, start, 8 * HOUR, 20 * HOUR, 40)


def night_shift(rng: random.Random, start: float, weekday: int) -> list[float]:
    """15-25 exports 22:00-06:00 in UTC+1: across the quota reset, so each quota day holds the
    end of one night and the start of the next."""
    n = rng.randint(15, 25)
    # The night that began the evening before, then the one beginning tonight.
    early = [t for t in _window(rng, start - DAY, 22 * HOUR + LOCAL, 30 * HOUR + LOCAL, n)]
    late = _window(rng, start, 22 * HOUR + LOCAL, 30 * HOUR + LOCAL, n)
    return [t for t in early + late if start <= t < start + DAY]


def weekend(rng: random.Random, start: float, weekday: int) -> list[float]:
    """Office weekdays, and at the weekend 2 exports a day, late morning to evening."""
    if weekday < 5:
        return office(rng, start, weekday)
    return _window(rng, start, 10 * HOUR, 19 * HOUR, 2)


def mix(rng: random.Random, start: float, weekday: int) -> list[float]:
    """Weekdays are office, bursty, uniform or quiet-morning days; weekends 0-2 exports."""
    if weekday >= 5:
        return _window(rng, start, 10 * HOUR, 19 * HOUR, rng.randint(0, 2))
    kind: Day = rng.choice([office, office, bursty, uniform, quiet_morning])
    return kind(rng, start, weekday)


def trace(name: str, make: Day, *, seed: int, measured: int = 1, last_weekday: int = 2) -> Trace:
    """HISTORY days, then `measured` days ending on `last_weekday` (0 = Monday)."""
    rng = random.Random(f"{name}-{seed}")  # noqa: S311 -- seeded traces
    total = HISTORY + measured
    # Start so that the last day falls on `last_weekday`.
    shift = (last_weekday - (total - 1)) % 7
    days = []
    for n in range(total):
        start = FIRST_DAY + (shift + n) * DAY
        weekday = (shift + n) % 7
        times = [t for t in make(rng, start, weekday) if start <= t < start + DAY]
        days.append(tuple(exports_of(times, gap=1.0)))
    return Trace(name, FIRST_DAY + shift * DAY, tuple(days), measured)


def from_arrivals(name: str, arrivals: Sequence[float], *, measured: int = HISTORY) -> Trace:
    """A spool's own history replayed: its arrivals grouped into exports (as the policy groups
    them) and into UTC days; the last `measured` days (at most all but MIN history) measured."""
    starts = exports_of(arrivals)
    if not starts:
        return Trace(name, 0.0, (), 0)
    first = starts[0] - starts[0] % DAY
    count = int((starts[-1] - first) // DAY) + 1
    days = [
        tuple(s for s in starts if first + n * DAY <= s < first + (n + 1) * DAY)
        for n in range(count)
    ]
    return Trace(name, first, tuple(days), max(1, min(measured, count - 3)) if count > 3 else count)


TRACES: dict[str, Callable[[int], Trace]] = {
    "office": lambda seed: trace("office", office, seed=seed),
    "quiet_morning": lambda seed: trace("quiet_morning", quiet_morning, seed=seed),
    "bursty": lambda seed: trace("bursty", bursty, seed=seed),
    "uniform": lambda seed: trace("uniform", uniform, seed=seed),
    "night_shift": lambda seed: trace("night_shift", night_shift, seed=seed),
    "weekend": lambda seed: trace("weekend", weekend, seed=seed, measured=2, last_weekday=6),
    "mix_14_days": lambda seed: trace("mix_14_days", mix, seed=seed, measured=14),
}
