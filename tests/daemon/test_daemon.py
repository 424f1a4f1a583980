"""The daemon loop in-process: real inotify, real SQLite, a scripted API, systemd notifications."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from exportsync.cli import dispatch_signal
from exportsync.clock import Clock, FakeClock, SystemClock
from exportsync.config import WatchConfig
from exportsync.daemon import IDLE_RELEASE_SECONDS, PRUNE_EVERY_SECONDS, Daemon
from exportsync.delivery import StepOutcome
from exportsync.errors import SpoolError
from exportsync.fs import files
from exportsync.notify import Notifier
from exportsync.rootwatch import SWEEP_SECONDS
from exportsync.runlock import WAKE_SIGNAL, RunLock
from exportsync.signals import SignalInbox
from exportsync.spool import PRUNE_CHUNK, NewVersion, Spool
from support.devstack import wait_for
from support.fake_api import FakeApi
from support.inprocess import fast_config


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify.sock"
    sock.bind(str(path))
    sock.settimeout(0.05)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # ping every 0.1 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    yield sock
    sock.close()


def _messages(sock: socket.socket) -> list[str]:
    out = []
    while True:
        try:
            out.append(sock.recv(4096).decode())
        except TimeoutError:
            return out


def _sent(api: FakeApi) -> tuple[int, int]:
    """(files, sessions) the fake API has been sent so far."""
    calls = list(api.calls)
    return sum(len(c.files) for c in calls), sum(len(c.sessions) for c in calls)


def _daemon(
    tmp_path: Path, api: FakeApi, clock: Clock | None = None, **overrides: object
) -> Daemon:
    return Daemon(fast_config(tmp_path, **overrides), api=api, notifier=Notifier(), clock=clock)


def test_the_loop_waits_through_its_clock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Waits go through the injected clock to exactly what is due (with nothing due, the daily
    prune: no idle polling), and a wake-up (a new file, stop) ends them."""
    clock = FakeClock()
    daemon = _daemon(tmp_path, FakeApi(), clock)
    outcomes = iter([StepOutcome(False, 30.0), StepOutcome(False, None), StepOutcome(True, 0.0)])

    def step() -> StepOutcome:
        outcome = next(outcomes, None)
        if outcome is None:
            daemon.stop()
            return StepOutcome(False, 2.0)
        if outcome.requested:
            daemon._wake.set()  # as a newly spooled file does
            return StepOutcome(False, 7.0)
        return outcome

    monkeypatch.setattr(daemon.deliverer, "step", step)
    start = clock.time()
    try:
        daemon._loop()
    finally:
        daemon.spool.close()
    assert clock.waits == [30.0, PRUNE_EVERY_SECONDS - 30.0]
    assert clock.time() - start == PRUNE_EVERY_SECONDS


