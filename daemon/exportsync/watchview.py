"""`exportsync status --watch`: the status report, redrawn in place on a terminal.

On a terminal each frame repaints the screen from the top (cursor home, clear to the end), so
nothing scrolls; anywhere else (a pipe, a log file) it prints one plain line per interval. Ctrl-C
ends it with exit 0. The report comes from a callable, the pause from `sleep`: tests drive both.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO

from exportsync.words import plural

__all__ = ["frame_lines", "plain_line", "watch"]

_HOME_CLEAR = "\x1b[H\x1b[J"
_HIDE_CURSOR, _SHOW_CURSOR = "\x1b[?25l", "\x1b[?25h"
_RECENT = 5


def watch(
    read: Callable[[], dict[str, Any]],
    out: TextIO,
    *,
    interval: float = 1.0,
    tty: bool | None = None,
    sleep: Callable[[float], None] = time.sleep,
    now: Callable[[], float] = time.time,
    frames: int | None = None,
) -> int:
    """Show `read()` every `interval` seconds until Ctrl-C (or `frames` frames); returns 0."""
    on_terminal = out.isatty() if tty is None else tty
    shown = 0
    try:
        if on_terminal:
            out.write(_HIDE_CURSOR)
        while frames is None or shown < frames:
            report = read()
            if on_terminal:
                body = "\n".join(frame_lines(report, now()))
                out.write(f"{_HOME_CLEAR}{body}\n\n  (Ctrl-C to stop)\n")
            else:
                out.write(plain_line(report, now()) + "\n")
            out.flush()
            shown += 1
            if frames is None or shown < frames:
                sleep(interval)
    except KeyboardInterrupt:
        pass
    finally:
        if on_terminal:
            out.write(_SHOW_CURSOR)
            out.flush()
    return 0


def frame_lines(report: dict[str, Any], now: float) -> list[str]:
    """One screen: counts, quota and its reset, backlog, the request in flight, last events."""
    counts, quota, daemon = report["counts"], report["quota"], report["daemon"]
    running = f"running (pid {daemon['pid']})" if daemon["running"] else "NOT RUNNING"
    limit = quota["limit"] if quota["limit"] is not None else "unlimited"
    head = report.get("headline") or {}
    lines = [
        f"exportsync {report['version']} — daemon {running} — {_clock(now)}",
    ]
    if head:
        lines.append(f"  {str(head['state']).upper().replace('_', ' ')}: {head['text']}")
    lines += [
        f"  watching  {report['watch_dir'] or '(watch.dir is not set in the config)'}",
        "",
        "  pending {pending:>6}   sending {sending:>4}   delivered {delivered:>7}   "
        "failed {failed:>5}".format(**counts),
        f"  quota     {quota['used']} of {limit} used today, resets in "
        f"{_until(quota['resets_at'], now)}" + ("  (EXHAUSTED)" if quota["exhausted"] else ""),
        f"  backlog   {_backlog(report.get('backlog'), now)}",
    ]
    if report.get("plan"):
        lines.append(f"  plan      {report['plan']}")
    in_flight = report.get("in_flight") or []
    if in_flight:
        lines.append(f"  sending   {plural(len(in_flight), 'item')}: {_names(in_flight)}")
    elif head.get("next_send_at"):
        # The headline's instant, the one `status` and the plan show too.
        lines.append(f"  next send in {_until(head['next_send_at'], now)}")
    recent = report.get("recent") or []
    if recent:
        lines += ["", "  last events:"]
        lines += [
            f"    {_clock(e['at'], short=True)}  {e['state']:<9}  {e['path']}"
            + (f"  ({e['error']})" if e.get("error") and e["state"] != "delivered" else "")
            for e in recent[:_RECENT]
        ]
    return lines


def plain_line(report: dict[str, Any], now: float) -> str:
    """One log-friendly line, for a pipe or a file."""
    c, q = report["counts"], report["quota"]
    limit = q["limit"] if q["limit"] is not None else "unlimited"
    backlog = report.get("backlog")
    eta = f" backlog_eta={backlog.get('eta') or 'now'}" if isinstance(backlog, dict) else ""
    head = report.get("headline") or {}
    state = f" state={head['state']} next_send={head.get('next_send_at') or '-'}" if head else ""
    return (
        f"{_clock(now)} pending={c['pending']} sending={c['sending']} "
        f"delivered={c['delivered']} failed={c['failed']} quota={q['used']}/{limit} "
        f"resets_in={_until(q['resets_at'], now)}{eta}{state}"
    )


def _backlog(backlog: object, now: float) -> str:
    if not isinstance(backlog, dict):
        return "—"  # an older daemon's status has no backlog estimate
    eta = backlog.get("eta")
    when = "deliverable now" if not eta else f"delivered in about {_until(eta, now)}"
    return (
        f"{plural(int(backlog.get('items', 0)), 'item')}, {_size(backlog.get('bytes', 0))}, "
        f"{plural(int(backlog.get('requests_needed', 0)), 'request')}; {when}"
    )


def _names(entries: list[dict[str, Any]]) -> str:
    names = [str(e["path"]).rsplit("/", 1)[-1] for e in entries[:3]]
    return ", ".join(names) + (" …" if len(entries) > 3 else "")


def _until(iso: str | None, now: float) -> str:
    if not iso:
        return "—"
    seconds = max(0, int(datetime.fromisoformat(iso).timestamp() - now))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _clock(at: float | str, *, short: bool = False) -> str:
    moment = datetime.fromisoformat(at) if isinstance(at, str) else datetime.fromtimestamp(at, UTC)
    return moment.astimezone().strftime("%H:%M:%S" if short else "%Y-%m-%d %H:%M:%S")


def _size(count: object) -> str:
    size = float(count) if isinstance(count, int | float) else 0.0
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"
