"""`exportsync status`: the spool and the quota, as JSON (shape in README.md) or a table.

Reads the spool directly, so it works whether or not the daemon runs, and never needs the API key.
The same reading feeds `status --watch` (`live_report`) and the /metrics gauges (`read_spool`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from exportsync import __version__, sendnow
from exportsync.backlog import Backlog
from exportsync.clock import Clock, SystemClock, iso_utc
from exportsync.config import Config
from exportsync.fs.names import shown
from exportsync.history import History, exports_today, read_history
from exportsync.metrics import SpoolReading
from exportsync.pacing import Plan, plan, plan_backlog
from exportsync.quota import RESET_GRACE_SECONDS, QuotaLedger
from exportsync.runlock import running_pid
from exportsync.spool import API_KEY_REFUSED, API_STATE_KEY, API_UNREACHABLE, Spool
from exportsync.wiring import build_ledger
from exportsync.words import plural

__all__ = [
    "NextSend",
    "build_status",
    "headline",
    "live_report",
    "next_send",
    "read_spool",
    "render_table",
]

_LISTED = 50


def iso(epoch: float | None) -> str | None:
    return iso_utc(epoch) if epoch is not None else None


@dataclass(frozen=True)
class NextSend:
    """When the daemon's next request goes, as its own step would decide it: the due backlog
    now, else the backoff-waiting items once the first of them is due."""

    at: float | None
    decision: Plan
    backoff: bool = False  # nothing is due now: the next send waits for a retry's backoff


def next_send(
    config: Config, spool: Spool, ledger: QuotaLedger, now: float, history: History | None = None
) -> NextSend:
    """The one `next_send_at` that `status`, `status --watch` and the plan text show; `history`
    is read from the spool when the caller has not read it already."""
    limits = {
        "inline_max_bytes": config.api.inline_max_bytes,
        "max_entries": config.api.batch_max_files,
    }
    view = ledger.view()
    pacing = config.quota.pacing
    if history is None:
        history = read_history(spool, period_start=view.period_start, days=pacing.learn_days)
    today = exports_today(spool, period_start=view.period_start) if pacing.learn_days > 0 else []
    at = now
    backoff = False
    backlog = spool.backlog(now, **limits)
    if not backlog.items:
        due = spool.next_due_at()
        if due is None:
            return NextSend(None, plan(backlog, now, view, pacing, history, today=today))
        at = max(now, due)
        backlog = spool.backlog(at, **limits)
        backoff = True
    decision = plan(backlog, at, view, pacing, history, today=today)
    if sendnow.applies(sendnow.requested_at(spool), decision, backlog):
        decision = replace(decision, send_at=at, reason="send_now", reserve=0)
    send_at = decision.send_at if decision.send_at is not None else at
    if decision.reason == "day_used":
        # The ledger sends nothing until a minute past the reset (the two clocks may differ).
        send_at = max(send_at, ledger.resets_at(now) + RESET_GRACE_SECONDS)
    return NextSend(max(at, send_at), decision, backoff)


def build_status(config: Config, spool: Spool, ledger: QuotaLedger, clock: Clock) -> dict[str, Any]:
    """Everything `status --json` prints; no secret goes in here."""
    quota = ledger.snapshot()
    now = clock.time()
    pid = running_pid(config.state.dir)
    pending = spool.items("pending", limit=_LISTED)
    # Every pending item, retries waiting for their backoff included.
    backlog = spool.backlog(
        float("inf"),
        inline_max_bytes=config.api.inline_max_bytes,
        max_entries=config.api.batch_max_files,
    )
    view = ledger.view()
    pacing = config.quota.pacing
    # Read once: the next send and the backlog's ETA plan from the same past days.
    history = read_history(spool, period_start=view.period_start, days=pacing.learn_days)
    coming = next_send(config, spool, ledger, now, history)
    today = exports_today(spool, period_start=view.period_start) if pacing.learn_days > 0 else []
    eta = plan_backlog(backlog, now, view, pacing, history, today=today)
    if coming.at is not None and coming.at > now:
        eta = max(eta or coming.at, coming.at)
    counts = spool.counts()
    watch_set = "watch.dir" in config.explicit
    report: dict[str, Any] = {
        "version": __version__,
        "config": shown(config.path) if config.path is not None else None,
        "daemon": {"running": pid is not None, "pid": pid if pid and pid > 0 else None},
        # Only what the config names: a built-in default is no folder anyone is watching.
        "watch_dir": shown(config.watch.dir) if watch_set else None,
        # Seen from here, as the daemon sees it: while missing it delivers what is spooled and
        # waits for the folder to appear.
        "watch_dir_missing": watch_set and not os.path.isdir(config.watch.dir),
        "state_dir": shown(config.state.dir),
        "counts": counts,
        "quota": {
            "used": quota.used,
            "limit": quota.limit,
            "resets_at": iso(quota.resets_at),
            "exhausted": quota.exhausted,
            "next_request_in_seconds": round(quota.next_request_in, 3),
        },
        # Kept for older readers: the same instant as headline.next_send_at.
        "next_attempt_at": iso(coming.at),
        "backlog": {
            "items": backlog.items,
            "bytes": backlog.bytes,
            "requests_needed": backlog.requests_needed,
            "eta": iso(eta),
        },
        "plan": _explain(backlog, coming, now),
        "failed": [
            {
                "id": item.id,
                "path": shown(item.path),
                "kind": item.kind,
                "reason": item.last_error or "unknown",
                "attempts": item.attempts,
                "failed_at": iso(item.updated_at),
            }
            for item in spool.items("failed", limit=_LISTED)
        ],
        "pending": [
            {
                "id": item.id,
                "path": shown(item.path),
                "kind": item.kind,
                "attempts": item.attempts,
                "next_attempt_at": iso(max(now, item.next_attempt_at)),
                "last_error": item.last_error,
            }
            for item in pending
        ],
    }
    report["headline"] = headline(
        report, coming, api_state=spool.meta_get(API_STATE_KEY), key_file=_key_file(config), now=now
    )
    return report


def _key_file(config: Config) -> str:
    return (
        "the key file (api.api_key_file)"
        if "api.api_key_file" in config.explicit
        else ("the API key (api.api_key, $EXPORTSYNC_API_KEY or the systemd credential)")
    )


# A send further off than this is a hold (to save requests, or a backoff), not "sending now".
HELD_AFTER_SECONDS = 30.0


def headline(
    report: dict[str, Any], coming: NextSend, *, api_state: str | None, key_file: str, now: float
) -> dict[str, Any]:
    """The one line that says what state exportsync is in and what to do about it."""
    counts, quota = report["counts"], report["quota"]
    waiting = counts["pending"] + counts["sending"]
    items = plural(waiting, "item")
    at = coming.at
    when = f"{_hhmm(at)} (in {_countdown(at - now)})" if at is not None else "—"
    state: str
    if api_state == API_KEY_REFUSED and waiting:
        state = "key_refused"
        text = (
            f"the API refused the key (403); {items} wait: check {key_file}, then run "
            "'exportsync check --probe'"
        )
    elif report["watch_dir_missing"]:
        state = "folder_missing"
        text = (
            f"the export folder {report['watch_dir']} is missing: create or mount it; the "
            "daemon starts watching once it appears"
        )
    elif api_state == API_UNREACHABLE and waiting:
        state = "unreachable"
        text = f"the API cannot be reached; {items} wait, the next try is at {when}"
    elif quota["exhausted"]:
        state = "quota_exhausted"
        resets = quota["resets_at"]
        text = (
            f"today's {quota['limit']} requests are used up; {items} wait for the reset at "
            f"{resets} (in {_countdown(_epoch(resets) - now)})"
        )
    elif counts["failed"]:
        state = "failing"
        text = (
            f"{plural(counts['failed'], 'failed item')} "
            f"{'needs' if counts['failed'] == 1 else 'need'} a look: 'exportsync retry ID' to "
            "send again, 'exportsync dismiss ID' to drop from the list"
        )
    elif waiting and at is not None and at - now > HELD_AFTER_SECONDS and coming.backoff:
        state = "held"
        text = (
            f"{items} wait to be tried again after an error, at {when}; "
            "'exportsync send-now' sends them now"
        )
    elif waiting and at is not None and at - now > HELD_AFTER_SECONDS:
        state = "held"
        text = (
            f"holding {items} to save requests; {'it goes' if waiting == 1 else 'they go'} "
            f"at {when}, or now with "
            "'exportsync send-now'"
        )
    else:
        state = "ok"
        if not waiting:
            text = "all delivered; nothing waiting"
        else:
            text = f"sending {items} " + ("now" if at is None or at <= now else f"at {when}")
    if not report["daemon"]["running"]:
        text = "the daemon is not running (start it: 'exportsync run', or the service); " + text
    return {"state": state, "text": text, "next_send_at": iso(at)}


def _epoch(iso_text: str) -> float:
    return datetime.fromisoformat(iso_text).timestamp()


def _hhmm(at: float) -> str:
    return iso_utc(at)[11:16] + "Z"


def _countdown(seconds: float) -> str:
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _explain(backlog: Backlog, coming: NextSend, now: float) -> str:
    """The pacing decision in words, at the same instant as the headline's next_send_at."""
    if backlog.items == 0:
        return "nothing waiting"
    decision = coming.decision
    files = plural(backlog.items, "file")
    send_at = coming.at if coming.at is not None else now
    if decision.why is not None:
        # The policy learned from past days: what they said, then what it does.
        if send_at <= now:
            return f"{decision.why}; sending {files} now"
        return f"{decision.why}; holding {files}; next send {_hhmm(send_at)}"
    if send_at <= now:
        return f"sending {files} now"
    moment = _hhmm(send_at)
    if send_at - now > 86_400 / 2 or decision.reason == "day_used":
        moment = iso_utc(send_at)
    if decision.left is None:
        return f"holding {files} (retrying after a failure); next send {moment}"
    why = {
        "quiet": "waiting for the folder to go quiet",
        "day_used": "today's requests are used up",
        "reserve": "only the reserve is left, for the last call",
    }.get(decision.reason)
    left = plural(decision.left, "request") + " left today"
    text = f"holding {files}: {left}, {decision.reserve} kept in reserve"
    if why:
        text += f" ({why})"
    return f"{text}; next send {moment}"


