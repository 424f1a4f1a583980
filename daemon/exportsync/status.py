"""`exportsync status`: the spool and the quota, as JSON (shape in README.md) or a table.

Reads the spool directly, so it works whether or not the daemon runs, and never needs the API key.
The same reading feeds `status --watch` (`live_report`) and the /metrics gauges (`read_spool`).
"""

from __future__ import annotations

import os
from typing import Any

from exportsync import __version__
from exportsync.backlog import Backlog
from exportsync.clock import Clock, SystemClock, iso_utc
from exportsync.config import Config
from exportsync.daemon import build_ledger
from exportsync.history import read_history
from exportsync.metrics import SpoolReading
from exportsync.names import shown
from exportsync.pacing import Plan, plan, plan_backlog
from exportsync.quota import QuotaLedger
from exportsync.runlock import running_pid
from exportsync.spool import Spool

__all__ = ["build_status", "live_report", "read_spool", "render_table"]

_LISTED = 50


def iso(epoch: float | None) -> str | None:
    return iso_utc(epoch) if epoch is not None else None


def build_status(config: Config, spool: Spool, ledger: QuotaLedger, clock: Clock) -> dict[str, Any]:
    """Everything `status --json` prints; no secret goes in here."""
    quota = ledger.snapshot()
    now = clock.time()
    pid = running_pid(config.state.dir)
    pending = spool.items("pending", limit=_LISTED)
    next_due = spool.next_due_at()
    # Every pending item, retries waiting for their backoff included.
    backlog = spool.backlog(
        float("inf"),
        inline_max_bytes=config.api.inline_max_bytes,
        max_entries=config.api.batch_max_files,
    )
    view = ledger.view()
    pacing = config.quota.pacing
    history = read_history(spool, period_start=view.period_start, days=pacing.learn_days)
    decision = plan(backlog, now, view, pacing, history)
    eta = plan_backlog(backlog, now, view, pacing, history)
    if eta is not None and next_due is not None:
        eta = max(eta, next_due)
    elif backlog.items and next_due is not None and next_due > now:
        eta = next_due
    return {
        "version": __version__,
        "daemon": {"running": pid is not None, "pid": pid if pid and pid > 0 else None},
        "watch_dir": shown(config.watch.dir),
        # Seen from here, as the daemon sees it: while missing it delivers what is spooled and
        # waits for the folder to appear.
        "watch_dir_missing": not os.path.isdir(config.watch.dir),
        "state_dir": shown(config.state.dir),
        "counts": spool.counts(),
        "quota": {
            "used": quota.used,
            "limit": quota.limit,
            "resets_at": iso(quota.resets_at),
            "exhausted": quota.exhausted,
            "next_request_in_seconds": round(quota.next_request_in, 3),
        },
        "next_attempt_at": iso(max(now, next_due)) if next_due is not None else None,
        "backlog": {
            "items": backlog.items,
            "bytes": backlog.bytes,
            "requests_needed": backlog.requests_needed,
            "eta": iso(eta),
        },
        "plan": _explain(backlog, decision, now, next_due),
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


def _explain(backlog: Backlog, decision: Plan, now: float, next_due: float | None) -> str:
    """The pacing decision in words."""
    if backlog.items == 0:
        return "nothing waiting"
    files = f"{backlog.items} file" + ("s" if backlog.items != 1 else "")
    send_at = decision.send_at if decision.send_at is not None else now
    if next_due is not None:
        send_at = max(send_at, next_due)
    if decision.why is not None:
        # The policy learned from past days: what they said, then what it does.
        if send_at <= now:
            return f"{decision.why}; sending {files} now"
        held = f"{decision.why}; holding {files}; next send {iso_utc(send_at)[11:16]}Z"
        return held
    if send_at <= now:
        return f"sending {files} now"
    moment = iso_utc(send_at)[11:16] + "Z"
    if decision.left is None:
        return f"holding {files} (retrying after a failure); next send {moment}"
    why = {
        "quiet": "waiting for the folder to go quiet",
        "day_used": "today's requests are used up",
        "reserve": "only the reserve is left, for the last call",
    }.get(decision.reason)
    left = f"{decision.left} request" + ("s" if decision.left != 1 else "") + " left today"
    text = f"holding {files}: {left}, {decision.reserve} kept in reserve"
    if why:
        text += f" ({why})"
    if send_at - now > 86_400 / 2 or decision.reason == "day_used":
        moment = iso_utc(send_at)
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
    limit = quota["limit"] if quota["limit"] is not None else "unlimited"
    running = f"running (pid {daemon['pid']})" if daemon["running"] else "not running"
    lines = [
        f"exportsync {status['version']} — daemon {running}",
        f"  watching   {status['watch_dir']}"
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
            f"  backlog    {backlog['items']} files, {backlog['bytes']} bytes,"
            f" {backlog['requests_needed']} request(s); all sent by {backlog['eta'] or 'now'}"
        )
    lines.append(f"  plan       {status['plan']}")
    if status["next_attempt_at"]:
        lines.append(f"  next try   {status['next_attempt_at']}")
    if status["failed"]:
        lines += ["", "  failed items (exportsync retry ID... | --all-failed):"]
        lines += [
            f"    {f['id']:>5}  {f['path']}\n           {f['reason']}" for f in status["failed"]
        ]
    if status["pending"]:
        lines += ["", "  pending items:"]
        for p in status["pending"][:10]:
            note = f"  ({p['last_error']})" if p["last_error"] else ""
            lines.append(f"    {p['id']:>5}  {p['path']}  next {p['next_attempt_at']}{note}")
    return "\n".join(lines)
