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
