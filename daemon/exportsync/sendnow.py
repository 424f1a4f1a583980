"""`exportsync send-now`: a person's request that overrides the pacing policy's hold.

The command writes the time of asking into the spool and wakes the daemon (SIGUSR1); the
delivery step, before every request, passes the pacing decision through `honour`, which sends
at once while anything that was waiting at that time still waits, the day's reserve included.
Once it has all gone (or the day has no request left) the request is cleared. Nothing else in
the daemon knows about it.
"""

from __future__ import annotations

from dataclasses import replace

from exportsync.backlog import Backlog
from exportsync.pacing import Plan
from exportsync.spool import SEND_NOW_KEY, Spool

__all__ = ["applies", "honour", "request", "requested_at"]


def request(spool: Spool, now: float) -> None:
    """Ask the daemon to send everything waiting at `now`."""
    spool.meta_set(SEND_NOW_KEY, repr(now))


def requested_at(spool: Spool) -> float | None:
    raw = spool.meta_get(SEND_NOW_KEY)
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


def applies(asked: float | None, decision: Plan, backlog: Backlog) -> bool:
    """Whether a send-now request asked at `asked` still overrides `decision`: something that
    was waiting then still waits, and the day has a request left."""
    if asked is None or backlog.oldest_at is None or backlog.oldest_at > asked:
        return False
    return decision.send_at is not None and decision.left != 0


def honour(spool: Spool, decision: Plan, backlog: Backlog, now: float) -> Plan:
    """`decision`, or "send now" while a send-now request is open and its items still wait;
    a request that no longer applies is cleared (only the daemon calls this)."""
    raw = spool.meta_get(SEND_NOW_KEY)
    if raw is None:
        return decision
    if not applies(requested_at(spool), decision, backlog):
        # All of it went (what waits now came later), or the day has no request left.
        spool.meta_clear_if(SEND_NOW_KEY, raw)
        return decision
    return replace(decision, send_at=now, reason="send_now", reserve=0)
