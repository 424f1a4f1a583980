"""The usage plan's rate limit: a token bucket of `burst` tokens refilled at `rate` per second."""

from __future__ import annotations

import threading

from .clock import Clock

__all__ = ["TokenBucket"]


class TokenBucket:
    """API Gateway's throttle model; `rate == 0` means unlimited (no throttling at all)."""

    def __init__(self, rate: float, burst: int, clock: Clock) -> None:
        if rate < 0:
            raise ValueError("rate must be >= 0")
        if rate > 0 and burst < 1:
            raise ValueError("burst must be >= 1 when rate > 0")
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._lock = threading.Lock()
        # A fresh plan starts with a full bucket, as a new API key does.
        self._tokens = self._burst
        self._last = clock.monotonic()

    @property
    def unlimited(self) -> bool:
        return self._rate == 0

    def try_acquire(self, at: float | None = None) -> bool:
        """Take one token if there is one; False means the request is throttled.

        `at` is when the request arrived (the clock's monotonic time, default now): the
        emulator's own delays (reading the body, a busy CPU) must not shorten the gap between
        a key's requests.
        """
        if self.unlimited:
            return True
        with self._lock:
            now = self._clock.monotonic() if at is None else at
            elapsed = max(0.0, now - self._last)
            self._last = max(self._last, now)
            self._tokens = min(self._burst, self._tokens + elapsed * self._rate)
            # Tolerate float dust so exactly 1/rate seconds later a token is there.
            if self._tokens >= 1.0 - 1e-9:
                self._tokens = max(0.0, self._tokens - 1.0)
                return True
            return False
