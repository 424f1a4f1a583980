"""The quota ledger with a fake clock: spacing, burst, the day, restarts, the gateway's verdicts."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path

import pytest

from exportsync.clock import FakeClock
from exportsync.quota import DAY, RESET_GRACE_SECONDS, QuotaLedger
from exportsync.spool import Spool

MIDNIGHT = 1_800_000_000.0 - (1_800_000_000.0 % DAY)  # a UTC midnight


def _ledger(
    spool: Spool,
    clock: FakeClock,
    *,
    rps: float = 1.0,
    burst: int = 1,
    daily: int = 10,
    reset: dt.time = dt.time(0, 0),
    margin: float = 0.25,
) -> QuotaLedger:
    return QuotaLedger(
        spool,
        requests_per_second=rps,
        burst=burst,
        daily_requests=daily,
        reset_utc=reset,
        margin_seconds=margin,
        clock=clock,
    )


def _drain(ledger: QuotaLedger, clock: FakeClock, count: int) -> list[float]:
    """Send `count` requests as soon as allowed; the send times."""
    times = []
    for _ in range(count):
        clock.advance(ledger.wait_time())
        ledger.spend()
        ledger.answered()
        times.append(clock.time())
    return times


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    return Spool.open(tmp_path)


def test_requests_are_spaced_by_more_than_the_gateway_interval(spool: Spool) -> None:
    clock = FakeClock(MIDNIGHT + 3600)
    ledger = _ledger(spool, clock, daily=0)
    times = _drain(ledger, clock, 5)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(gap >= 1.25 - 1e-9 for gap in gaps)
    # The bucket starts empty: even the first request waits one interval.
    assert times[0] == pytest.approx(MIDNIGHT + 3600 + 1.25)


def test_burst_allows_back_to_back_requests_after_an_idle_spell(spool: Spool) -> None:
    clock = FakeClock(MIDNIGHT + 3600)
    ledger = _ledger(spool, clock, rps=2.0, burst=3, daily=0, margin=0.0)
    clock.advance(10)  # the bucket fills to its burst
    sent = 0
    while ledger.wait_time() == 0:
        ledger.spend()
        sent += 1
    assert sent == 3


def test_spend_before_its_time_is_refused(spool: Spool) -> None:
    clock = FakeClock(MIDNIGHT + 3600)
    ledger = _ledger(spool, clock)
    with pytest.raises(RuntimeError, match="before its time"):
        ledger.spend()


def test_the_day_runs_out_then_waits_for_reset_plus_grace(spool: Spool) -> None:
    clock = FakeClock(MIDNIGHT + 3600)
    ledger = _ledger(spool, clock, daily=4)
    _drain(ledger, clock, 4)
    snapshot = ledger.snapshot()
    assert (snapshot.used, snapshot.limit, snapshot.exhausted) == (4, 4, True)
    assert ledger.wait_time() == pytest.approx(MIDNIGHT + DAY + RESET_GRACE_SECONDS - clock.time())
    clock.advance(ledger.wait_time())
    assert ledger.snapshot().used == 0
    ledger.spend()
    assert ledger.snapshot().used == 1


def test_a_restart_neither_forgets_the_day_nor_the_last_request(spool: Spool) -> None:
    clock = FakeClock(MIDNIGHT + 3600)
    first = _ledger(spool, clock, daily=4)
    _drain(first, clock, 3)
    # A new process on the same spool, a moment later.
    clock.advance(0.1)
    second = _ledger(spool, clock, daily=4)
    assert second.snapshot().used == 3
    assert second.wait_time() >= 1.25 - 0.1 - 1e-9
    _drain(second, clock, 1)
    assert second.wait_time() > 3600  # the fourth was the last of the day


def test_every_restart_in_a_crash_loop_still_counts(spool: Spool) -> None:
    clock = FakeClock(MIDNIGHT + 3600)
    for _ in range(10):
        ledger = _ledger(spool, clock, daily=10)
        clock.advance(ledger.wait_time())
        ledger.spend()
    assert _ledger(spool, clock, daily=10).wait_time() > 3600


def test_reset_time_is_configurable(spool: Spool) -> None:
    clock = FakeClock(MIDNIGHT + 6 * 3600)
    ledger = _ledger(spool, clock, daily=1, reset=dt.time(7, 30))
    assert ledger.resets_at(clock.time()) == MIDNIGHT + 7.5 * 3600
    _drain(ledger, clock, 1)
    assert ledger.wait_time() == pytest.approx(
        MIDNIGHT + 7.5 * 3600 + RESET_GRACE_SECONDS - clock.time()
    )


def test_limit_exceeded_from_the_gateway_parks_until_reset(spool: Spool) -> None:
    clock = FakeClock(MIDNIGHT + 3600)
    ledger = _ledger(spool, clock, daily=10)
    _drain(ledger, clock, 1)
    ledger.mark_exhausted()
    assert ledger.snapshot().exhausted
    assert ledger.wait_time() == pytest.approx(MIDNIGHT + DAY + RESET_GRACE_SECONDS - clock.time())


def test_too_many_requests_empties_the_bucket_and_pauses(spool: Spool) -> None:
    clock = FakeClock(MIDNIGHT + 3600)
    ledger = _ledger(spool, clock, rps=1.0, burst=5, daily=0)
    clock.advance(60)
    ledger.pause(3.0)
    assert ledger.wait_time() == pytest.approx(3.0)


def test_zero_daily_requests_means_no_daily_limit(spool: Spool) -> None:
    clock = FakeClock(MIDNIGHT + 3600)
    ledger = _ledger(spool, clock, rps=100.0, burst=100, daily=0, margin=0.0)
    _drain(ledger, clock, 250)
    assert ledger.limit is None
    assert ledger.wait_time() < 1.0


def test_a_clock_set_back_does_not_stall_the_next_request(spool: Spool) -> None:
    clock = FakeClock(MIDNIGHT + 7200)
    first = _ledger(spool, clock, daily=0)
    _drain(first, clock, 1)
    clock.set_time(MIDNIGHT + 3600)  # an hour back, as after a bad RTC and then NTP
    second = _ledger(spool, clock, daily=0)
    assert second.wait_time() <= 1.25 + 1e-9


def test_nothing_is_sent_in_the_minute_either_side_of_the_reset(spool: Spool) -> None:
    clock = FakeClock(MIDNIGHT + DAY - 30)  # 23:59:30, plenty of quota left
    ledger = _ledger(spool, clock, daily=10)
    clock.advance(5)
    assert ledger.wait_time() == pytest.approx(25 + RESET_GRACE_SECONDS)
    clock.advance(ledger.wait_time())  # 00:01:00 by our clock
    assert ledger.wait_time() == 0
    ledger.spend()


def test_changing_reset_utc_mid_day_does_not_grant_a_fresh_day(spool: Spool) -> None:
    clock = FakeClock(MIDNIGHT + 6 * 3600)
    _drain(_ledger(spool, clock, daily=3), clock, 3)
    moved = _ledger(spool, clock, daily=3, reset=dt.time(3, 0))  # period now began at 03:00
    assert moved.snapshot().used == 3
    assert moved.wait_time() > 3600


def test_limit_exceeded_parks_until_reset_even_without_a_daily_limit(spool: Spool) -> None:
    # daily_requests = 0 means "no limit we know of"; the gateway's verdict still holds.
    clock = FakeClock(MIDNIGHT + 3600)
    ledger = _ledger(spool, clock, daily=0)
    _drain(ledger, clock, 1)
    ledger.mark_exhausted()
    assert ledger.snapshot().exhausted
    assert ledger.wait_time() == pytest.approx(MIDNIGHT + DAY + RESET_GRACE_SECONDS - clock.time())


def test_requests_under_the_old_reset_utc_count_with_the_new_ones(spool: Spool) -> None:
    # 2 sent under a 00:00 reset, then the reset is corrected to 03:00: the gateway's day may
    # hold both periods' requests, so only 1 more fits in a limit of 3.
    clock = FakeClock(MIDNIGHT + 6 * 3600)
    _drain(_ledger(spool, clock, daily=3), clock, 2)
    moved = _ledger(spool, clock, daily=3, reset=dt.time(3, 0))
    _drain(moved, clock, 1)
    assert moved.snapshot().used == 3
    assert moved.wait_time() > 3600


def test_without_a_daily_limit_only_an_exhausted_day_holds_back_the_next(spool: Spool) -> None:
    clock = FakeClock(MIDNIGHT + DAY - 30)
    ledger = _ledger(spool, clock, daily=0)
    clock.advance(5)
    assert ledger.wait_time() == 0  # no blackout to keep a count exact
    ledger.mark_exhausted()  # the key's plan had a limit after all
    assert ledger.wait_time() == pytest.approx(25 + RESET_GRACE_SECONDS)
    clock.advance(30)  # 00:00:05: the new day, but inside the grace after an exhausted one
    assert ledger.wait_time() == pytest.approx(RESET_GRACE_SECONDS - 5)


def test_the_next_interval_runs_from_the_answer_not_from_the_token(spool: Spool) -> None:
    """A request that reaches the gateway late (a busy CPU, a slow link) must not let the next
    one arrive less than an interval after it: the bucket does not refill while one is in
    flight."""
    clock = FakeClock(MIDNIGHT + 3600)
    ledger = _ledger(spool, clock, daily=0)
    clock.advance(ledger.wait_time())
    ledger.spend()
    clock.advance(0.9)  # the request is still on its way; the gateway may count it only now
    assert ledger.wait_time() > 0
    ledger.answered()
    assert ledger.wait_time() == pytest.approx(1.25)
    clock.advance(1.25)
    assert ledger.wait_time() == 0


# -- requests another process sends on the key (`check --probe`) -----------------------------------


def test_a_probe_waits_for_the_slot_after_the_daemons_last_request(spool: Spool) -> None:
    clock = FakeClock(MIDNIGHT + 3600)
    daemon = _ledger(spool, clock)
    [sent] = _drain(daemon, clock, 1)
    clock.advance(0.3)
    probe = _ledger(spool, clock)
    assert probe.spend_outside() == 2
    assert clock.waits == [pytest.approx(1.25 - 0.3)]
    assert spool.last_request_at() == pytest.approx(sent + 1.25)


def test_two_probes_back_to_back_go_one_interval_after_the_first_ones_answer(
    spool: Spool,
) -> None:
    clock = FakeClock(MIDNIGHT + 3600)
    first, second = _ledger(spool, clock), _ledger(spool, clock)
    assert first.spend_outside() == 1
    assert clock.waits == []  # nothing sent before: the first goes at once
    clock.advance(0.2)  # its answer
    first.outside_answered()
    answered = clock.time()
    assert second.spend_outside() == 2
    assert spool.last_request_at() == pytest.approx(answered + 1.25)
    assert clock.time() - answered >= 1.0  # the gateway's interval, from the first's arrival


def test_a_probe_waits_out_the_resets_grace_window_and_not_a_used_day(spool: Spool) -> None:
    clock = FakeClock(MIDNIGHT + DAY - 10)  # ten seconds before the reset
    assert _ledger(spool, clock, daily=1).spend_outside() == 1
    assert clock.time() == pytest.approx(MIDNIGHT + DAY + RESET_GRACE_SECONDS)
    used = _ledger(spool, clock, daily=1)
    clock.advance(5)
    assert used.spend_outside() is None  # the day's one request is spent: no wait, no count
    assert spool.quota_period(MIDNIGHT + DAY) == (1, False)


def test_the_slot_is_checked_and_taken_in_one_transaction(spool: Spool) -> None:
    spool.quota_spend(MIDNIGHT, at=MIDNIGHT + 100.0)
    used, wait = spool.quota_spend_spaced(MIDNIGHT, at=MIDNIGHT + 100.5, gap=1.25)
    assert used is None
    assert wait == pytest.approx(0.75)
    assert spool.quota_period(MIDNIGHT) == (1, False)  # refused: nothing counted
    assert spool.quota_spend_spaced(MIDNIGHT, at=MIDNIGHT + 101.25, gap=1.25) == (2, 0.0)
    # A wall clock set back an hour waits one gap at most.
    assert spool.quota_spend_spaced(MIDNIGHT, at=MIDNIGHT + 101.25 - 3600, gap=1.25) == (
        None,
        1.25,
    )


def test_the_running_daemon_waits_one_interval_after_a_probes_request(spool: Spool) -> None:
    clock = FakeClock(MIDNIGHT + 3600)
    daemon = _ledger(spool, clock, burst=5, daily=0)
    clock.advance(60)  # its bucket is full
    assert daemon.wait_time() == 0
    probe = _ledger(spool, clock, daily=0)
    assert probe.spend_outside() == 1
    clock.advance(0.2)
    probe.outside_answered()
    assert daemon.wait_time() == pytest.approx(1.25)
    clock.advance(1.25)
    daemon.spend()
    daemon.answered()
    assert daemon.wait_time() == 0  # its own request: the burst is still its own


def test_a_request_stamped_after_a_clock_set_back_holds_the_daemon_one_interval_only(
    spool: Spool,
) -> None:
    # A probe (or an earlier run) counted a request with the wall clock an hour ahead; the clock
    # was then set back. The running daemon waits one interval from seeing it, then sends.
    clock = FakeClock(MIDNIGHT + 3600)
    daemon = _ledger(spool, clock, daily=0)
    clock.advance(60)
    spool.quota_spend(MIDNIGHT, at=clock.time() + 3600)
    waited = 0.0
    while (wait := daemon.wait_time()) > 0 and waited < 60:
        clock.advance(wait)
        waited += wait
    assert waited == pytest.approx(1.25)
    daemon.spend()


def test_a_probe_after_a_clock_set_back_waits_one_interval_then_goes(spool: Spool) -> None:
    clock = FakeClock(MIDNIGHT + 3600)
    spool.quota_spend(MIDNIGHT, at=clock.time() + 3600)  # stamped before the clock went back
    started = clock.monotonic()
    assert _ledger(spool, clock, daily=0).spend_outside() == 2
    assert clock.monotonic() - started == pytest.approx(1.25)
