"""`build_status` and `render_table` over a real spool, a fake clock and a loaded config."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from exportsync.clock import FakeClock, iso_utc
from exportsync.config import Config, load_config
from exportsync.runlock import RunLock
from exportsync.spool import API_KEY_REFUSED, API_STATE_KEY, API_UNREACHABLE, Spool
from exportsync.status import build_status, render_table
from exportsync.watchview import _until, frame_lines
from exportsync.wiring import build_ledger

KEY = "status-test-key-SECRET-42"
NOW = dt.datetime(2025, 3, 4, 15, 30, tzinfo=dt.UTC).timestamp()


@pytest.fixture
def config(tmp_path: Path) -> Config:
    (tmp_path / "exports").mkdir()
    return load_config(
        None,
        env={
            "EXPORTSYNC_WATCH_DIR": str(tmp_path / "exports"),
            "EXPORTSYNC_STATE_DIR": str(tmp_path / "state"),
            "EXPORTSYNC_API_URL": "http://127.0.0.1:9/prod",
            "EXPORTSYNC_API_KEY": KEY,
            "EXPORTSYNC_QUOTA_DAILY_REQUESTS": "10",
        },
    )


@pytest.fixture
def spool(config: Config) -> Iterator[Spool]:
    with Spool.open(config.state.dir) as opened:
        yield opened


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


def status_of(config: Config, spool: Spool, clock: FakeClock) -> dict[str, object]:
    return build_status(config, spool, build_ledger(config, spool, clock), clock)


def test_an_empty_spool(config: Config, spool: Spool, clock: FakeClock) -> None:
    report = status_of(config, spool, clock)
    assert report["counts"] == {"pending": 0, "sending": 0, "delivered": 0, "failed": 0}
    assert report["quota"] == {
        "used": 0,
        "limit": 10,
        "resets_at": "2025-03-05T00:00:00Z",
        "exhausted": False,
        "next_request_in_seconds": pytest.approx(1.25),  # the bucket starts empty
    }
    assert report["failed"] == []
    assert report["pending"] == []
    assert report["next_attempt_at"] is None
    assert report["daemon"] == {"running": False, "pid": None}
    assert report["watch_dir"] == str(config.watch.dir)
    assert report["state_dir"] == str(config.state.dir)


def test_counts_failed_and_pending_items(config: Config, spool: Spool, clock: FakeClock) -> None:
    root = config.watch.dir
    for name in ("a.csv", "b.csv", "c.csv", "d.csv"):
        spool.record(root / name, "csv", size=1, mtime_ns=1, sha256=name * 8, now=NOW - 60)
    spool.mark_failed(2, "refused by the API: bad_csv", now=NOW - 30)
    spool.mark_sending([3], now=NOW)
    spool.mark_delivered(4, now=NOW)
    spool.reschedule(1, at=NOW + 90, error="HTTP 503", now=NOW)

    report = status_of(config, spool, clock)

    assert report["counts"] == {"pending": 1, "sending": 1, "delivered": 1, "failed": 1}
    assert report["failed"] == [
        {
            "id": 2,
            "path": str(root / "b.csv"),
            "kind": "csv",
            "reason": "refused by the API: bad_csv",
            "attempts": 1,
            "failed_at": "2025-03-04T15:29:30Z",
        }
    ]
    assert report["pending"] == [
        {
            "id": 1,
            "path": str(root / "a.csv"),
            "kind": "csv",
            "attempts": 1,
            "next_attempt_at": "2025-03-04T15:31:30Z",
            "last_error": "HTTP 503",
        }
    ]
    assert report["next_attempt_at"] == "2025-03-04T15:31:30Z"


def test_an_overdue_item_shows_now_not_the_past(
    config: Config, spool: Spool, clock: FakeClock
) -> None:
    spool.record(config.watch.dir / "a.csv", "csv", size=1, mtime_ns=1, sha256="a", now=NOW - 600)
    report = status_of(config, spool, clock)
    assert report["next_attempt_at"] == "2025-03-04T15:30:00Z"


def test_quota_used_and_exhausted(config: Config, spool: Spool, clock: FakeClock) -> None:
    ledger = build_ledger(config, spool, clock)
    for _ in range(3):
        clock.advance(2.0)
        ledger.spend()
        ledger.answered()
    report = build_status(config, spool, ledger, clock)
    quota = report["quota"]
    assert isinstance(quota, dict)
    assert (quota["used"], quota["limit"], quota["exhausted"]) == (3, 10, False)
    ledger.mark_exhausted()
    quota = build_status(config, spool, ledger, clock)["quota"]
    assert isinstance(quota, dict)
    assert quota["exhausted"] is True
    assert "(exhausted)" in render_table(build_status(config, spool, ledger, clock))


def test_a_running_daemon_is_shown_with_its_pid(
    config: Config, spool: Spool, clock: FakeClock
) -> None:
    with RunLock(config.state.dir):
        report = status_of(config, spool, clock)
        assert report["daemon"] == {"running": True, "pid": os.getpid()}
        assert f"running (pid {os.getpid()})" in render_table(report)
    assert "not running" in render_table(status_of(config, spool, clock))


def test_the_report_is_json_and_holds_no_secret(
    config: Config, spool: Spool, clock: FakeClock
) -> None:
    spool.record(config.watch.dir / "a.csv", "csv", size=1, mtime_ns=1, sha256="a", now=NOW)
    report = status_of(config, spool, clock)
    text = json.dumps(report)
    assert KEY not in text
    assert KEY not in render_table(report)
    assert json.loads(text) == report


def test_the_table_lists_counts_quota_and_items(
    config: Config, spool: Spool, clock: FakeClock
) -> None:
    root = config.watch.dir
    spool.record(root / "a.csv", "csv", size=1, mtime_ns=1, sha256="a", now=NOW)
    spool.record(root / "b.csv", "csv", size=1, mtime_ns=1, sha256="b", now=NOW)
    spool.mark_failed(2, "refused: bad header", now=NOW)
    table = render_table(status_of(config, spool, clock))
    lines = table.splitlines()
    assert any(line.split() == ["pending", "1"] for line in lines)
    assert any(line.split() == ["failed", "1"] for line in lines)
    assert any(line.split() == ["delivered", "0"] for line in lines)
    assert "0 of 10 requests used; resets 2025-03-05T00:00:00Z" in table
    assert str(root / "b.csv") in table
    assert "refused: bad header" in table
    assert "retry" in table  # tells the user what to do about failures


def test_no_daily_limit_reads_unlimited(tmp_path: Path, clock: FakeClock) -> None:
    config = load_config(
        None,
        env={
            "EXPORTSYNC_STATE_DIR": str(tmp_path / "state"),
            "EXPORTSYNC_QUOTA_DAILY_REQUESTS": "0",
        },
        require_api=False,
    )
    with Spool.open(config.state.dir) as spool:
        report = status_of(config, spool, clock)
    quota = report["quota"]
    assert isinstance(quota, dict)
    assert quota["limit"] is None
    assert "of unlimited requests" in render_table(report)


def test_the_backlog_says_what_waits_and_when_it_will_have_gone(
    config: Config, spool: Spool, clock: FakeClock
) -> None:
    root = config.watch.dir
    for name in ("a.csv", "b.csv"):
        spool.record(root / name, "csv", size=1000, mtime_ns=1, sha256=name, now=NOW - 600)
    spool.record(root / "c.session.json", "session", size=1000, mtime_ns=1, sha256="c", now=NOW)
    ledger = build_ledger(config, spool, clock)
    for _ in range(6):  # more than the day's prompt requests are spent
        clock.advance(2.0)
        ledger.spend()
        ledger.answered()
    report = build_status(config, spool, ledger, clock)
    backlog = report["backlog"]
    assert isinstance(backlog, dict)
    assert (backlog["items"], backlog["bytes"], backlog["requests_needed"]) == (3, 3000, 1)
    # 4 left, 2 kept back: the next slot is a third of the way from the last request to 23:30.
    last = NOW + 12.0
    slot = last + (dt.datetime(2025, 3, 4, 23, 30, tzinfo=dt.UTC).timestamp() - last) / 3
    assert backlog["eta"] == iso_utc(slot)
    assert report["plan"] == (
        "holding 3 files: 4 requests left today, 2 kept in reserve;"
        f" next send {iso_utc(slot)[11:16]}Z"
    )
    assert "plan       holding 3 files" in render_table(report)


def test_an_empty_backlog_goes_now_and_a_used_day_waits_for_tomorrow(
    config: Config, spool: Spool, clock: FakeClock
) -> None:
    report = status_of(config, spool, clock)
    assert report["backlog"] == {"items": 0, "bytes": 0, "requests_needed": 0, "eta": None}
    assert report["plan"] == "nothing waiting"
    spool.record(config.watch.dir / "a.csv", "csv", size=5, mtime_ns=1, sha256="a", now=NOW - 60)
    ledger = build_ledger(config, spool, clock)
    ledger.mark_exhausted()
    report = build_status(config, spool, ledger, clock)
    backlog = report["backlog"]
    assert isinstance(backlog, dict)
    assert backlog["eta"] is not None
    assert str(backlog["eta"]).startswith("2025-03-05T00:")
    assert "today's requests are used up" in str(report["plan"])


def test_a_name_that_is_not_utf8_is_shown_with_escapes(
    config: Config, spool: Spool, clock: FakeClock
) -> None:
    raw = config.watch.dir / os.fsdecode(b"r\xff\xfe.csv")
    spool.record(raw, "csv", size=1, mtime_ns=1, sha256="a", now=NOW)
    spool.mark_failed(1, "refused", now=NOW)
    report = status_of(config, spool, clock)
    shown = report["failed"][0]["path"]  # type: ignore[index]
    assert shown == str(config.watch.dir / "r\\xff\\xfe.csv")
    json.dumps(report, ensure_ascii=False).encode("utf-8")  # strict: no lone surrogate left
    render_table(report).encode("utf-8")


def test_a_missing_watch_folder_is_shown(config: Config, spool: Spool, clock: FakeClock) -> None:
    assert status_of(config, spool, clock)["watch_dir_missing"] is False
    config.watch.dir.rmdir()
    report = status_of(config, spool, clock)
    assert report["watch_dir_missing"] is True
    assert "MISSING" in render_table(report)


# -- the headline: one state, what to do, and the one next_send_at --------------------------------


def _pending(spool: Spool, config: Config, name: str = "a.csv", at: float = NOW - 60) -> int:
    item = spool.record(config.watch.dir / name, "csv", size=1, mtime_ns=1, sha256=name * 8, now=at)
    return item.item.id


def _past_the_prompt_requests(spool: Spool) -> None:
    """Five requests spent today, the last 10 minutes ago: a lone file now is paced for hours."""
    spool.quota_raise_to(NOW - NOW % 86400, 4)
    spool.quota_spend(NOW - NOW % 86400, at=NOW - 600)


def test_the_headline_names_each_blocking_state(
    config: Config, spool: Spool, clock: FakeClock
) -> None:
    def head() -> dict[str, Any]:
        report = status_of(config, spool, clock)
        value = report["headline"]
        assert isinstance(value, dict)
        return value

    assert head()["state"] == "ok"
    assert head()["next_send_at"] is None
    failed = _pending(spool, config, "f.csv")
    spool.mark_failed(failed, "refused by the API: bad_csv", now=NOW)
    assert head()["state"] == "failing"
    assert "exportsync dismiss" in head()["text"]
    spool.dismiss([failed], now=NOW)
    _past_the_prompt_requests(spool)
    _pending(spool, config)
    held = head()
    assert held["state"] == "held"
    assert "exportsync send-now" in held["text"]
    assert held["next_send_at"] > iso_utc(NOW + 3600)
    assert held["next_send_at"][11:16] + "Z" in held["text"]
    spool.quota_mark_exhausted(NOW - NOW % 86400)
    exhausted = head()
    assert exhausted["state"] == "quota_exhausted"
    assert "2025-03-05T00:00:00Z (in 8h30m)" in exhausted["text"]
    assert exhausted["next_send_at"] == "2025-03-05T00:01:00Z"  # the reset, plus its grace
    spool.meta_set(API_STATE_KEY, API_UNREACHABLE)
    assert head()["state"] == "unreachable"
    config.watch.dir.rmdir()
    assert head()["state"] == "folder_missing"
    spool.meta_set(API_STATE_KEY, API_KEY_REFUSED)
    refused = head()
    assert refused["state"] == "key_refused"
    assert "api.api_key" in refused["text"]
    assert "check --probe" in refused["text"]


def test_status_the_plan_and_watch_agree_on_the_next_send(
    config: Config, spool: Spool, clock: FakeClock
) -> None:
    """An item in backoff and a paced plan: one instant, wherever it is shown (the plan once
    said 'next send 07:10Z' beside 'next try 03:05:27Z')."""
    _past_the_prompt_requests(spool)
    item = _pending(spool, config)
    spool.reschedule(item, at=NOW + 90, error="HTTP 503", now=NOW)
    report = status_of(config, spool, clock)
    head = report["headline"]
    assert isinstance(head, dict)
    at = head["next_send_at"]
    assert report["next_attempt_at"] == at
    assert f"next send {at[11:16]}Z" in str(report["plan"])
    table = render_table(report)
    assert f"next send  {at}" in table
    assert "next try" not in table
    frame = "\n".join(frame_lines(report, NOW))
    assert f"next send in {_until(at, NOW)}" in frame


def test_watch_counts_down_to_the_reset_when_the_quota_is_used_up(
    config: Config, spool: Spool, clock: FakeClock
) -> None:
    _pending(spool, config)
    spool.quota_raise_to(NOW - NOW % 86400, 10)
    report = status_of(config, spool, clock)
    frame = "\n".join(frame_lines(report, NOW))
    assert "0m00s" not in frame
    assert "next send in 8h31m" in frame
    assert "QUOTA EXHAUSTED" in frame


def test_items_waiting_out_a_backoff_are_held_with_the_reason_and_the_way_out(
    config: Config, spool: Spool, clock: FakeClock
) -> None:
    item = _pending(spool, config)
    spool.reschedule(item, at=NOW + 600, error="HTTP 503", now=NOW)
    head = status_of(config, spool, clock)["headline"]
    assert isinstance(head, dict)
    assert head["state"] == "held"
    assert head["next_send_at"] == iso_utc(NOW + 600)
    assert "tried again after an error" in head["text"]
    assert "exportsync send-now" in head["text"]


def test_the_plan_says_what_the_past_days_taught_it(
    config: Config, spool: Spool, clock: FakeClock
) -> None:
    root = config.watch.dir
    day = 86_400.0
    today = NOW - NOW % day
    # Ten past days (2025-02-22 .. 03-03), each with two exports in the morning and one at 16:00.
    for back in range(1, 11):
        begin = today - back * day
        for n, at in enumerate((9 * 3600, 10 * 3600, 16 * 3600)):
            name = f"d{back}-{n}.csv"
            spool.record(root / name, "csv", size=10, mtime_ns=1, sha256=name, now=begin + at)
            spool.mark_delivered(spool.items("pending", limit=1)[0].id, now=begin + at + 5)
    spool.record(root / "now.csv", "csv", size=10, mtime_ns=1, sha256="now", now=NOW - 60)
    ledger = build_ledger(config, spool, clock)
    for _ in range(5):  # past the prompt requests: today's policy would hold it for hours
        clock.advance(2.0)
        ledger.spend()
        ledger.answered()
    report = build_status(config, spool, ledger, clock)
    assert report["plan"] == (
        "usually 1 more export after 15:30Z; 5 requests left, 2 kept for the last call;"
        " sending 1 file now"
    )
    assert report["backlog"] == {"items": 1, "bytes": 10, "requests_needed": 1, "eta": None}
