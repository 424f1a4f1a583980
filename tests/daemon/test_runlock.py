"""The run lock: one daemon per state directory, and `running_pid` to tell who holds it."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from exportsync.errors import SpoolError
from exportsync.runlock import WAKE_SIGNAL, RunLock, running_pid, wake_daemon


def test_no_lock_file_means_nothing_runs(tmp_path: Path) -> None:
    assert running_pid(tmp_path) is None
    assert running_pid(tmp_path / "missing") is None


def test_acquire_records_this_pid_and_release_frees_it(tmp_path: Path) -> None:
    state = tmp_path / "state"
    lock = RunLock(state)
    lock.acquire()
    try:
        assert state.is_dir()  # created on demand
        assert running_pid(state) == os.getpid()
        assert lock.path.read_text() == f"{os.getpid()}\n"
        assert lock.path.stat().st_mode & 0o777 == 0o600
    finally:
        lock.release()
    assert running_pid(state) is None
    assert lock.path.exists()  # kept for the next run


def test_a_second_acquire_fails_and_names_the_pid(tmp_path: Path) -> None:
    with RunLock(tmp_path):
        second = RunLock(tmp_path)
        with pytest.raises(SpoolError, match=rf"another exportsync is running .*pid {os.getpid()}"):
            second.acquire(contention_seconds=0.0)
        assert running_pid(tmp_path) == os.getpid()  # the failed attempt changed nothing
    assert running_pid(tmp_path) is None


def test_the_lock_can_be_taken_again_after_release(tmp_path: Path) -> None:
    lock = RunLock(tmp_path)
    lock.acquire()
    lock.release()
    lock.release()  # harmless twice
    with RunLock(tmp_path):
        assert running_pid(tmp_path) == os.getpid()


def test_a_stale_pid_in_an_unlocked_file_is_not_a_running_daemon(tmp_path: Path) -> None:
    (tmp_path / "exportsync.lock").write_text("999999\n")
    assert running_pid(tmp_path) is None
    with RunLock(tmp_path):
        assert running_pid(tmp_path) == os.getpid()  # the stale pid was replaced


def test_a_locked_file_without_a_pid_reads_as_unknown(tmp_path: Path) -> None:
    path = tmp_path / "exportsync.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert running_pid(tmp_path) == -1
        with pytest.raises(SpoolError) as info:
            RunLock(tmp_path).acquire(contention_seconds=0.0)
        assert "pid" not in str(info.value)
    finally:
        os.close(fd)


def test_a_status_reading_the_lock_does_not_stop_a_daemon_starting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`running_pid` holds a shared lock for a moment; acquire retries through that moment."""
    real_flock = fcntl.flock
    refusals = [BlockingIOError(), BlockingIOError()]

    def contended(fd: int, operation: int) -> None:
        if refusals:
            raise refusals.pop()
        real_flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", contended)
    with RunLock(tmp_path):
        assert not refusals
        monkeypatch.setattr(fcntl, "flock", real_flock)
        assert running_pid(tmp_path) == os.getpid()


def test_another_process_holding_the_lock_is_named(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from exportsync.runlock import RunLock\n"
        "lock = RunLock(Path(sys.argv[1])); lock.acquire()\n"
        "print('locked', flush=True); sys.stdin.read()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "daemon")}
    with subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    ) as child:
        assert child.stdout is not None
        assert child.stdin is not None
        try:
            assert child.stdout.readline().strip() == "locked"
            assert running_pid(tmp_path) == child.pid
            with pytest.raises(SpoolError, match=f"pid {child.pid}"):
                RunLock(tmp_path).acquire(contention_seconds=0.0)
        finally:
            child.stdin.close()
            assert child.wait(10) == 0
    assert running_pid(tmp_path) is None  # the child's exit dropped the lock


def test_wake_daemon_signals_the_lock_holder_and_only_it(tmp_path: Path) -> None:
    state = tmp_path / "state"
    assert not wake_daemon(state)  # no daemon: nobody to tell, nothing sent
    woken = threading.Event()
    previous = signal.signal(WAKE_SIGNAL, lambda _signum, _frame: woken.set())
    try:
        with RunLock(state):
            assert wake_daemon(state)
            assert woken.wait(10)
        woken.clear()
        assert not wake_daemon(state)  # released: no signal
        assert not woken.is_set()
    finally:
        signal.signal(WAKE_SIGNAL, previous)
