"""The quota ledger the delivery tests drive: the real usage plan on a clock the test moves."""

from __future__ import annotations

import datetime as dt

from exportsync.clock import Clock
from exportsync.quota import QuotaLedger
from exportsync.spool import Spool

__all__ = ["plan_ledger"]


def plan_ledger(spool: Spool, clock: Clock, *, daily_requests: int = 10) -> QuotaLedger:
    """1 request/s, burst 1, a 0.25 s margin, the day reset at 00:00 UTC (0: no daily limit)."""
    return QuotaLedger(
        spool,
        requests_per_second=1.0,
        burst=1,
        daily_requests=daily_requests,
        reset_utc=dt.time(0, 0),
        margin_seconds=0.25,
        clock=clock,
    )
