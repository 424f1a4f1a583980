"""`exportsync status --watch`: frames redrawn in place on a terminal, plain lines elsewhere."""

from __future__ import annotations

import io
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from exportsync.cli import main
from exportsync.spool import Spool
from exportsync.watchview import frame_lines, plain_line, watch

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z


def report(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "version": "0.1.0",
        "daemon": {"running": True, "pid": 42},
        "watch_dir": "/srv/exports",
        "counts": {"pending": 3, "sending": 1, "delivered": 12, "failed": 2},
        "quota": {
            "used": 4,
            "limit": 10,
            "resets_at": "2027-01-16T00:00:00Z",
            "exhausted": False,
        },
        "next_attempt_at": None,
        "in_flight": [{"id": 9, "path": "/srv/exports/walk.csv"}],
        "recent": [
            {
                "id": 8,
                "path": "/srv/exports/bad.session.json",
                "state": "failed",
                "at": "2027-01-15T07:59:00Z",
                "error": "NaN is not a valid JSON number",
            }
        ],
    }
    return base | extra


def test_a_frame_shows_counts_quota_countdown_flight_and_events() -> None:
    text = "\n".join(frame_lines(report(), NOW))
    assert "pending      3" in text
    assert "failed     2" in text
    assert "4 of 10 used today, resets in 16h00m" in text
    assert "sending   1 item: walk.csv" in text  # "1 item", never "1 item(s)"
    assert "failed     /srv/exports/bad.session.json  (NaN is not a valid JSON number)" in text
    assert "backlog   —" in text  # no estimate in this report


def test_the_backlog_estimate_is_shown_when_the_report_has_one() -> None:
    backlog = {
        "items": 250,
        "bytes": 3_500_000,
        "requests_needed": 3,
        "eta": "2027-01-15T09:30:00Z",
    }
    text = "\n".join(frame_lines(report(backlog=backlog), NOW))
    assert "250 items, 3.5 MB, 3 requests; delivered in about 1h30m" in text
    assert "backlog_eta=2027-01-15T09:30:00Z" in plain_line(report(backlog=backlog), NOW)


def test_plain_lines_off_a_terminal() -> None:
    out = io.StringIO()
    pauses: list[float] = []
    assert watch(report, out, interval=0.5, sleep=pauses.append, now=lambda: NOW, frames=3) == 0
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert pauses == [0.5, 0.5]
    assert "\x1b" not in out.getvalue()
    assert "pending=3 sending=1 delivered=12 failed=2 quota=4/10 resets_in=16h00m" in lines[0]


def test_a_terminal_gets_frames_redrawn_in_place() -> None:
    out = io.StringIO()
    watch(report, out, tty=True, sleep=lambda _: None, now=lambda: NOW, frames=2)
    text = out.getvalue()
    assert text.count("\x1b[H\x1b[J") == 2  # home and clear, once per frame
    assert text.endswith("\x1b[?25h")  # the cursor comes back


def test_ctrl_c_ends_with_exit_0() -> None:
    def interrupted(_: float) -> None:
        raise KeyboardInterrupt

    assert watch(report, io.StringIO(), sleep=interrupted, now=lambda: NOW) == 0


def test_status_watch_under_a_pty(tmp_path: Path) -> None:
    """A real `exportsync status --watch` on a pseudo-terminal: a frame, then SIGINT, exit 0."""
    watch_dir = tmp_path / "exports"
    watch_dir.mkdir()
    with Spool.open(tmp_path / "state") as spool:
        spool.record(watch_dir / "a.csv", "csv", size=1, mtime_ns=1, sha256="0" * 64, now=NOW)
    config = tmp_path / "exportsync.toml"
    config.write_text(f'[watch]\ndir = "{watch_dir}"\n[state]\ndir = "{tmp_path / "state"}"\n')
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXPORTSYNC_")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "exportsync",
            "status",
            "--watch",
            "--interval",
            "0.2",
            "--config",
            str(config),
        ],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
    )
    os.close(slave)
    seen = b""
    try:
        deadline = time.monotonic() + 30
        while seen.count(b"\x1b[H\x1b[J") < 2 and time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if ready:
                seen += os.read(master, 65536)
        assert seen.count(b"\x1b[H\x1b[J") >= 2, seen.decode(errors="replace")
        text = seen.decode(errors="replace")
        assert "pending      1" in text
        assert "a.csv" in text  # the last events
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)


def test_watch_refuses_json(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'[watch]\ndir = "{tmp_path}"\n[state]\ndir = "{tmp_path / "s"}"\n')
    assert main(["status", "--watch", "--json", "--config", str(config)]) == 2


def test_status_watch_into_a_pipe_that_closes_ends_quietly(tmp_path: Path) -> None:
    """`exportsync status --watch | head -1`: the reader goes away; exit 0, no traceback."""
    watch_dir = tmp_path / "exports"
    watch_dir.mkdir()
    config = tmp_path / "exportsync.toml"
    config.write_text(f'[watch]\ndir = "{watch_dir}"\n[state]\ndir = "{tmp_path / "state"}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXPORTSYNC_")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "exportsync",
            "status",
            "--watch",
            "--interval",
            "0.05",
            "--config",
            str(config),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    first = process.stdout.readline()
    process.stdout.close()  # as `head -1` does after its line
    assert b"pending=0" in first
    assert process.wait(timeout=30) == 0
    assert process.stderr.read() == b""
    process.stderr.close()