def test_going_idle_after_work_releases_memory_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sleep of IDLE_RELEASE_SECONDS or more after the spool committed empties its page cache
    and trims the C heap, once per idle spell; the short waits between requests do not, nor
    does an idle spell with nothing committed since."""
    clock = FakeClock()
    daemon = _daemon(tmp_path, FakeApi(), clock)
    waits = clock.waits
    released: list[int] = []  # how many waits there had been at each release
    monkeypatch.setattr(daemon.spool, "release_memory", lambda: released.append(len(waits)))
    trims: list[int] = []

    def trim_heap() -> bool:
        trims.append(len(waits))
        return True

    monkeypatch.setattr("exportsync.daemon.trim_heap", trim_heap)
    committed = daemon.spool.commits
    script = iter(
        [
            (True, StepOutcome(True, 0.0)),  # a request: its outcome committed
            (False, StepOutcome(False, 1.0)),  # the plan's spacing: not idle
            (False, StepOutcome(False, None)),  # nothing due: idle after work
            (False, StepOutcome(False, 3600.0)),  # still idle, nothing committed since
            (True, StepOutcome(False, IDLE_RELEASE_SECONDS)),  # new work, then a long wait
        ]
    )

    def step() -> StepOutcome:
        nonlocal committed
        entry = next(script, None)
        if entry is None:
            daemon.stop()
            return StepOutcome(False, 0.0)
        commits, outcome = entry
        if commits:
            with daemon.spool._tx():  # as recording an outcome or a spooled file does
                pass
        return outcome

    monkeypatch.setattr(daemon.deliverer, "step", step)
    try:
        daemon._loop()
    finally:
        daemon.spool.close()
    assert daemon.spool.commits == committed + 2
    assert waits == [1.0, PRUNE_EVERY_SECONDS - 1.0, 3600.0, IDLE_RELEASE_SECONDS]
    assert released == [1, 3]  # before the idle wait, and before the wait after new work
    assert trims == [1, 3]


def test_no_memory_is_released_while_the_intake_holds_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Delivery idle while files are still settling or being read: the burst goes on, so the
    page cache it uses stays."""
    clock = FakeClock()
    daemon = _daemon(tmp_path, FakeApi(), clock)
    released: list[bool] = []
    monkeypatch.setattr(daemon.spool, "release_memory", lambda: released.append(True))
    monkeypatch.setattr(daemon.watcher, "busy", lambda: True)
    steps = iter([StepOutcome(True, 0.0), StepOutcome(False, None)])

    def step() -> StepOutcome:
        outcome = next(steps, None)
        if outcome is None:
            daemon.stop()
            return StepOutcome(False, 0.0)
        with daemon.spool._tx():
            pass
        return outcome

    monkeypatch.setattr(daemon.deliverer, "step", step)
    try:
        daemon._loop()
    finally:
        daemon.spool.close()
    assert clock.waits == [PRUNE_EVERY_SECONDS]
    assert released == []


def test_releasing_memory_keeps_every_row_of_an_in_memory_spool(tmp_path: Path) -> None:
    """`PRAGMA shrink_memory` frees only pages SQLite can read again: an in-memory database's
    pages are the data, and stay."""
    spool = Spool.in_memory()
    try:
        versions = [
            NewVersion(tmp_path / f"f{i:05d}.csv", "csv", 1, 1, f"{i:064x}", i) for i in range(2000)
        ]
        spool.record_many(versions, now=0.0)
        spool.release_memory()
        assert spool.counts()["pending"] == 2000
        assert len(spool.versions()) == 2000
    finally:
        spool.close()


def test_files_flow_from_folder_to_api_and_systemd_hears_every_phase(
    tmp_path: Path, notify_socket: socket.socket
) -> None:
    api = FakeApi()
    daemon = _daemon(tmp_path, api)
    (tmp_path / "export" / "before.csv").write_text("a\n1\n")
    runner = threading.Thread(target=daemon.run)
    runner.start()
    try:
        assert wait_for(lambda: "READY=1" in "".join(_messages(notify_socket)), 10)
        (tmp_path / "export" / "after.session.json").write_text(
            '{"timestamp": "2026-11-25T10:00:00Z"}'
        )
        assert wait_for(lambda: _sent(api) == (1, 1), 10), api.calls
        assert wait_for(lambda: "WATCHDOG=1" in "".join(_messages(notify_socket)), 5)
    finally:
        daemon.stop()
        runner.join(10)
    assert not runner.is_alive()
    assert any("STOPPING=1" in m for m in _messages(notify_socket))


def test_items_interrupted_by_a_crash_are_sent_again_at_start(tmp_path: Path) -> None:
    api = FakeApi()
    daemon = _daemon(tmp_path, api)
    path = tmp_path / "export" / "a.csv"
    path.write_text("a\n")
    result = daemon.intake.offer(path)
    assert result is not None
    daemon.spool.mark_sending([result.item.id], now=daemon.clock.time())
    runner = threading.Thread(target=daemon.run)
    runner.start()
    try:
        assert wait_for(lambda: _sent(api) == (1, 0), 10)
    finally:
        daemon.stop()
        runner.join(10)
    with Spool.open(tmp_path / "state") as spool:
        assert spool.counts()["delivered"] == 1


