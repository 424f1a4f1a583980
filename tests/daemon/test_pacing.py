"""The pacing policy as a pure function: backlog, time, quota and knobs in, a decision out."""

from __future__ import annotations

import pytest

from exportsync.backlog import Backlog
from exportsync.history import History
from exportsync.pacing import MAX_QUIET_SECONDS, Pacing, QuotaView, plan, plan_backlog

DAY = 86_400.0
MIDNIGHT = 1_800_000_000.0 - (1_800_000_000.0 % DAY)
NOON = MIDNIGHT + 12 * 3600
POLICY = Pacing(quiet_seconds=2.0, prompt_requests=4, reserve_requests=2, last_call_seconds=1800)


def _backlog(
    items: int = 2, *, arrived: float = NOON, newest: float | None = None, requests: int = 1
) -> Backlog:
    return Backlog(
        items=items,
        bytes=100 * items,
        requests_needed=requests if items else 0,
        oldest_at=arrived if items else None,
        newest_at=(newest if newest is not None else arrived) if items else None,
    )


def _day(used: int, *, limit: int | None = 10, last: float | None = None) -> QuotaView:
    return QuotaView(limit, used, MIDNIGHT, MIDNIGHT + DAY, last)


def test_nothing_waiting_means_no_plan() -> None:
    assert plan(_backlog(0), NOON, _day(0), POLICY).send_at is None


def test_without_a_daily_limit_everything_goes_at_once() -> None:
    decision = plan(_backlog(arrived=NOON), NOON, _day(500, limit=None), POLICY)
    assert (decision.send_at, decision.reason) == (NOON, "now")


def test_an_export_waits_for_the_folder_to_go_quiet() -> None:
    # A CSV at noon, its session 1 s later: both wait until 2 s after the session.
    decision = plan(_backlog(arrived=NOON, newest=NOON + 1), NOON + 1, _day(0), POLICY)
    assert decision.send_at == NOON + 3
    assert decision.reason == "quiet"


def test_a_folder_that_never_goes_quiet_is_still_served() -> None:
    # Files every second since noon: the oldest has waited long enough at noon + 30 s.
    newest = NOON + MAX_QUIET_SECONDS - 1
    decision = plan(_backlog(arrived=NOON, newest=newest), newest, _day(0), POLICY)
    assert decision.send_at == NOON + MAX_QUIET_SECONDS


def test_the_first_requests_of_a_day_go_promptly() -> None:
    for used in range(POLICY.prompt_requests):
        decision = plan(_backlog(arrived=NOON), NOON + 5, _day(used, last=NOON - 60), POLICY)
        assert (decision.send_at, decision.reason) == (NOON + 5, "prompt")


def test_after_the_prompt_requests_the_rest_are_spread_until_the_last_call() -> None:
    last = NOON
    decision = plan(_backlog(arrived=NOON + 60), NOON + 60, _day(4, last=last), POLICY)
    # 10 - 4 used - 2 reserve = 4 spendable: the next at 1/5 of the way to 23:30.
    last_call = MIDNIGHT + DAY - 1800
    assert decision.reason == "paced"
    assert decision.send_at == pytest.approx(last + (last_call - last) / 5)
    assert (decision.left, decision.reserve) == (6, 2)


def test_a_full_request_never_waits_for_its_slot() -> None:
    decision = plan(_backlog(2000, arrived=NOON, requests=2), NOON, _day(4, last=NOON - 1), POLICY)
    assert (decision.send_at, decision.reason) == (NOON, "full")


def test_the_reserve_waits_for_the_last_call() -> None:
    decision = plan(_backlog(arrived=NOON), NOON, _day(8, last=NOON - 1), POLICY)
    assert decision.reason == "reserve"
    assert decision.send_at == MIDNIGHT + DAY - 1800
    # A full backlog does not eat into the reserve either.
    full = plan(_backlog(2000, arrived=NOON, requests=3), NOON, _day(8), POLICY)
    assert full.send_at == MIDNIGHT + DAY - 1800


def test_at_the_last_call_everything_goes_reserve_included() -> None:
    at = MIDNIGHT + DAY - 600
    decision = plan(_backlog(arrived=at - 60), at, _day(9, last=at - 120), POLICY)
    assert (decision.send_at, decision.reason, decision.reserve) == (at, "last_call", 0)


def test_a_used_day_waits_for_the_reset() -> None:
    decision = plan(_backlog(arrived=NOON), NOON, _day(10), POLICY)
    assert (decision.send_at, decision.reason) == (MIDNIGHT + DAY, "day_used")


def test_the_eta_of_a_backlog_follows_the_same_policy() -> None:
    assert plan_backlog(_backlog(arrived=NOON - 10), NOON, _day(0), POLICY) is None
    # Three full requests with two left before the reserve: the third waits for the last call.
    eta = plan_backlog(_backlog(3000, arrived=NOON - 10, requests=3), NOON, _day(6), POLICY)
    assert eta == MIDNIGHT + DAY - 1800
    # A used day: tomorrow.
    eta = plan_backlog(_backlog(arrived=NOON - 10), NOON, _day(10), POLICY)
    assert eta is not None
    assert MIDNIGHT + DAY <= eta < MIDNIGHT + DAY + 3600


