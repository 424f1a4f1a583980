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
    morning = [MIDNIGHT + 9 * HOUR, MIDNIGHT + 10 * HOUR, MIDNIGHT + 11 * HOUR, NOON - 600, NOON]
    decision = plan(
        _backlog(arrived=NOON),
        NOON + 5,
        _day(4, last=NOON - 600),
        POLICY,
        QUIET_AFTERNOONS,
        today=morning,
    )
    assert (decision.send_at, decision.reason) == (NOON + 5, "learned")
    assert decision.why == (
        "usually 0 more exports after 12:00Z; 6 requests left, 1 kept for the last call"
    )
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


def test_the_last_request_waits_for_the_last_call_and_the_reserve_for_a_quiet_rest() -> None:
    # Nothing more ever comes after noon: the reserve goes, all but the last call's request.
    decision = plan(
        _backlog(arrived=NOON), NOON + 5, _day(8, last=NOON - 1), POLICY, QUIET_AFTERNOONS
    )
    assert (decision.reason, decision.send_at, decision.reserve) == ("learned", NOON + 5, 1)
    last = plan(_backlog(arrived=NOON), NOON, _day(9, last=NOON - 1), POLICY, QUIET_AFTERNOONS)
    assert (last.reason, last.send_at) == ("reserve", MIDNIGHT + DAY - 1800)
    # Past afternoons busy until 17:45: the whole reserve stays until they are over.
    busy = plan(_backlog(arrived=NOON), NOON, _day(8, last=NOON - 1), POLICY, BUSY_AFTERNOONS)
    assert (busy.reason, busy.send_at, busy.reserve) == ("reserve", MIDNIGHT + 17.75 * HOUR, 2)
    at = MIDNIGHT + DAY - 1800
    late = plan(_backlog(arrived=at - 60), at, _day(9, last=at - 120), POLICY, BUSY_AFTERNOONS)
    assert (late.reason, late.send_at) == ("last_call", at)


# Past days: two runs of five exports a minute apart, at 09:00 and at 15:00.
TWO_RUNS = _past(*(9 * HOUR + n * 60 for n in range(5)), *(15 * HOUR + n * 60 for n in range(5)))
AFTERNOON = tuple((15 * HOUR + n * 60, 2) for n in range(5))


def test_a_run_of_exports_is_held_while_the_past_days_say_it_goes_on() -> None:
    # Two requests to spend (4 left, the reserve kept): one per run is what the past days need.
    view = _day(6, last=MIDNIGHT + 3600)
    first = MIDNIGHT + 9.5 * HOUR  # today's run came later than usual: it is lined up by count
    decision = plan(_held(2, first, first), first + 5, view, POLICY, TWO_RUNS, today=[first])
    # Held: the next export is likely a minute away; look again then.
    assert decision.reason == "learned"
    assert decision.send_at == first + 60
    assert decision.why == (
        "usually 5 more exports after 09:30Z; 4 requests left, 2 kept for the last call"
    )
    # The run's fifth export: on the past days nothing more came for hours. It goes now.
    run = [first + n * 60 for n in range(5)]
    fifth = run[-1]
    backlog = Backlog(10, 1000, 1, first, fifth, 2 * sum(run))
    end = plan(backlog, fifth + 5, view, POLICY, TWO_RUNS, today=run)
    assert (end.reason, end.send_at) == ("learned", fifth + 5)
    # Without today's count it plans on the time of day alone, which says little mid-run.
    blind = plan(_held(2, first, first), first + 5, view, POLICY, TWO_RUNS)
    assert blind.send_at != decision.send_at


