"""When the next request goes: a pure function of the backlog, the time, the day's quota and the
pacing settings. `Deliverer.step()` asks it before every request; `status` asks it to explain.

Without a daily limit a request costs nothing worth saving: whatever is due goes at once.

With a daily limit every request is precious:

* files written together travel together: a batch goes only once the folder has been quiet for
  `quiet_seconds` since the newest waiting file arrived (a file the intake still holds arrives
  now; at most `MAX_QUIET_SECONDS` after the oldest, so a folder that never goes quiet is still
  served);
* the first `prompt_requests` requests of a day go as soon as that quiet window ends;
* a full request (the backlog needs more than one) goes at once: waiting cannot fill it further;
* the rest of the day's requests, minus `reserve_requests` (at most a fifth of the day), are
  spread evenly between the last
  request and the last call (`last_call_seconds` before the reset), so exports late in the day
  still find one;
* at the last call everything waiting goes, the reserve included; exports after it spend what is
  left, one request each, until the reset.

Once the spool knows enough past days of today's kind (`exportsync.history`), the prompt
requests and the even spread give way to a plan against those days (`_learned`,
`exportsync.scenarios`): each past day is a sample of what still comes today (what came after
its n-th export, n being today's count so far; what came after this time of day where that
export came more than half a day from today's latest; left out once its next export is long
overdue);
what waits goes at the first instant at which, on those samples on average, holding it saves
less than the request costs the rest of the day.
The quiet window, a full request and the last call stay; the reserve stays whole while past
days had exports still to come, and shrinks to the one request of the last call once they say
nothing more comes; where past days had exports after the last call, it keeps one for each
likely then besides.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from exportsync.backlog import Backlog
from exportsync.history import Day, History, Outlook, weekend
from exportsync.scenarios import send_offset
from exportsync.schema import Range, as_float, as_int, setting

__all__ = [
    "MAX_QUIET_SECONDS",
    "MOST_SHIFT_SECONDS",
    "OVERDUE_FACTOR",
    "OVERDUE_SECONDS",
    "RESERVE_SHARE",
    "Pacing",
    "Plan",
    "QuotaView",
    "plan",
    "plan_backlog",
]

# However busy the folder, a waiting file is held back by the quiet window for at most this long.
MAX_QUIET_SECONDS = 30.0
# The reserve is at most 1/RESERVE_SHARE of the day's requests (2 of 10, none of 4).
RESERVE_SHARE = 5
# Learned pacing: a past day stops telling today once its next export is overdue by
# OVERDUE_FACTOR times its gap after today's latest export, plus OVERDUE_SECONDS (so a burst's
# random gaps do not drop the days it went on; bench/bench_pacing.py's traces over seeds 1-5).
OVERDUE_FACTOR = 3.0
OVERDUE_SECONDS = 300.0
# Learned pacing: a past day is lined up with today by count only while its n-th export came
# within half a day of today's latest; further apart, by the time of day.
MOST_SHIFT_SECONDS = 43_200.0

Reason = Literal[
    "idle",
    "now",
    "quiet",
    "prompt",
    "full",
    "paced",
    "learned",
    "reserve",
    "last_call",
    "day_used",
    "send_now",  # a person ran `exportsync send-now` (sendnow.honour), never this policy
]


@dataclass(frozen=True)
class Pacing:
    """The policy's knobs (config keys under [quota])."""

    quiet_seconds: float = setting(2.0, as_float, Range(0, 3600))
    prompt_requests: int = setting(4, as_int, Range(low=0))
    reserve_requests: int = setting(2, as_int, Range(low=0))
    last_call_seconds: float = setting(
        1800.0, as_float, Range(0, 43_200, says="must be between {low} and {high} (12 h)")
    )
    # Past days the policy learns from (0: it does not learn, and paces as with no history).
    learn_days: int = setting(
        14, as_int, Range(0, 60, says="must be between {low} (do not learn) and {high}")
    )


@dataclass(frozen=True)
class QuotaView:
    """The day as the policy needs it: the limit (None: no daily limit), what is used, when the
    period began and resets, and when the last request went (None: never)."""

    limit: int | None
    used: int
    period_start: float
    resets_at: float
    last_request_at: float | None