def test_a_small_plan_keeps_no_reserve_it_cannot_spare() -> None:
    # 4 a day: a fifth of it is no request, so the third export of the day goes promptly too.
    decision = plan(_backlog(arrived=NOON), NOON + 5, _day(2, limit=4, last=NOON - 60), POLICY)
    assert (decision.reason, decision.reserve) == ("prompt", 0)


# -- learning from past days --------------------------------------------------------------------

HOUR = 3600.0


def _past(*exports_at: float, days: int = 10, files: int = 2) -> History:
    """`days` past weekdays alike, with an export (of `files` files) at each offset."""
    day = tuple((at, files) for at in exports_at)
    return History((day,) * days, (False,) * days)


def _held(items: int, arrived: float, now: float) -> Backlog:
    """A backlog whose items all arrived at `arrived` (so held items x (now - arrived))."""
    return Backlog(items, 100 * items, 1, arrived, arrived, items * arrived)


# MIDNIGHT (2027-01-15) is a Friday: a weekday.
QUIET_AFTERNOONS = _past(9 * HOUR, 10 * HOUR, 11 * HOUR)
BUSY_AFTERNOONS = _past(*(13 * HOUR + n * 900 for n in range(20)))


def test_with_quiet_afternoons_the_fifth_export_goes_at_once() -> None:
    # Four requests spent this morning; the past days had nothing after noon.
    decision = plan(
        _backlog(arrived=NOON), NOON + 5, _day(4, last=NOON - 600), POLICY, QUIET_AFTERNOONS
    )
    assert (decision.send_at, decision.reason) == (NOON + 5, "learned")
    assert decision.why == "usually 0 more exports after 12:00Z; keeping 2 requests of 6"
    # Today's policy paces it for hours.
    today = plan(_backlog(arrived=NOON), NOON + 5, _day(4, last=NOON - 600), POLICY)
    assert today.reason == "paced"
    assert today.send_at is not None
    assert today.send_at > NOON + 3600


def test_the_quiet_window_still_holds_an_export_being_written() -> None:
    decision = plan(
        _backlog(arrived=NOON, newest=NOON + 1), NOON + 1, _day(4), POLICY, QUIET_AFTERNOONS
    )
    assert (decision.send_at, decision.reason) == (NOON + 3, "quiet")


def test_no_history_or_learning_off_paces_as_before() -> None:
    for used, last in ((0, None), (4, NOON - 600), (8, NOON - 1)):
        expected = plan(_backlog(arrived=NOON), NOON + 5, _day(used, last=last), POLICY)
        empty = plan(
            _backlog(arrived=NOON), NOON + 5, _day(used, last=last), POLICY, History((), ())
        )
        off = plan(
            _backlog(arrived=NOON),
            NOON + 5,
            _day(used, last=last),
            Pacing(learn_days=0),
            QUIET_AFTERNOONS,
        )
        assert empty == expected == off


def test_the_reserve_and_the_last_call_stay() -> None:
    # Nothing more ever comes, yet the reserve is only spent at the last call.
    decision = plan(_backlog(arrived=NOON), NOON, _day(8, last=NOON - 1), POLICY, QUIET_AFTERNOONS)
    assert (decision.reason, decision.send_at) == ("reserve", MIDNIGHT + DAY - 1800)
    at = MIDNIGHT + DAY - 1800
    late = plan(_backlog(arrived=at - 60), at, _day(9, last=at - 120), POLICY, BUSY_AFTERNOONS)
    assert (late.reason, late.send_at) == ("last_call", at)


def test_with_nothing_to_spare_a_request_goes_after_a_telling_pause() -> None:
    # Past afternoons: an export every 15 min from 13:00. With 4 requests to spend, a pause of
    # 15 min comes far more than 4 times: pauses that long say the run of exports is over.
    view = _day(4, last=NOON - 60)
    decision = plan(_held(2, NOON, NOON), NOON + 5, view, POLICY, BUSY_AFTERNOONS)
    assert decision.reason == "learned"
    assert decision.send_at == NOON + 900
    assert decision.why == "usually 20 more exports after 12:00Z; 6 requests left for them"
    # An export arriving meanwhile starts the pause again.
    again = plan(
        Backlog(4, 400, 1, NOON, NOON + 600, 2 * NOON + 2 * (NOON + 600)),
        NOON + 605,
        view,
        POLICY,
        BUSY_AFTERNOONS,
    )
    assert again.send_at == NOON + 1500
    # A full request never waits.
    full = plan(_backlog(2000, arrived=NOON, requests=2), NOON, view, POLICY, BUSY_AFTERNOONS)
    assert full.reason == "full"


def test_the_more_that_waits_the_sooner_it_goes() -> None:
    # Past afternoons: an export every 2 h from 13:00; 2 requests to spend. A pause of 2 h is
    # the telling one, but files held twice what a request saves go sooner.
    sparse = _past(*(13 * HOUR + n * 2 * HOUR for n in range(5)))
    view = _day(6, last=NOON - 60)
    one = plan(_held(2, NOON, NOON), NOON + 5, view, POLICY, sparse)
    many = plan(_held(20, NOON, NOON), NOON + 5, view, POLICY, sparse)
    assert one.send_at == NOON + 2 * HOUR
    assert many.send_at is not None
    assert NOON + 5 < many.send_at < one.send_at
    # Once they have waited that long, the request goes.
    later = plan(_held(20, NOON, many.send_at), many.send_at, view, POLICY, sparse)
    assert later.send_at == many.send_at
