"""Time as a dependency: the quota ledger, backoff and the loop take a Clock; tests pass a fake."""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Protocol

__all__ = ["Clock", "FakeClock", "SystemClock", "iso_utc"]


class Clock(Protocol):
    """Wall time for persisted schedules, monotonic time for spacing, and an interruptible wait."""

    def time(self) -> float:
        """Seconds since the epoch (UTC); persisted and compared across restarts."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin that never goes backwards."""
        ...

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        """Wait up to `seconds` or until `stop` is set; True when `stop` ended the wait."""
        ...


class SystemClock:
    """The real clock."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        return stop.wait(max(0.0, seconds))


class FakeClock:
    """A clock that only moves when told to; `wait` advances it instantly."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = start
        self._mono = 1000.0
        self.waits: list[float] = []

    def time(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self._now += seconds
        self._mono += seconds

    def set_time(self, epoch: float) -> None:
        """Jump wall time (as after a reboot); monotonic time moves by the same amount."""
        delta = epoch - self._now
        self._now = epoch
        self._mono += max(0.0, delta)

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        if stop.is_set():
            return True
        self.waits.append(seconds)
        self.advance(max(0.0, seconds))
        return stop.is_set()


def iso_utc(epoch: float) -> str:
    """``2026-11-25T10:02:11Z``: how logs and `status` show a moment."""
    moment = dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="seconds")
    return moment.replace("+00:00", "Z")
