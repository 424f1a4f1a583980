"""The offline optimum the pacing policy is measured against, checked by brute force: every choice
of send instants (on a fine grid, not only at arrivals) on small seeded days, with and without a
request kept for the last call."""

from __future__ import annotations

import itertools
import random

import pytest

from support.pacing_optimum import (
    holds_of,
    least_quantile_hold,
    optimal_schedule,
    quantile,
)


def _days(seed: int, count: int) -> list[list[float]]:
    rng = random.Random(seed)  # noqa: S311 -- seeded test data
    return [
        sorted(rng.choice(range(0, 60, 3)) for _ in range(rng.randint(1, 7))) for _ in range(count)
    ]


def _grid_holds(day: list[float], sends: tuple[float, ...]) -> list[float] | None:
    """Holds for sends at arbitrary instants; None when an export is never sent."""
    holds = []
    for at in day:
        later = [s for s in sends if s >= at]
        if not later:
            return None
        holds.append(min(later) - at)
    return holds


def _brute(day: list[float], budget: int) -> list[list[float]]:
    """Every schedule of ≤ budget sends on the integer grid 0..60 that sends everything."""
    found = []
    for m in range(1, budget + 1):
        for sends in itertools.combinations(range(61), m):
            holds = _grid_holds(day, tuple(float(s) for s in sends))
            if holds is not None:
                found.append(holds)
    return found


@pytest.mark.parametrize("seed", range(6))
def test_the_least_total_hold_matches_brute_force(seed: int) -> None:
    for day in _days(seed, 4):
        for budget in (1, 2, 3):
            schedule = optimal_schedule(day, budget)
            assert len(schedule.sends) <= budget
            assert schedule.holds == tuple(holds_of(day, schedule.sends))
            assert schedule.total == pytest.approx(min(sum(h) for h in _brute(day, budget)))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("q", [0.5, 0.95])
def test_the_least_quantile_matches_brute_force(seed: int, q: float) -> None:
    for day in _days(100 + seed, 3):
        for budget in (1, 2, 3):
            best = min(quantile(h, q) for h in _brute(day, budget))
            assert least_quantile_hold([day], budget, q) == pytest.approx(best)


def _brute_kept(day: list[float], budget: int, last_call: int) -> list[list[float]]:
    """Every schedule on the grid that keeps a request for the last call: at most budget - 1
    sends before it, a send at it whenever an earlier export still waits, everything sent."""
    found = []
    for m in range(1, budget + 1):
        for sends in itertools.combinations(range(61), m):
            if sum(1 for s in sends if s < last_call) > budget - 1:
                continue
            waits = any(a < last_call and not any(a <= s < last_call for s in sends) for a in day)
            if waits and last_call not in sends:
                continue
            holds = _grid_holds(day, tuple(float(s) for s in sends))
            if holds is not None:
                found.append(holds)
    return found


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("q", [0.5, 0.95])
def test_the_least_quantile_keeping_the_last_call_matches_brute_force(seed: int, q: float) -> None:
    for day in _days(200 + seed, 3):
        for budget in (2, 3):
            best = min(quantile(h, q) for h in _brute_kept(day, budget, 40))
            got = least_quantile_hold([day], budget, q, last_calls=[40.0])
            assert got == pytest.approx(best)


def test_keeping_the_last_call_costs_the_export_a_free_request_would_take() -> None:
    # Three exports long apart, three requests: each can go at once, unless one is kept for
    # the last call at 100 (then the last export waits 10 for it).
    day = [10.0, 50.0, 90.0]
    assert least_quantile_hold([day], 3, 1.0) == 0.0
    assert least_quantile_hold([day], 3, 1.0, last_calls=[100.0]) == 10.0
    # The kept request is spent only if something waits then: an export after the last call
    # takes it.
    assert least_quantile_hold([[10.0, 50.0, 120.0]], 3, 1.0, last_calls=[100.0]) == 0.0
    # Nothing before the last call: all three requests serve the exports after it.
    assert least_quantile_hold([[110.0, 120.0, 130.0]], 3, 1.0, last_calls=[100.0]) == 0.0
    with pytest.raises(ValueError, match="at least two"):
        least_quantile_hold([day], 1, 0.5, last_calls=[100.0])


def test_pooled_days_are_each_planned_on_their_own_budget() -> None:
    days = [[0.0, 10.0, 20.0], [0.0, 30.0]]
    # One request a day: the first day holds 20, 10, 0; the second 30, 0.
    assert least_quantile_hold(days, 1, 0.5) == 10.0
    assert least_quantile_hold(days, 1, 1.0) == 30.0
    # Two a day: 10, 0, 0 and 0, 0.
    assert least_quantile_hold(days, 2, 0.95) == 10.0
    assert least_quantile_hold(days, 2, 0.5) == 0.0


def test_the_quiet_window_is_added_to_every_hold() -> None:
    schedule = optimal_schedule([0.0, 5.0, 100.0], 2, floor=2.0)
    assert schedule.holds == (7.0, 2.0, 2.0)
    assert least_quantile_hold([[0.0, 5.0, 100.0]], 2, 1.0, floor=2.0) == 7.0


def test_a_budget_of_one_per_export_holds_nothing() -> None:
    day = [float(t) for t in range(0, 100, 7)]
    assert optimal_schedule(day, len(day)).total == 0.0
    assert least_quantile_hold([day], len(day), 1.0) == 0.0


def test_quantile_is_the_nearest_rank() -> None:
    assert quantile([4.0, 1.0, 3.0, 2.0], 0.5) == 2.0
    assert quantile([4.0, 1.0, 3.0, 2.0], 0.95) == 4.0
    assert quantile([5.0], 0.5) == 5.0
    assert quantile([], 0.5) == 0.0