def test_a_full_disk_neither_stops_the_loop_nor_loses_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = FakeApi()
    daemon = _daemon(tmp_path, api)
    real_record = daemon.spool.record_many
    real_sending = daemon.spool.mark_sending
    failures = {"record": 1, "sending": 1}

    def record_many(*args: Any, **kwargs: Any) -> Any:
        if failures["record"]:
            failures["record"] -= 1
            raise SpoolError("cannot commit to the spool: database or disk is full")
        return real_record(*args, **kwargs)

    def mark_sending(*args: Any, **kwargs: Any) -> None:
        if failures["sending"]:
            failures["sending"] -= 1
            raise SpoolError("cannot commit to the spool: database or disk is full")
        real_sending(*args, **kwargs)

    monkeypatch.setattr(daemon.spool, "record_many", record_many)
    monkeypatch.setattr(daemon.spool, "mark_sending", mark_sending)
    first = tmp_path / "export" / "first.csv"
    first.write_text("a\n")
    runner = threading.Thread(target=daemon.run)
    runner.start()
    try:
        # The file could not be recorded; a rescan (here: the one an overflow asks for) offers
        # it again, since a batch that failed does not count as reported.
        assert wait_for(lambda: failures["record"] == 0, 10)
        daemon.watcher.notify_overflow()
        # The first send hits the full disk too; the loop waits and tries again.
        assert wait_for(lambda: _sent(api) == (1, 0), 15)
    finally:
        daemon.stop()
        runner.join(10)
    assert not runner.is_alive()


def test_a_file_still_being_written_at_start_is_sent_once_complete(
    tmp_path: Path, notify_socket: socket.socket
) -> None:
    api = FakeApi()
    daemon = _daemon(tmp_path, api)
    path = tmp_path / "export" / "slow.csv"
    runner = threading.Thread(target=daemon.run)
    try:
        with path.open("wb") as handle:
            handle.write(b"id,value\n")
            handle.flush()
            runner.start()
            assert wait_for(lambda: "READY=1" in "".join(_messages(notify_socket)), 10)
            # The start-up scan found the file mid-write; the writer goes on, then closes it.
            handle.write(b"1,2\n" * 1000)
            handle.flush()
            assert api.calls == []
        assert wait_for(lambda: _sent(api) == (1, 0), 10)
    finally:
        daemon.stop()
        runner.join(10)
    (sent,) = api.calls[0].files
    assert sent.data == b"id,value\n" + b"1,2\n" * 1000


def test_the_first_request_carries_the_whole_backlog(tmp_path: Path) -> None:
    """Nothing goes before the start-up scan is done: 30 files waiting at start, one request."""
    api = FakeApi()
    daemon = _daemon(tmp_path, api)
    for i in range(20):
        (tmp_path / "export" / f"r{i}.csv").write_text(f"id\n{i}\n")
    for i in range(10):
        (tmp_path / "export" / f"s{i}.session.json").write_text(
            f'{{"timestamp": "2026-11-25T10:00:{i:02d}Z"}}'
        )
    old = 1_700_000_000
    for path in (tmp_path / "export").iterdir():
        os.utime(path, (old, old))  # written long ago: the scan takes them at once
    runner = threading.Thread(target=daemon.run)
    runner.start()
    try:
        assert wait_for(lambda: _sent(api) == (20, 10), 10), api.calls
    finally:
        daemon.stop()
        runner.join(10)
    assert len(api.calls) == 1


