"""The usage plan's rate/burst, driven by a fake clock."""

from __future__ import annotations

import pytest

from exportsync_devstack.clock import FakeClock
from exportsync_devstack.throttle import TokenBucket


def test_rate_one_burst_one_allows_one_request_per_second() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1.0, 1, clock)
    assert bucket.try_acquire()
    assert not bucket.try_acquire()
    clock.advance(0.999)
    assert not bucket.try_acquire()
    clock.advance(0.001)
    assert bucket.try_acquire()


def test_burst_allows_back_to_back_requests_then_refills_at_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(2.0, 3, clock)
    assert [bucket.try_acquire() for _ in range(4)] == [True, True, True, False]
    clock.advance(0.5)
    assert bucket.try_acquire()
    assert not bucket.try_acquire()


def test_idle_time_never_fills_past_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1.0, 2, clock)
    clock.advance(3600)
    assert [bucket.try_acquire() for _ in range(3)] == [True, True, False]


def test_refused_requests_do_not_use_tokens() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1.0, 1, clock)
    assert bucket.try_acquire()
    for _ in range(5):
        clock.advance(0.1)
        assert not bucket.try_acquire()
    clock.advance(0.5)
    assert bucket.try_acquire()


def test_rate_zero_is_unlimited() -> None:
    bucket = TokenBucket(0.0, 0, FakeClock())
    assert bucket.unlimited
    assert all(bucket.try_acquire() for _ in range(1000))


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="burst"):
        TokenBucket(1.0, 0, FakeClock())
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(-1.0, 1, FakeClock())


def test_the_bucket_meters_from_arrival_not_from_when_the_request_is_processed() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1.0, burst=1, clock=clock)
    first_arrival = clock.monotonic()
    clock.advance(0.5)  # the emulator was slow to get to the first request
    assert bucket.try_acquire(first_arrival)
    clock.advance(0.6)  # the second arrives 1.1 s after the first, 0.6 s after its processing
    assert bucket.try_acquire(clock.monotonic())


def test_an_earlier_arrival_processed_late_mints_no_token() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1.0, burst=1, clock=clock)
    early = clock.monotonic()
    clock.advance(2.0)
    assert bucket.try_acquire(clock.monotonic())
    assert not bucket.try_acquire(early)  # out of order: no time went by for the bucket