@dataclass(frozen=True)
class Plan:
    """The decision: send at `send_at` (None: nothing waits), and why."""

    send_at: float | None
    reason: Reason
    left: int | None  # requests left today (None: no daily limit)
    reserve: int  # of those, kept for late exports
    # What the past days said, in words, when the policy learned from them (`status` shows it).
    why: str | None = None

    def wait(self, now: float) -> float | None:
        return None if self.send_at is None else max(0.0, self.send_at - now)


def plan(
    backlog: Backlog,
    now: float,
    quota: QuotaView,
    pacing: Pacing,
    history: History | None = None,
    *,
    today: Sequence[float] = (),
) -> Plan:
    """When the next request for `backlog` may go (the rate limit is the ledger's business).

    `history`: the past days' exports (`exportsync.history`); without enough of them the policy
    paces as it always has."""
    if backlog.items == 0:
        left = None if quota.limit is None else max(0, quota.limit - quota.used)
        return Plan(None, "idle", left, 0)
    if quota.limit is None:
        return Plan(now, "now", None, 0)
    left = quota.limit - quota.used
    # A small plan keeps a smaller reserve: never more than a fifth of its day.
    kept = min(pacing.reserve_requests, quota.limit // RESERVE_SHARE)
    reserve = min(kept, max(0, left))
    if left <= 0:
        return Plan(max(now, quota.resets_at), "day_used", 0, 0)
    quiet_end = _quiet_end(backlog, pacing)
    last_call = quota.resets_at - pacing.last_call_seconds
    if now >= last_call:
        return Plan(max(now, quiet_end), "last_call", left, 0)
    outlook = None
    if history is not None and pacing.learn_days > 0:
        outlook = history.outlook(
            now - quota.period_start, weekend_today=weekend(quota.period_start)
        )
    if outlook is not None:
        return _learned(
            backlog,
            outlook,
            now,
            quota,
            kept=kept,
            quiet_end=quiet_end,
            last_call=last_call,
            today=today,
        )
    spendable = left - kept
    if spendable <= 0:
        return Plan(max(now, last_call, quiet_end), "reserve", left, reserve)
    if backlog.requests_needed > 1:
        return Plan(now, "full", left, reserve)
    if quota.used < pacing.prompt_requests:
        return Plan(max(now, quiet_end), "prompt" if quiet_end <= now else "quiet", left, reserve)
    anchor = max(quota.period_start, quota.last_request_at or quota.period_start)
    paced = anchor + max(0.0, last_call - anchor) / (spendable + 1)
    if paced <= now:
        return Plan(max(now, quiet_end), "paced" if quiet_end <= now else "quiet", left, reserve)
    return Plan(max(paced, quiet_end), "paced", left, reserve)


def _learned(
    backlog: Backlog,
    outlook: Outlook,
    now: float,
    quota: QuotaView,
    *,
    kept: int,
    quiet_end: float,
    last_call: float,
    today: Sequence[float],
) -> Plan:
    """Plan against the past days as samples of the rest of today (`exportsync.scenarios`):
    send what waits at the first instant at which, on those days on average, holding it would
    not save more than the request costs the rest of the day.

    One request always stays for the last call (the past days' leftovers go there, and a day
    unlike them still finds it); the whole reserve while past days had exports still to come;
    and where they had exports after the last call, one more for each export likely then.
    Everything else is spent as the past days say it pays."""
    assert quota.limit is not None
    left = quota.limit - quota.used
    start = quota.period_start
    end = last_call - start
    late = outlook.likely_at(end)
    # The last call's request and one for each export likely after it; else the reserve while
    # past days had more to come today, then the last call's request alone.
    keep = min(left, max(kept, 1 + late) if late else kept if outlook.likely else min(kept, 1))
    budget = left - keep
    words = _outlook_words(outlook, now)
    why = f"{words}; {_n(left, 'request')} left, {keep} kept for the last call"
    if budget <= 0:
        # The reserve shrinks to one request once the past days say nothing more comes.
        free = outlook.settles_at(0) if late == 0 and left > 1 else None
        until = last_call if free is None else min(last_call, start + free)
        return Plan(max(now, until, quiet_end), "reserve", left, keep, why)
    if backlog.requests_needed > 1:
        return Plan(now, "full", left, keep, why)
    at = max(now, quiet_end)
    offset = send_offset(
        _scenarios(outlook, backlog, start, today, at - start),
        now=at - start,
        files=backlog.items,
        budget=budget,
        end=end,
        limit=quota.limit,
    )
    send_at = max(at, start + offset)
    reason: Reason = "quiet" if send_at == quiet_end > now else "learned"
    return Plan(send_at, reason, left, keep, why)


def _scenarios(
    outlook: Outlook, backlog: Backlog, start: float, today: Sequence[float], at: float
) -> list[Day]:
    """The rest of today, from offset `at`, as each past day saw it. Today has brought n
    exports so far; on a past day, what came after its n-th export, moved so that export is
    today's latest (a run of work goes on as it went there); a past day with fewer than n says
    nothing more comes. A past day whose n-th export came more than MOST_SHIFT_SECONDS from
    today's latest is read by the time of day (what came there after today's latest), as is
    every past day when today has no exports yet. A past day whose next export would be
    overdue by now (OVERDUE_*) is left out."""
    latest = (backlog.newest_at if backlog.newest_at is not None else start) - start
    if not today:
        return [tuple(e for e in day if e[0] > latest) for day in outlook.chosen]
    n = len(today)
    found: list[Day] = []
    for day in outlook.chosen:
        if len(day) < n:
            found.append(())
            continue
        anchor = day[n - 1][0]
        if abs(latest - anchor) > MOST_SHIFT_SECONDS:
            # Its n-th export came in another part of the day (a night shift's evening, where
            # today's morning was busier): moved here, that evening would seem to come now.
            found.append(tuple(e for e in day if e[0] > latest))
            continue
        found.append(tuple((latest + o - anchor, w) for o, w in day[n:]))
    # A past day whose next export should long have come no longer tells today (unless none
    # is left that does).
    waited = at - latest
    still = [
        d for d in found if not d or OVERDUE_FACTOR * (d[0][0] - latest) + OVERDUE_SECONDS >= waited
    ]
    return still or found


def _outlook_words(outlook: Outlook, now: float) -> str:
    clock = time.strftime("%H:%M", time.gmtime(now))
    text = f"usually {_n(outlook.usual, 'more export')} after {clock}Z"
    if outlook.likely != outlook.usual:
        text += f" ({outlook.likely} on a busy {outlook.kind})"
    return text


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def plan_backlog(
    backlog: Backlog,
    now: float,
    quota: QuotaView,
    pacing: Pacing,
    history: History | None = None,
    *,
    today: Sequence[float] = (),
) -> float | None:
    """When the whole backlog will have gone, by the same policy; None if it all goes now.

    Assumes nothing new arrives; each request is taken to carry a full share of the backlog.
    """
    if backlog.items == 0:
        return None
    at = now
    view = quota
    for sent in range(backlog.requests_needed):
        rest = Backlog(
            items=backlog.items,
            bytes=backlog.bytes,
            requests_needed=backlog.requests_needed - sent,
            oldest_at=backlog.oldest_at,
            newest_at=backlog.newest_at,
            arrived_sum=backlog.arrived_sum,
        )
        decision = plan(rest, at, view, pacing, history, today=today)
        assert decision.send_at is not None
        at = decision.send_at
        if at >= view.resets_at:
            today = ()
            view = QuotaView(view.limit, 0, view.resets_at, view.resets_at + 86_400.0, None)
            at = max(at, view.period_start)
            decision = plan(rest, at, view, pacing, history)
            assert decision.send_at is not None
            at = decision.send_at
        view = QuotaView(view.limit, view.used + 1, view.period_start, view.resets_at, at)
    return None if at <= now else at


def _quiet_end(backlog: Backlog, pacing: Pacing) -> float:
    if backlog.newest_at is None or backlog.oldest_at is None:
        return 0.0
    return min(
        backlog.newest_at + pacing.quiet_seconds,
        backlog.oldest_at + max(pacing.quiet_seconds, MAX_QUIET_SECONDS),
    )