@pytest.mark.parametrize(("daily", "pause"), [(0, 0.02), (10, 0.5)])
def test_without_a_daily_limit_a_closed_file_is_taken_at_once(
    tmp_path: Path, daily: int, pause: float
) -> None:
    # The default settle period (longer than the close quiet), not fast_config's short one.
    default = next(f.default for f in fields(WatchConfig) if f.name == "settle_seconds")
    settle = {"watch.settle_seconds": default}
    daemon = _daemon(tmp_path, FakeApi(), None, **{"quota.daily_requests": daily, **settle})
    try:
        assert daemon.watcher.settler.quiet_seconds == pause
    finally:
        daemon.spool.close()


def test_a_name_that_is_not_utf8_present_at_start_is_delivered(tmp_path: Path) -> None:
    api = FakeApi()
    daemon = _daemon(tmp_path, api)
    (tmp_path / "export" / os.fsdecode(b"r\xff\xfe.csv")).write_text("a\n")
    runner = threading.Thread(target=daemon.run)
    runner.start()
    try:
        assert wait_for(lambda: _sent(api) == (1, 0), 10)
    finally:
        daemon.stop()
        runner.join(10)
    assert not runner.is_alive()
    assert [f.filename for f in api.calls[0].files] == ["r\ufffd\ufffd.csv"]


def test_a_corrupt_spool_is_set_aside_the_folder_rescanned_and_the_day_counted_used(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "spool.sqlite3").write_bytes(b"\x00garbage, not SQLite\n" * 200)
    api = FakeApi()
    with capture_logs() as logs:
        daemon = _daemon(tmp_path, api)
    (tmp_path / "export" / "a.csv").write_text("a\n")
    runner = threading.Thread(target=daemon.run)
    runner.start()
    try:
        assert wait_for(lambda: daemon.spool.counts()["pending"] == 1, 10)
        quota = daemon.ledger.snapshot()
        assert quota.used == quota.limit == 10  # nothing is sent before the reset
    finally:
        daemon.stop()
        runner.join(10)
    assert not runner.is_alive()
    assert api.calls == []
    [event] = [e for e in logs if e["event"] == "spool_corrupt"]
    assert event["log_level"] == "error"
    assert [p.name for p in state.glob("spool.sqlite3.corrupt-*")] == [Path(event["moved_to"]).name]


def test_an_exception_taking_in_one_file_fails_that_file_and_the_daemon_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = files.snapshot

    def snapshot(root: Path, path: Path, **kwargs: Any) -> files.FileSnapshot:
        if path.name.startswith("bad"):
            raise ValueError("a bug in intake")
        return real(root, path, **kwargs)

    monkeypatch.setattr(files, "snapshot", snapshot)
    api = FakeApi()
    daemon = _daemon(tmp_path, api)
    (tmp_path / "export" / "bad-at-start.csv").write_text("a\n")
    (tmp_path / "export" / "good.csv").write_text("b\n")
    runner = threading.Thread(target=daemon.run)
    runner.start()
    try:
        assert wait_for(lambda: _sent(api) == (1, 0), 10)
        (tmp_path / "export" / "bad-later.csv").write_text("c\n")
        assert wait_for(lambda: daemon.spool.counts()["failed"] == 2, 10)
    finally:
        daemon.stop()
        runner.join(10)
    assert not runner.is_alive()
    failed = {i.path.name: i.last_error for i in daemon_spool_items(tmp_path, "failed")}
    assert failed == {
        "bad-at-start.csv": "ValueError: a bug in intake",
        "bad-later.csv": "ValueError: a bug in intake",
    }


def daemon_spool_items(tmp_path: Path, state: str) -> list[Any]:
    with Spool.open(tmp_path / "state") as spool:
        return spool.items(state)  # type: ignore[arg-type]