def test_a_request_is_not_spent_on_a_run_that_the_rest_of_the_day_needs() -> None:
    # One request left to spend and the afternoon run still to come: the morning run's first
    # export waits for the rest of its run rather than leave the afternoon to the last call.
    view = _day(7, last=MIDNIGHT + 3600)
    first = MIDNIGHT + 9 * HOUR
    held = plan(_held(2, first, first), first + 5, view, POLICY, TWO_RUNS, today=[first])
    assert held.send_at is not None
    assert held.send_at > first + 5
    # With a request for each export to come it goes at once.
    plenty = plan(
        _held(2, first, first), first + 5, _day(0, limit=20), POLICY, TWO_RUNS, today=[first]
    )
    assert (plenty.reason, plenty.send_at) == ("learned", first + 5)
    # A full request never waits.
    full = plan(_backlog(2000, arrived=first, requests=2), first, view, POLICY, TWO_RUNS)
    assert full.reason == "full"


def test_past_exports_after_the_last_call_keep_a_request_each() -> None:
    # Past days: a morning export, then three after the last call (23:30): the last call's
    # request and one for each of them stay, more than the reserve of 2.
    late = _past(9 * HOUR, 23.6 * HOUR, 23.7 * HOUR, 23.8 * HOUR)
    first = MIDNIGHT + 9 * HOUR
    held = plan(_held(2, first, first), first + 5, _day(6), POLICY, late, today=[first])
    assert (held.reason, held.reserve, held.send_at) == ("reserve", 4, MIDNIGHT + DAY - 1800)
    assert held.why == (
        "usually 3 more exports after 09:00Z; 4 requests left, 4 kept for the last call"
    )
    spare = plan(_held(2, first, first), first + 5, _day(5), POLICY, late, today=[first])
    assert (spare.reason, spare.reserve, spare.send_at) == ("learned", 4, first + 5)


def test_a_past_day_whose_next_export_is_long_overdue_stops_telling_today() -> None:
    # Half the past days went on with a run of 20 exports a minute apart; half had the
    # morning's one export alone. Both had a run at 15:00.
    runs = tuple((9 * HOUR + n * 60, 2) for n in range(20)) + AFTERNOON
    alone = ((9 * HOUR, 2), *AFTERNOON)
    history = History((runs, alone) * 5, (False,) * 10)
    view = _day(6, last=MIDNIGHT + 3600)
    first = MIDNIGHT + 9.5 * HOUR
    held = plan(_held(2, first, first), first + 5, view, POLICY, history, today=[first])
    assert held.send_at == first + 60
    # Ten minutes on, nothing came, though those runs would still be going: the days they
    # went on say nothing of today. It goes.
    later = first + 600
    sent = plan(_held(2, first, later), later, view, POLICY, history, today=[first])
    assert (sent.reason, sent.send_at) == ("learned", later)


def test_a_past_days_nth_export_in_another_part_of_the_day_is_lined_up_by_the_clock() -> None:
    # A night shift across the reset: past days had two exports before 03:00 and three from
    # 21:00. Today's third export came at 03:00: lined up by count it would be a past day's
    # 21:00, and its 21:10 and 21:20 would be due at 03:10 and 03:20. Eighteen hours apart is
    # another part of the day: those days are lined up by the time of day, which says the
    # night is over until 21:00. With one request to spend it goes now.
    history = _past(1 * HOUR, 2 * HOUR, 21 * HOUR, 21 * HOUR + 600, 21 * HOUR + 1200)
    today = [MIDNIGHT + 1 * HOUR, MIDNIGHT + 2 * HOUR, MIDNIGHT + 3 * HOUR]
    third = today[-1]
    view = _day(7, last=MIDNIGHT + 2 * HOUR)
    decision = plan(_held(2, third, third), third + 5, view, POLICY, history, today=today)
    assert (decision.reason, decision.send_at) == ("learned", third + 5)
    # In the evening the count lines up within minutes: the run goes on, and it waits.
    late = _past(1 * HOUR, 2 * HOUR, *(21 * HOUR + n * 600 for n in range(5)))
    evening = [*today[:2], *(MIDNIGHT + 21 * HOUR + n * 600 for n in range(3))]
    last = evening[-1]
    held = plan(_held(2, last, last), last + 5, view, POLICY, late, today=evening)
    assert (held.reason, held.send_at) == ("learned", last + 600)
