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
requests and the even spread give way to what those days say (`_learned`): keep the requests the
rest of the day likely needs and spend the others at once; with none to spare, send when a run of
exports is likely over or what waits has been held longer than a request is worth. The quiet
window, a full request, the reserve and the last call stay as they are.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from exportsync.backlog import Backlog
from exportsync.history import History, Outlook, weekend

__all__ = [
    "MAX_QUIET_SECONDS",
    "RESERVE_SHARE",
    "WORTH_FACTOR",
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
# Learned pacing: with nothing to spare, what waits goes once it has been held this many times
# what a request saves the rest of a past day (file-seconds). 1 sends too soon on busy days
# (the day's last exports then wait for the last call), more holds quiet ones too long
# (bench/bench_pacing.py's traces over seeds 1-5).
WORTH_FACTOR = 2.0

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

    quiet_seconds: float = 2.0
    prompt_requests: int = 4
    reserve_requests: int = 2
    last_call_seconds: float = 1800.0
    # Past days the policy learns from (0: it does not learn, and paces as with no history).
    learn_days: int = 14


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
    spendable = left - kept
    if now >= last_call:
        return Plan(max(now, quiet_end), "last_call", left, 0)
    if spendable <= 0:
        return Plan(max(now, last_call, quiet_end), "reserve", left, reserve)
    if backlog.requests_needed > 1:
        return Plan(now, "full", left, reserve)
    outlook = None
    if history is not None and pacing.learn_days > 0:
        outlook = history.outlook(
            now - quota.period_start, weekend_today=weekend(quota.period_start)
        )
    if outlook is not None:
        return _learned(
            backlog, outlook, now, quota, kept=kept, quiet_end=quiet_end, last_call=last_call
        )
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
) -> Plan:
    """Keep what the rest of the day likely needs (never less than the reserve) and spend the
    rest at once. With nothing to spare, a request goes after a pause that, on past days, came
    seldom enough to afford one at each (the run of exports is likely over); or once what waits
    has been held (in file-seconds) twice what a request saves the rest of a past day, on
    average; or once the past days say enough is left."""
    assert quota.limit is not None
    left = quota.limit - quota.used
    keep = max(kept, outlook.likely)
    start = quota.period_start
    words = _outlook_words(outlook, now)
    if left - 1 >= keep:
        why = f"{words}; keeping {_n(keep, 'request')} of {left}"
        return Plan(
            max(now, quiet_end), "learned" if quiet_end <= now else "quiet", left, kept, why
        )
    spendable = left - kept
    free = outlook.settles_at(left - 1)
    free_at = last_call if free is None else start + free
    pause = outlook.telling_pause(spendable, last_call - start)
    paused_at = (backlog.newest_at if backlog.newest_at is not None else now) + pause
    worth = WORTH_FACTOR * outlook.request_worth(spendable, last_call - start)
    held = backlog.held(now)
    paid_at = now if held >= worth else now + (worth - held) / max(1, backlog.items)
    send_at = max(now, quiet_end, min(free_at, paused_at, paid_at, last_call))
    why = f"{words}; {_n(left, 'request')} left for them"
    return Plan(send_at, "learned", left, kept, why)


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
        decision = plan(rest, at, view, pacing, history)
        assert decision.send_at is not None
        at = decision.send_at
        if at >= view.resets_at:
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