def test_the_watch_folder_deleted_and_recreated_while_running_is_watched_again(
    tmp_path: Path,
) -> None:
    api = FakeApi()
    daemon = _daemon(tmp_path, api)
    export = tmp_path / "export"
    runner = threading.Thread(target=daemon.run)
    with capture_logs() as logs:
        runner.start()
        try:
            (export / "a.csv").write_text("a\n")
            assert wait_for(lambda: len(api.calls) == 1, 15)
            shutil.rmtree(export)
            assert wait_for(lambda: daemon.watcher.missing, 15)
            export.mkdir()
            assert wait_for(lambda: not daemon.watcher.missing, 15)
            (export / "b.csv").write_text("b\n")
            assert wait_for(lambda: len(api.calls) == 2, 15)
            assert runner.is_alive()
        finally:
            daemon.stop()
            runner.join(10)
    assert [f.filename for c in api.calls for f in c.files] == ["a.csv", "b.csv"]
    assert [e["event"] for e in logs].count("watch_dir_missing") == 1


def test_a_watch_folder_missing_at_start_is_waited_for(tmp_path: Path) -> None:
    api = FakeApi()
    daemon = _daemon(tmp_path, api)
    export = tmp_path / "export"
    export.rmdir()  # a drive not mounted yet at boot
    runner = threading.Thread(target=daemon.run)
    with capture_logs() as logs:
        runner.start()
        try:
            assert wait_for(lambda: any(e["event"] == "daemon_ready" for e in logs), 10)
        except BaseException:
            daemon.stop()
            raise
    [ready] = [e for e in logs if e["event"] == "daemon_ready"]
    assert ready["watch_dir_missing"] is True
    try:
        assert daemon.watcher.missing
        export.mkdir()
        assert wait_for(lambda: not daemon.watcher.missing, 15)
        (export / "late.csv").write_text("a\n")
        assert wait_for(lambda: len(api.calls) == 1, 15)
        assert runner.is_alive()
    finally:
        daemon.stop()
        runner.join(10)
    assert not runner.is_alive()


