"""The operator's levers inside the daemon: `send-now` overriding a hold, dismissed and superseded
failures leaving the failed list, the API's last word about the key, and the probe's reading of
the key's user. Synchronous, over a real spool, a fake clock and a scripted API."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from exportsync import sendnow
from exportsync.client import BatchRequest
from exportsync.clock import FakeClock
from exportsync.config import WatchConfig, load_config
from exportsync.daemon import Daemon
from exportsync.delivery import Deliverer
from exportsync.errors import FileRejected, Forbidden, Unreachable
from exportsync.intake import Intake
from exportsync.matcher import FileMatcher
from exportsync.migrations import MIGRATIONS, migrate
from exportsync.pacing import Pacing
from exportsync.probe import key_user_of, probe
from exportsync.quota import DAY
from exportsync.sessions import parse_session_file
from exportsync.spool import API_KEY_REFUSED, API_STATE_KEY, API_UNREACHABLE, SEND_NOW_KEY, Spool
from support.fake_api import FakeApi
from support.ledger import plan_ledger
from support.settings import api_settings

START = 1_800_000_000.0 - (1_800_000_000.0 % DAY) + 3 * 3600  # 03:00 UTC


@dataclass
class Rig:
    root: Path
    spool: Spool
    clock: FakeClock
    api: FakeApi
    deliverer: Deliverer
    intake: Intake

    def drop(self, name: str, data: str) -> Path:
        path = self.root / name
        path.write_text(data)
        assert self.intake.offer(path) is not None
        return path


def _rig(tmp_path: Path, pacing: Pacing) -> Rig:
    root = tmp_path / "export"
    root.mkdir()
    spool = Spool.open(tmp_path / "state")
    clock = FakeClock(START)
    api = FakeApi()
    ledger = plan_ledger(spool, clock, daily_requests=10)
    deliverer = Deliverer(
        spool=spool,
        ledger=ledger,
        api=api,
        clock=clock,
        watch=WatchConfig(root),
        settings=api_settings(),
        pacing=pacing,
    )
    return Rig(
        root,
        spool,
        clock,
        api,
        deliverer,
        Intake(spool, root=root, matcher=FileMatcher(), clock=clock),
    )


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    # No prompt requests: after its quiet window every file is paced, i.e. held for hours.
    r = _rig(tmp_path, Pacing(quiet_seconds=0.0, prompt_requests=0))
    yield r
    r.spool.close()


def _spend(rig: Rig, requests: int) -> None:
    for _ in range(requests):
        rig.clock.advance(rig.deliverer._ledger.wait_time())
        rig.deliverer._ledger.spend()
        rig.deliverer._ledger.answered()


# -- send-now -------------------------------------------------------------------------------------


def test_send_now_sends_a_held_backlog_at_once_and_then_lets_the_policy_decide(rig: Rig) -> None:
    _spend(rig, 1)  # one request spent earlier today: the next one is paced hours away
    rig.clock.advance(2.0)
    rig.drop("a.csv", "1\n")
    rig.drop("b.csv", "2\n")
    held = rig.deliverer.step()
    assert not held.requested
    assert held.wait is not None
    assert held.wait > 3600
    sendnow.request(rig.spool, rig.clock.time())
    rig.clock.advance(1.25)  # the rate limit's interval, not the hold
    with capture_logs() as logs:
        sent = rig.deliverer.step()
    assert sent.requested
    assert [e["reason"] for e in logs if e["event"] == "batch_planned"] == ["send_now"]
    assert {i.path.name: i.state for i in rig.spool.items()} == {
        "a.csv": "delivered",
        "b.csv": "delivered",
    }
    # A file that came after the request is paced again, and the request is cleared.
    rig.clock.advance(2.0)
    rig.drop("c.csv", "3\n")
    later = rig.deliverer.step()
    assert not later.requested
    assert later.wait is not None
    assert later.wait > 3600
    assert rig.spool.meta_get(SEND_NOW_KEY) is None


def test_send_now_spends_the_reserve_but_not_a_day_that_is_used_up(rig: Rig) -> None:
    _spend(rig, 8)  # 2 left, both the reserve: only the last call would spend them
    rig.drop("a.csv", "1\n")
    assert rig.deliverer.plan(rig.clock.time()).reason == "reserve"
    sendnow.request(rig.spool, rig.clock.time())
    assert rig.deliverer.plan(rig.clock.time()).reason == "send_now"
    _spend(rig, 2)
    assert rig.deliverer.plan(rig.clock.time()).reason == "day_used"
    assert rig.spool.meta_get(SEND_NOW_KEY) is None  # nothing left to spend: withdrawn


# -- the API's last word about the key and the network ---------------------------------------------


def test_a_refused_key_and_an_unreachable_api_are_noted_for_status_until_a_request_goes_through(
    tmp_path: Path,
) -> None:
    fast = _rig(tmp_path, Pacing(quiet_seconds=0.0, prompt_requests=1000))
    fast.drop("a.csv", "1\n")
    fast.api.script = [Forbidden("Forbidden", status=403)]
    fast.clock.advance(fast.deliverer._ledger.wait_time())  # the bucket starts empty
    assert fast.deliverer.step().requested
    assert fast.spool.meta_get(API_STATE_KEY) == API_KEY_REFUSED
    fast.spool.make_due(None, now=fast.clock.time())  # `retry ID` of the item in its backoff
    fast.clock.advance(fast.deliverer._ledger.wait_time())
    fast.api.script = [Unreachable("cannot connect")]
    with capture_logs() as logs:
        fast.deliverer.step()
    assert fast.spool.meta_get(API_STATE_KEY) == API_UNREACHABLE
    events = [e["event"] for e in logs]
    # Counted, then refunded: never logged as a request the gateway saw.
    assert "request_sending" in events
    assert "request_sent" not in events
    fast.spool.make_due(None, now=fast.clock.time())
    fast.clock.advance(fast.deliverer._ledger.wait_time())
    with capture_logs() as logs:
        fast.deliverer.step()
    assert [e["outcome"] for e in logs if e["event"] == "request_sent"] == ["answered"]
    assert fast.spool.meta_get(API_STATE_KEY) is None
    fast.spool.close()


# -- dismissed and superseded failures ------------------------------------------------------------


def _failed(spool: Spool, root: Path, name: str, sha: str, now: float) -> int:
    item = spool.record(root / name, "csv", size=1, mtime_ns=1, sha256=sha, now=now).item
    spool.mark_failed(item.id, "refused by the API: bad_csv", now=now)
    return item.id


def test_dismissed_items_leave_the_failed_list_and_counts_but_keep_their_row(
    tmp_path: Path,
) -> None:
    with Spool.open(tmp_path / "state") as spool:
        a = _failed(spool, tmp_path, "a.csv", "a" * 64, 1.0)
        b = _failed(spool, tmp_path, "b.csv", "b" * 64, 1.0)
        assert spool.counts()["failed"] == 2
        assert spool.dismiss([a, 99], now=2.0) == [a]
        assert spool.counts()["failed"] == 1
        assert spool.failed_ids() == [b]
        assert [i.id for i in spool.items("failed")] == [b]
        # The row stays: a scan still knows the file and does not spool it again.
        assert spool.known(tmp_path / "a.csv", 1, 1)
        assert spool.dismiss([a], now=3.0) == []  # not on the list any more
        assert spool.retry([a], now=4.0) == [a]  # still retryable by id
        assert spool.counts() == {"pending": 1, "sending": 0, "delivered": 0, "failed": 1}


def test_a_newer_delivered_version_supersedes_the_failed_one(tmp_path: Path) -> None:
    with Spool.open(tmp_path / "state") as spool:
        old = _failed(spool, tmp_path, "a.csv", "a" * 64, 1.0)
        other = _failed(spool, tmp_path, "b.csv", "b" * 64, 1.0)
        new = spool.record(tmp_path / "a.csv", "csv", size=2, mtime_ns=2, sha256="c" * 64, now=2.0)
        assert spool.mark_delivered(new.item.id, now=3.0) == 1
        assert spool.failed_ids() == [other]
        assert spool.counts()["failed"] == 1
        assert spool.get(old) is not None


def test_a_failed_item_whose_file_is_gone_leaves_the_list(tmp_path: Path) -> None:
    (tmp_path / "kept.csv").write_text("x")
    with Spool.open(tmp_path / "state") as spool:
        gone = _failed(spool, tmp_path, "gone.csv", "a" * 64, 1.0)
        kept = _failed(spool, tmp_path, "kept.csv", "b" * 64, 1.0)
        swept = spool.dismiss_superseded(now=2.0, gone=lambda p: not p.exists())
        assert [i.id for i in swept] == [gone]
        assert spool.failed_ids() == [kept]
        assert spool.counts()["failed"] == 1


def test_the_daemon_sweep_leaves_failures_alone_while_the_folder_itself_is_missing(
    tmp_path: Path,
) -> None:

    export = tmp_path / "export"
    export.mkdir()
    config = load_config(
        None,
        env={
            "EXPORTSYNC_WATCH_DIR": str(export),
            "EXPORTSYNC_STATE_DIR": str(tmp_path / "state"),
            "EXPORTSYNC_API_URL": "http://127.0.0.1:9/prod",
            "EXPORTSYNC_API_KEY": "k",
        },
    )
    daemon = Daemon(config, api=FakeApi(), clock=FakeClock(START))
    try:
        _failed(daemon.spool, export, "a.csv", "a" * 64, START)
        export.rmdir()
        assert daemon.sweep_failed() == 0  # an unmounted share is not a deleted file
        export.mkdir()
        with capture_logs() as logs:
            assert daemon.sweep_failed() == 1
        assert [e["event"] for e in logs] == ["failed_superseded"]
        assert daemon.spool.counts()["failed"] == 0
    finally:
        daemon.spool.close()


def test_a_spool_of_schema_6_keeps_its_counts_when_it_gains_dismissals(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    for step in MIGRATIONS[:6]:
        db.execute("BEGIN")
        step(db)
        db.execute("COMMIT")
    db.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '6')")
    db.execute(
        "INSERT INTO items (path, kind, size, mtime_ns, sha256, state, created_at, updated_at)"
        " VALUES (?, 'csv', 1, 1, ?, 'failed', 1, 1)",
        (os.fsencode(str(tmp_path / "a.csv")), "a" * 64),
    )
    assert migrate(db) == 6
    db.close()
    with Spool(path) as spool:
        assert spool.counts()["failed"] == 1
        assert spool.dismiss([1], now=2.0) == [1]
        assert spool.counts()["failed"] == 0


# -- the probe ------------------------------------------------------------------------------------


def test_the_probe_reads_the_keys_user_from_the_object_key() -> None:
    sha = hashlib.sha256(b"").hexdigest()
    assert key_user_of(f"uploads/bob/{sha}/exportsync-probe") == "bob"
    assert key_user_of(f"uploads/a%20b/{sha}/x") == "a b"  # the server percent-encodes
    assert key_user_of("elsewhere/bob/x") is None


def test_the_probe_spends_one_presign_ask_and_names_a_refused_key() -> None:
    api = FakeApi()
    result = probe(api)
    [call] = api.calls
    assert isinstance(call.request, BatchRequest)
    assert (len(call.request.presign), call.request.entries) == (1, 1)
    assert result.user is not None
    assert not result.refused
    api.script = [Forbidden("Forbidden", status=403)]
    assert probe(api).refused


# -- words: an empty file says so -----------------------------------------------------------------


def test_an_empty_csv_is_delivered_with_a_warning_event(tmp_path: Path) -> None:
    rig = _rig(tmp_path, Pacing(quiet_seconds=0.0, prompt_requests=1000))
    rig.drop("empty.csv", "")
    rig.clock.advance(rig.deliverer._ledger.wait_time())
    with capture_logs() as logs:
        assert rig.deliverer.step().requested
    warned = [e for e in logs if e["event"] == "empty_file"]
    assert [(e["log_level"], e["action"]) for e in warned] == [("warning", "sent as is")]
    assert rig.spool.items()[0].state == "delivered"
    rig.spool.close()


def test_an_empty_session_file_is_refused_in_plain_words() -> None:

    for data in (b"", b"  \n", b"\xef\xbb\xbf"):
        with pytest.raises(FileRejected) as refused:
            parse_session_file(data, default_user_id="alice")
        assert str(refused.value).startswith("session file is empty")
        assert "line 1 column 1" not in str(refused.value)


def test_the_license_is_an_spdx_string_with_its_file_so_builds_print_no_deprecation() -> None:
    """setuptools >= 77 warns (three times per `pip install`, in `make demo` too) about a
    `license = { text = ... }` table."""

    repo = Path(__file__).resolve().parents[2]
    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT"
    assert all((repo / name).is_file() for name in project["license-files"])
    assert any(dep.startswith("shtab") for dep in project["dependencies"])