def read_spool(config: Config) -> SpoolReading:
    """The spool's gauges for /metrics, through a connection of its own (any thread may call)."""
    clock = SystemClock()
    with Spool.open(config.state.dir) as spool:
        quota = build_ledger(config, spool, clock).snapshot()
        return SpoolReading(spool.counts(), quota.used, quota.limit, quota.resets_at)


def live_report(config: Config) -> dict[str, Any]:
    """The status report plus what only a live view shows: the request in flight, last events."""
    clock = SystemClock()
    if not Spool.path_in(config.state.dir).exists():
        with Spool.in_memory() as empty:
            return build_status(config, empty, build_ledger(config, empty, clock), clock)
    with Spool.open(config.state.dir) as spool:
        report = build_status(config, spool, build_ledger(config, spool, clock), clock)
        report["in_flight"] = [
            {"id": i.id, "path": shown(i.path)} for i in spool.items("sending", limit=20)
        ]
        report["recent"] = [
            {
                "id": i.id,
                "path": shown(i.path),
                "state": i.state,
                "at": iso_utc(i.updated_at),
                "error": i.last_error,
            }
            for i in spool.recent(limit=5)
        ]
    return report


def render_table(status: dict[str, Any]) -> str:
    """The human view of `build_status`'s dict."""
    counts = status["counts"]
    quota = status["quota"]
    daemon = status["daemon"]
    head = status["headline"]
    limit = quota["limit"] if quota["limit"] is not None else "unlimited"
    running = f"running (pid {daemon['pid']})" if daemon["running"] else "not running"
    watching = status["watch_dir"] or "(watch.dir is not set in the config)"
    lines = [
        f"exportsync {status['version']} — daemon {running}",
        f"  {head['state'].upper().replace('_', ' ')}: {head['text']}",
        "",
        f"  config     {status.get('config') or '—'}",
        f"  watching   {watching}"
        + ("  (MISSING: waiting for it to appear)" if status.get("watch_dir_missing") else ""),
        f"  state      {status['state_dir']}",
        "",
        f"  pending    {counts['pending']:>6}",
        f"  sending    {counts['sending']:>6}",
        f"  delivered  {counts['delivered']:>6}",
        f"  failed     {counts['failed']:>6}",
        "",
        f"  quota      {quota['used']} of {limit} requests used; resets {quota['resets_at']}"
        + ("  (exhausted)" if quota["exhausted"] else ""),
    ]
    backlog = status["backlog"]
    if backlog["items"]:
        lines.append(
            f"  backlog    {plural(backlog['items'], 'file')}, {backlog['bytes']} bytes,"
            f" {plural(backlog['requests_needed'], 'request')}; all sent by"
            f" {backlog['eta'] or 'now'}"
        )
    lines.append(f"  plan       {status['plan']}")
    if head["next_send_at"]:
        lines.append(f"  next send  {head['next_send_at']}")
    if status["failed"]:
        lines += ["", "  failed items (exportsync retry ID... | dismiss ID... | --all):"]
        lines += [
            f"    {f['id']:>5}  {f['path']}\n           {f['reason']}" for f in status["failed"]
        ]
    if status["pending"]:
        lines += ["", "  pending items:"]
        for p in status["pending"][:10]:
            note = f"  ({p['last_error']})" if p["last_error"] else ""
            lines.append(f"    {p['id']:>5}  {p['path']}{note}")
    return "\n".join(lines)