def _spy_on_hashing(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the files the daemon hashes (reads whole), in order."""
    hashed: list[str] = []
    real_snapshot = files.snapshot

    def snapshot(root: Path, path: Path, **kwargs: Any) -> Any:
        hashed.append(path.name)
        return real_snapshot(root, path, **kwargs)

    monkeypatch.setattr(files, "snapshot", snapshot)
    return hashed


def test_start_up_hashes_only_files_the_spool_does_not_know_as_they_are(
    tmp_path: Path, notify_socket: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = FakeApi()
    daemon = _daemon(tmp_path, api)
    export = tmp_path / "export"
    old = daemon.clock.time() - 3600
    for name in ("known.csv", "touched.csv", "new.csv"):
        (export / name).write_text(name)
        os.utime(export / name, (old, old))
    for name in ("known.csv", "touched.csv"):
        result = daemon.intake.offer(export / name)
        assert result is not None
        daemon.spool.mark_sending([result.item.id], now=old)
        daemon.spool.mark_delivered(result.item.id, now=old)
    os.utime(export / "touched.csv", (old + 1, old + 1))  # same bytes, new mtime
    hashed = _spy_on_hashing(monkeypatch)
    runner = threading.Thread(target=daemon.run)
    with capture_logs() as logs:
        runner.start()
        try:
            assert wait_for(lambda: "READY=1" in "".join(_messages(notify_socket)), 10)
            assert sorted(hashed) == ["new.csv", "touched.csv"]
            assert wait_for(lambda: api.routes == ["batch"], 10)
        finally:
            daemon.stop()
            runner.join(10)
    # One comparison with the spool set the known file aside before any per-file look-up.
    assert [e["changed"] for e in logs if e["event"] == "startup_scan"] == [2]
    (call,) = api.calls
    assert [f.filename for f in call.files] == ["new.csv"]


def test_the_daemon_prunes_old_delivered_items_at_start(
    tmp_path: Path, notify_socket: socket.socket
) -> None:
    daemon = _daemon(tmp_path, FakeApi())
    long_ago = daemon.clock.time() - 40 * 86400
    result = daemon.spool.record(
        tmp_path / "export" / "gone.csv", "csv", size=1, mtime_ns=1, sha256="aa", now=long_ago
    )
    daemon.spool.mark_sending([result.item.id], now=long_ago)
    daemon.spool.mark_delivered(result.item.id, now=long_ago)
    runner = threading.Thread(target=daemon.run)
    runner.start()
    try:
        assert wait_for(lambda: daemon.spool.counts()["delivered"] == 0, 10)
    finally:
        daemon.stop()
        runner.join(10)


def test_a_delivery_step_runs_between_two_chunks_of_a_prune(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pruning a large spool never holds the delivery loop for the whole pass: the loop prunes
    one chunk (at most PRUNE_CHUNK rows, one transaction) per turn, and a delivery step runs
    before the next chunk."""
    clock = FakeClock()
    daemon = _daemon(tmp_path, FakeApi(), clock)
    long_ago = clock.time() - 40 * 86400
    results = daemon.spool.record_many(
        [
            NewVersion(tmp_path / "export" / f"gone-{i:05d}.csv", "csv", 1, 1, f"{i:064x}", 1)
            for i in range(3 * PRUNE_CHUNK)
        ],
        now=long_ago,
    )
    daemon.spool.mark_delivered_many([(r.item.id, None) for r in results], now=long_ago)
    seen: list[int] = []  # delivered rows left, as each delivery step found them

    def step() -> StepOutcome:
        seen.append(daemon.spool.counts()["delivered"])
        if not daemon.pruner.busy:
            daemon.stop()
        return StepOutcome(False, None)

    monkeypatch.setattr(daemon.deliverer, "step", step)
    try:
        daemon._loop()
    finally:
        daemon.spool.close()
    # One chunk gone before each step: never the whole pass before the first.
    assert seen[:3] == [2 * PRUNE_CHUNK, PRUNE_CHUNK, 0]


def test_an_overflow_rescan_hashes_only_what_the_spool_does_not_know(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After lost events the folder is compared with the spool in one query, not file by file,
    and not with what this watcher happens to remember (here: nothing)."""
    api = FakeApi()
    config = fast_config(tmp_path, **{"watch.settle_seconds": 0.05})
    daemon = Daemon(config, api=api, notifier=Notifier())
    export = tmp_path / "export"
    old = daemon.clock.time() - 3600
    names = [f"f{n:02}.csv" for n in range(40)]
    for name in names:
        (export / name).write_text(name)
        os.utime(export / name, (old, old))
    for result in daemon.intake.offer_many([export / name for name in names]):
        assert result is not None
        daemon.spool.mark_sending([result.item.id], now=old)
        daemon.spool.mark_delivered(result.item.id, now=old)
    os.utime(export / "f07.csv", (old + 1, old + 1))  # same bytes, new mtime: looked at again
    hashed = _spy_on_hashing(monkeypatch)
    versions = 0
    real_versions = daemon.spool.versions

    def counted_versions() -> Any:
        nonlocal versions
        versions += 1
        return real_versions()

    monkeypatch.setattr(daemon.spool, "versions", counted_versions)
    offered: list[str] = []

    def step() -> bool:
        offered.extend(path.name for path in daemon.watcher.run_pending())
        return not daemon.watcher.settler  # nothing left settling

    try:
        with capture_logs() as logs:
            daemon.watcher.notify_overflow()
            assert wait_for(step, 10)
    finally:
        daemon.spool.close()
    # Only the changed file is offered, so only it is hashed (and looked up).
    assert offered == ["f07.csv"]
    assert hashed == ["f07.csv"]
    assert versions == 1
    assert [e["changed"] for e in logs if e["event"] == "watch_rescanned"] == [1]


class _CountingClock(SystemClock):
    """The real clock, recording how long each wait of the loop was asked to last."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        self.waits.append(seconds)
        return super().wait(seconds, stop)


def test_an_idle_daemon_never_wakes_and_a_retry_from_another_process_wakes_it(
    tmp_path: Path,
) -> None:
    api = FakeApi()
    clock = _CountingClock()
    daemon = _daemon(tmp_path, api, clock)
    path = tmp_path / "export" / "a.csv"
    path.write_text("a\n1\n")
    result = daemon.intake.offer(path)
    assert result is not None
    daemon.spool.mark_failed(result.item.id, "refused for the test", now=clock.time())
    config = tmp_path / "exportsync.toml"
    config.write_text(
        f"[watch]\ndir = {json.dumps(str(tmp_path / 'export'))}\n"
        f"[state]\ndir = {json.dumps(str(tmp_path / 'state'))}\n"
    )
    previous = signal.getsignal(WAKE_SIGNAL)
    lock = RunLock(tmp_path / "state")
    lock.acquire()  # as `exportsync run` does: the pid `retry` signals is this process's
    inbox = SignalInbox()
    inbox.listen(WAKE_SIGNAL)
    runner = threading.Thread(target=daemon.run)
    runner.start()
    try:
        # Idle: each wait lasts until the daily prune (the setup's own offer may end the first
        # at once); the watcher has no timer either.
        assert wait_for(lambda: bool(clock.waits), 10)
        assert clock.waits[-1] == pytest.approx(PRUNE_EVERY_SECONDS, abs=60)
        assert all(wait > PRUNE_EVERY_SECONDS - 60 for wait in clock.waits), clock.waits
        assert daemon.watcher._timeout() > SWEEP_SECONDS - 10  # its only wake: the folder sweep
        retry = subprocess.run(
            [sys.executable, "-m", "exportsync", "retry", "--all-failed", "--config", str(config)],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert retry.returncode == 0, retry.stderr
        # This process is no `exportsync run`, so the retry's own signal was refused (§3b); send
        # the one it sends a real daemon (test_runlock wakes a real `exportsync run` this way).
        assert "not an `exportsync run`" in retry.stdout + retry.stderr
        os.kill(os.getpid(), WAKE_SIGNAL)
        # The main thread of `exportsync run` acts on what its inbox recorded; so does this one.
        for signum in inbox.wait(10):
            dispatch_signal(signum, daemon)
        assert wait_for(lambda: _sent(api) == (1, 0), 10)
    finally:
        daemon.stop()
        runner.join(10)
        lock.release()
        signal.signal(WAKE_SIGNAL, previous)
        inbox.close()
    assert not runner.is_alive()


def test_a_full_disk_at_start_is_waited_out_not_an_exit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's "database or disk is full" while opening the spool: the daemon waits for room
    with a growing pause (it used to exit 1, and a restart loop changes nothing)."""
    real_connect = sqlite3.connect
    refusals = iter(range(3))

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        if next(refusals, None) is not None:
            error = sqlite3.OperationalError("database or disk is full")
            error.sqlite_errorcode = sqlite3.SQLITE_FULL
            raise error
        connection: sqlite3.Connection = real_connect(*args, **kwargs)
        return connection

    monkeypatch.setattr(sqlite3, "connect", connect)
    clock = FakeClock()
    with capture_logs() as logs:
        daemon = _daemon(tmp_path, FakeApi(), clock)
    try:
        assert clock.waits == [1.0, 2.0, 4.0]
        assert [e["event"] for e in logs if e["log_level"] == "error"] == [
            "spool_full_at_start"
        ] * 3
        assert daemon.spool.counts()["pending"] == 0  # opened once there was room
    finally:
        daemon.spool.close()


def test_a_spool_that_cannot_be_opened_for_another_reason_still_stops_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        error = sqlite3.OperationalError("unable to open database file")
        error.sqlite_errorcode = sqlite3.SQLITE_CANTOPEN
        raise error

    monkeypatch.setattr(sqlite3, "connect", connect)
    with pytest.raises(SpoolError, match="unable to open"):
        _daemon(tmp_path, FakeApi(), FakeClock())
