"""The quota ledger: the client's copy of the usage plan, so no request is refused for quota.

Two limits, as API Gateway enforces them per API key:

* rate and burst: a token bucket. Ours refills one token every ``1/rate + margin`` seconds and
  starts empty, so it never holds more tokens than the gateway's; the margin absorbs jitter.
  It does not refill while a request is in flight: the gateway counts a request when it
  arrives, which may be well after the token was taken (a busy machine, a slow link), so the
  next interval runs from the answer, the one instant known to follow that arrival.
* requests per period (a UTC day starting at ``reset_utc``): counted in the spool *before* each
  request is sent, so neither a restart nor a crash loop can spend the day twice. Every request
  counts, retries included.

A ``429 Limit Exceeded`` from the gateway marks the period exhausted whatever our count says
(another client may share the key), and nothing is sent until the next reset.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass

from exportsync.clock import Clock
from exportsync.pacing import QuotaView
from exportsync.spool import Spool

__all__ = ["RESET_GRACE_SECONDS", "QuotaLedger", "QuotaSnapshot"]

DAY = 86_400.0
# AWS documents no exact instant for the daily reset and clocks drift: no request is sent this
# close to a reset, on either side of it.
RESET_GRACE_SECONDS = 60.0
# Float noise in the bucket arithmetic; far below any timing that matters.
_EPSILON = 1e-6


@dataclass(frozen=True)
class QuotaSnapshot:
    """The ledger as `exportsync status` shows it."""

    used: int
    limit: int | None
    resets_at: float
    exhausted: bool
    next_request_in: float


class QuotaLedger:
    """Decides when the next request may go, and records each one before it goes."""

    def __init__(
        self,
        spool: Spool,
        *,
        requests_per_second: float,
        burst: int,
        daily_requests: int,
        reset_utc: dt.time,
        margin_seconds: float,
        clock: Clock,
    ) -> None:
        if requests_per_second <= 0 or burst < 1 or daily_requests < 0 or margin_seconds < 0:
            raise ValueError("invalid quota settings")
        self._spool = spool
        self._clock = clock
        self._interval = 1.0 / requests_per_second + margin_seconds
        self._burst = float(burst)
        self._limit = daily_requests or None
        self._offset = reset_utc.hour * 3600.0 + reset_utc.minute * 60.0 + reset_utc.second
        # The bucket starts empty, and a request made by a previous run is honoured too.
        self._tokens = 0.0
        self._stamp = clock.monotonic()
        self._own_last: float | None = None  # when this ledger's last request was counted
        self._paused_until = 0.0
        self._last_period: float | None = None
        self._in_flight = False

    @property
    def limit(self) -> int | None:
        """Requests allowed per period, or None for no daily limit."""
        return self._limit

    def period_start(self, at: float) -> float:
        """Epoch seconds at which the quota period holding `at` began."""
        return ((at - self._offset) // DAY) * DAY + self._offset

    def resets_at(self, at: float) -> float:
        return self.period_start(at) + DAY

    def snapshot(self) -> QuotaSnapshot:
        now = self._clock.time()
        used, exhausted = self._period(self.period_start(now), now)
        return QuotaSnapshot(
            used=used,
            limit=self._limit,
            resets_at=self.resets_at(now),
            exhausted=exhausted or (self._limit is not None and used >= self._limit),
            next_request_in=self.wait_time(),
        )

    def view(self) -> QuotaView:
        """The day as the pacing policy sees it. A day the gateway said was over counts as used."""
        now = self._clock.time()
        start = self.period_start(now)
        used, exhausted = self._period(start, now)
        if exhausted and self._limit is not None:
            used = max(used, self._limit)
        return QuotaView(
            limit=self._limit,
            used=used,
            period_start=start,
            resets_at=start + DAY,
            last_request_at=self._spool.last_request_at(),
        )

    def request_left(self) -> bool:
        """Whether today's usage plan has a request left (always, without a daily limit)."""
        view = self.view()
        return view.limit is None or view.used < view.limit

    def spend_outside(self, stop: threading.Event | None = None) -> int | None:
        """Count a request another process sends on this key (`check --probe`) in the day's
        ledger, before it goes, once the day and the per-second slot let it go: the period's
        new count, or None when the day has no request left (or `stop` was set).

        It waits as the daemon's own requests wait: out of the reset's grace window, and one
        interval after the spool's last request (the daemon's, or another probe's). The slot
        is taken in one spool transaction; the waits hold no lock.
        """
        stop = stop or threading.Event()
        while not stop.is_set():
            now = self._clock.time()
            if self._day_over(now):
                return None
            wait = self._daily_wait(now)
            if wait <= _EPSILON:
                used, wait = self._spool.quota_spend_spaced(
                    self.period_start(now), at=now, gap=self._interval
                )
                if used is not None:
                    return used
            self._clock.wait(wait, stop)
        return None

    def outside_answered(self) -> None:
        """The request `spend_outside` counted has its answer (or failed): the next request on
        the key is spaced from now, as the daemon's bucket refills from an answer."""
        self._spool.quota_answered(self._clock.time())

    def _day_over(self, now: float) -> bool:
        """The day's requests are used up, or the gateway said so."""
        used, exhausted = self._period(self.period_start(now), now)
        return exhausted or (self._limit is not None and used >= self._limit)

    def wait_time(self) -> float:
        """Seconds until a request may be sent; 0 means now."""
        now = self._clock.time()
        wait = max(self._daily_wait(now), self._rate_wait(now))
        return wait if wait > _EPSILON else 0.0

    def _daily_wait(self, now: float) -> float:
        start = self.period_start(now)
        end = start + DAY
        used, exhausted = self._period(start, now)
        # A gateway `Limit Exceeded` parks us even without a daily limit of our own: the key's
        # usage plan may have one we were not told about.
        if exhausted or (self._limit is not None and used >= self._limit):
            return end + RESET_GRACE_SECONDS - now
        if self._limit is None:
            # No count of ours to keep exact; only a day the gateway said was over holds us back.
            _, was_exhausted = self._spool.quota_overlapping(start - 2 * DAY, start - 1.0)
            if was_exhausted and now - start < RESET_GRACE_SECONDS:
                return start + RESET_GRACE_SECONDS - now
            return 0.0
        # Around the reset our clock and the gateway's may disagree on which day a request
        # belongs to; sending nothing in that window keeps both days' counts exact.
        if end - now < RESET_GRACE_SECONDS:
            return end + RESET_GRACE_SECONDS - now
        if now - start < RESET_GRACE_SECONDS:
            return start + RESET_GRACE_SECONDS - now
        return 0.0

    def _period(self, start: float, now: float) -> tuple[int, bool]:
        """(used, exhausted) for the period starting at `start`, as an upper bound.

        Rows of periods that began within the last day count too: they exist when `reset_utc` was
        changed, and the gateway still counts those requests in its current day.
        """
        return self._spool.quota_overlapping(start - DAY, now)

    def _refill(self) -> None:
        mono = self._clock.monotonic()
        if not self._in_flight:
            elapsed = max(0.0, mono - self._stamp)
            self._tokens = min(self._burst, self._tokens + elapsed / self._interval)
        self._stamp = mono

    def _rate_wait(self, now: float) -> float:
        self._refill()
        wait = max(0.0, self._outside_wait(now), self._paused_until - self._clock.monotonic())
        if self._tokens < 1.0:
            wait = max(wait, (1.0 - self._tokens) * self._interval)
        return wait

    def _outside_wait(self, now: float) -> float:
        """One interval after the spool's last request when another process sent it (a previous
        run, `check --probe`): this bucket never saw it. One stamped later than now (the wall
        clock was set back since) is brought back to now, so it holds one interval, not until
        the clock catches up."""
        last = self._spool.last_request_at()
        if last is None or last == self._own_last:
            return 0.0
        if last > now:
            self._spool.quota_bring_back(now)
            return self._interval
        return last + self._interval - now

    def spend(self) -> int:
        """Record one request about to be sent (durably, before it goes); the period's new count.

        Raises RuntimeError when the ledger says no: callers ask `wait_time()` first.
        """
        if self.wait_time() > 0:
            raise RuntimeError("quota ledger: a request was attempted before its time")
        now = self._clock.time()
        self._last_period = self.period_start(now)
        used = self._spool.quota_spend(self._last_period, at=now)
        self._own_last = now
        self._refill()
        self._tokens -= 1.0
        self._in_flight = True
        return used

    def answered(self) -> None:
        """The request spent last has its answer (or failed): the bucket refills from now on."""
        self._refill()
        self._in_flight = False

    def refund(self) -> None:
        """The last request never left this machine (no connection): give its count back.

        Only for failures that prove the gateway saw nothing (DNS, refused, TLS handshake), so an
        offline laptop does not burn the day on attempts that never arrived.
        """
        if self._last_period is not None:
            self._spool.quota_refund(self._last_period)
            self._last_period = None
            self._tokens = min(self._burst, self._tokens + 1.0)

    def assume_spent(self) -> None:
        """The count of the current period was lost (a damaged spool was set aside): count the
        period as used up to the limit, so no request the gateway might refuse is sent before
        the next reset. Without a daily limit there is no count to protect."""
        if self._limit is not None:
            now = self._clock.time()
            self._spool.quota_raise_to(self.period_start(now), self._limit)

    def mark_exhausted(self) -> None:
        """The gateway answered `Limit Exceeded`: nothing more until the next reset."""
        self._spool.quota_mark_exhausted(self.period_start(self._clock.time()))

    def pause(self, seconds: float) -> None:
        """The gateway answered `Too Many Requests`: empty the bucket and hold off for `seconds`."""
        self._refill()
        self._tokens = 0.0
        self._paused_until = self._clock.monotonic() + seconds
