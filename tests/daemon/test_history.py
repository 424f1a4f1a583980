"""What the past days say about the rest of today: exports grouped from arrivals, whole days
only, weekdays apart from weekends, and the least holds a past day allows (the scenarios' DP)."""

from __future__ import annotations

import itertools
import random

import pytest

from exportsync.history import (
    MIN_DAYS,
    History,
    build_history,
    exports_of,
    read_history,
    weighted_exports,
)
from exportsync.scenarios import MOST_EXPORTS, _coarse, _table
from exportsync.spool import Spool
from support.pacing_optimum import optimal_schedule

DAY = 86_400.0
HOUR = 3600.0
# Monday 2027-01-04 00:00 UTC.
MONDAY = 1_799_020_800.0


def test_files_spooled_together_are_one_export() -> None:
    arrivals = [100.0, 100.5, 101.0, 500.0, 529.0, 560.0]
    assert weighted_exports(arrivals) == [(100.0, 3), (500.0, 2), (560.0, 1)]
    assert exports_of(arrivals) == [100.0, 500.0, 560.0]


def _days_of(morning: int, afternoon: int, count: int, start: float) -> list[float]:
    """`count` days before `start`, each with exports (a CSV and its session) at 09:00.. and
    14:00.."""
    arrivals = []
    for back in range(1, count + 1):
        begin = start - back * DAY
        for n in range(morning):
            arrivals += [begin + 9 * HOUR + n * 600, begin + 9 * HOUR + n * 600 + 1]
        for n in range(afternoon):
            arrivals += [begin + 14 * HOUR + n * 600, begin + 14 * HOUR + n * 600 + 1]
    return arrivals


def test_only_whole_days_the_spool_saw_count_and_empty_ones_do() -> None:
    today = MONDAY + 14 * DAY
    arrivals = _days_of(2, 0, 5, today)
    # The spool first held something 5 days ago at 09:00: that day was not seen whole.
    history = build_history(
        arrivals, period_start=today, covered_since=today - 5 * DAY + 9 * HOUR, days=14
    )
    assert len(history.days) == 4
    assert all(len(day) == 2 and day[0] == (9 * HOUR, 2) for day in history.days)
    # Seen from the start: five days, and the quiet ones before them count too.
    seen = build_history(arrivals, period_start=today, covered_since=today - 7 * DAY, days=14)
    assert [len(d) for d in seen.days] == [2, 2, 2, 2, 2, 0, 0]
    assert build_history(arrivals, period_start=today, covered_since=None).days == ()


def test_too_few_days_teach_nothing() -> None:
    today = MONDAY + 14 * DAY
    history = build_history(
        _days_of(2, 2, MIN_DAYS - 1, today),
        period_start=today,
        covered_since=today - (MIN_DAYS - 1) * DAY,
    )
    assert history.outlook(12 * HOUR, weekend_today=False) is None


def test_the_outlook_counts_what_came_after_this_time_of_day() -> None:
    # Ten weekdays: 3 exports in the morning, 2 in the afternoon on eight of them, 6 on two.
    days = tuple(
        (
            (9 * HOUR, 2),
            (10 * HOUR, 2),
            (11 * HOUR, 2),
            *tuple((14 * HOUR + n * 600, 2) for n in range(6 if i < 2 else 2)),
        )
        for i in range(10)
    )
    history = History(days, (False,) * 10)
    outlook = history.outlook(12 * HOUR, weekend_today=False)
    assert outlook is not None
    assert (outlook.usual, outlook.likely, outlook.days, outlook.kind) == (2, 6, 10, "weekday")
    # The busy days' exports come at 14:00, 14:10 .. 14:50: at most 1 still to come from 14:40.
    assert outlook.settles_at(6) == 12 * HOUR
    assert outlook.settles_at(1) == 14 * HOUR + 4 * 600
    assert outlook.settles_at(0) == 14 * HOUR + 5 * 600
    evening = history.outlook(20 * HOUR, weekend_today=False)
    assert evening is not None
    assert evening.likely == 0


def test_a_day_is_told_only_by_past_days_of_its_kind() -> None:
    weekday = ((9 * HOUR, 2), (15 * HOUR, 2))
    weekend = ((11 * HOUR, 2),)
    kinds = (False,) * 5 + (True,) * (MIN_DAYS - 1)
    days = tuple(weekend if k else weekday for k in kinds)
    history = History(days, kinds)
    weekday_outlook = history.outlook(10 * HOUR, weekend_today=False)
    assert weekday_outlook is not None
    assert (weekday_outlook.kind, weekday_outlook.days, weekday_outlook.likely) == ("weekday", 5, 1)
    # Too few weekend days: a weekend day is not predicted from the weekdays.
    assert history.outlook(10 * HOUR, weekend_today=True) is None
    more = History((*days, weekend), (*kinds, True))
    outlook = more.outlook(10 * HOUR, weekend_today=True)
    assert outlook is not None
    assert (outlook.kind, outlook.days, outlook.likely) == ("weekend day", MIN_DAYS, 1)


@pytest.mark.parametrize("seed", range(5))
def test_the_least_totals_of_a_past_day_match_brute_force(seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 -- seeded test data
    end = 100.0
    day = tuple(sorted((float(rng.randrange(0, 90)), rng.randint(1, 3)) for _ in range(6)))
    totals = [row for row in _table(day, end, 4)[0]]
    for m in range(5):
        best = float("inf")
        for sends in itertools.combinations(range(len(day)), m):
            cost = 0.0
            for o, w in day:
                later = [day[s][0] for s in sends if day[s][0] >= o]
                cost += w * ((min(later) if later else end) - o)
            best = min(best, cost)
        assert totals[m] == pytest.approx(best)
    # With one file per export and a request for each, the yardstick agrees.
    single = tuple((o, 1) for o, _ in day)
    arrivals = [o for o, _ in single]
    assert _table(single, 1e9, 3)[0][3] <= optimal_schedule(arrivals, 3).total + 1e-6


def test_the_spool_supplies_its_arrivals() -> None:
    with Spool.in_memory() as spool:
        assert spool.first_arrival() is None
        assert read_history(spool, period_start=MONDAY, days=14).days == ()


def test_a_busy_past_day_is_planned_over_its_closest_exports_merged() -> None:
    day = tuple((float(n * 60 + (n % 3) * 20), 2) for n in range(100))
    coarse = _coarse(day, 1e9)
    assert len(coarse) == MOST_EXPORTS
    # Every file is still there, each group at the instant of its latest export.
    assert sum(w for _, w in coarse) == 200
    assert coarse[-1][0] == day[-1][0]
    assert set(o for o, _ in coarse) <= set(o for o, _ in day)
    # Exports after the end are not planned for; a small day is left as it is.
    assert _coarse(day[:10], day[5][0]) == day[:5]
