"""The daemon loop in-process: real inotify, real SQLite, a scripted API, systemd notifications."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from exportsync.clock import Clock, FakeClock
from exportsync.daemon import IDLE_WAKE_SECONDS, Daemon
from exportsync.delivery import StepOutcome
from exportsync.errors import SpoolError
from exportsync.notify import Notifier
from exportsync.spool import Spool
from support.devstack import wait_for
from support.fake_api import FakeApi
from support.inprocess import fast_config

pytestmark = pytest.mark.integration


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


def _daemon(tmp_path: Path, api: FakeApi, clock: Clock | None = None) -> Daemon:
    return Daemon(fast_config(tmp_path), api=api, notifier=Notifier(), clock=clock)


def test_the_loop_waits_through_its_clock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Waits go through the injected clock, capped, and a wake-up (a new file, stop) ends them."""
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
    assert clock.waits == [IDLE_WAKE_SECONDS, IDLE_WAKE_SECONDS]
    assert clock.time() - start == 2 * IDLE_WAKE_SECONDS


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
        assert wait_for(lambda: sorted(api.routes) == ["session", "upload"], 10), api.routes
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
        assert wait_for(lambda: api.routes == ["upload"], 10)
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
    real_record = daemon.spool.record
    real_sending = daemon.spool.mark_sending
    failures = {"record": 1, "sending": 1}
    reconsidered: list[Path] = []

    def record(*args: Any, **kwargs: Any) -> Any:
        if failures["record"]:
            failures["record"] -= 1
            raise SpoolError("cannot commit to the spool: database or disk is full")
        return real_record(*args, **kwargs)

    def mark_sending(*args: Any, **kwargs: Any) -> None:
        if failures["sending"]:
            failures["sending"] -= 1
            raise SpoolError("cannot commit to the spool: database or disk is full")
        real_sending(*args, **kwargs)

    monkeypatch.setattr(daemon.spool, "record", record)
    monkeypatch.setattr(daemon.spool, "mark_sending", mark_sending)
    monkeypatch.setattr(daemon.watcher, "reconsider", reconsidered.append)
    first = tmp_path / "export" / "first.csv"
    first.write_text("a\n")
    runner = threading.Thread(target=daemon.run)
    runner.start()
    try:
        # The start-up scan could not record the file: the watcher is told to offer it again.
        assert wait_for(lambda: reconsidered == [first], 10)
        daemon.intake.offer(first)  # what the watcher's next rescan does
        # The first send hits the full disk too; the loop waits and tries again.
        assert wait_for(lambda: api.routes == ["upload"], 15)
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
        assert wait_for(lambda: api.routes == ["upload"], 10)
    finally:
        daemon.stop()
        runner.join(10)
    (sent,) = api.calls[0].payload
    assert sent.data == b"id,value\n" + b"1,2\n" * 1000
