"""The run lock: one daemon per state directory, and `running_pid` to tell who holds it."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from exportsync import procinfo
from exportsync.clock import FakeClock
from exportsync.errors import SpoolError
from exportsync.intake import Intake
from exportsync.matcher import FileMatcher
from exportsync.runlock import RunLock, daemon_refusal, running_pid, wake_daemon
from exportsync.spool import Spool
from support.devstack import wait_for


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


def test_wake_daemon_signals_nobody_without_a_daemon(tmp_path: Path) -> None:
    state = tmp_path / "state"
    assert not wake_daemon(state)  # no lock file: nobody to tell, nothing sent
    with RunLock(state):
        pass
    assert not wake_daemon(state)  # released: no signal


# -- a foreign pid in the lock is never signalled (§3b) ------------------------------------------


class _Sent:
    """Records every signal the code under test tries to send (and sends none)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[str, int]] = []
        monkeypatch.setattr(os, "kill", lambda pid, sig: self.calls.append(("kill", pid)))
        monkeypatch.setattr(
            signal, "pidfd_send_signal", lambda fd, sig: self.calls.append(("pidfd", fd))
        )


def _hold_lock_naming(state: Path, pid: int) -> int:
    """What a hostile owner of the state folder can do: take the lock and write any pid."""
    state.mkdir(parents=True, exist_ok=True)
    fd = os.open(state / "exportsync.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.ftruncate(fd, 0)
    os.write(fd, f"{pid}\n".encode())
    return fd


@pytest.mark.integration
def test_a_foreign_pid_in_the_lock_is_never_signalled(tmp_path: Path) -> None:
    """`sleep` (SIGUSR1 would end it) named in a held lock: refused, and it lives on."""
    state = tmp_path / "state"
    with subprocess.Popen(["sleep", "60"]) as sleeper:
        fd = _hold_lock_naming(state, sleeper.pid)
        try:
            with capture_logs() as logs:
                assert running_pid(state) == sleeper.pid
                assert not wake_daemon(state)
            assert sleeper.poll() is None  # not signalled
            refused = [e for e in logs if e["event"] == "wake_refused"]
            assert [e["reason"] for e in refused] == ["not an `exportsync run`"]
        finally:
            os.close(fd)
            sleeper.kill()
    assert sleeper.returncode == -signal.SIGKILL  # our kill, not a SIGUSR1


@pytest.mark.integration
def test_a_foreign_process_posing_as_exportsync_run_is_never_signalled(tmp_path: Path) -> None:
    """Its arguments say `exportsync run`, but it does not hold the lock: not the daemon."""
    state = tmp_path / "state"
    code = "import sys, time; print('up', flush=True); time.sleep(60)"
    with subprocess.Popen(
        [sys.executable, "-c", code, "exportsync", "run"], stdout=subprocess.PIPE, text=True
    ) as poser:
        assert poser.stdout is not None
        assert poser.stdout.readline().strip() == "up"
        fd = _hold_lock_naming(state, poser.pid)
        try:
            with capture_logs() as logs:
                assert not wake_daemon(state)
            assert poser.poll() is None
            refused = [e for e in logs if e["event"] == "wake_refused"]
            assert [e["reason"] for e in refused] == ["does not hold the run lock"]
        finally:
            os.close(fd)
            poser.kill()


def test_a_foreign_user_s_exportsync_run_is_never_signalled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An `exportsync run` holding the lock but running as another user than the state folder's
    owner (root's daemon named in a service account's lock, say): refused."""
    state = tmp_path / "state"
    owner = os.stat(tmp_path).st_uid
    monkeypatch.setattr(
        procinfo,
        "describe",
        lambda pid: procinfo.ProcessInfo(owner + 1, owner + 1, ("/usr/bin/exportsync", "run")),
    )
    monkeypatch.setattr(procinfo, "holds_flock", lambda pid, path: True)
    sent = _Sent(monkeypatch)
    with RunLock(state):
        assert daemon_refusal(state, os.getpid()) == (
            f"runs as uid {owner + 1}, not the state folder's owner (uid {owner})"
        )
        assert not wake_daemon(state)
    assert sent.calls == []


def test_an_exportsync_run_of_the_owner_holding_the_lock_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    owner = os.stat(tmp_path).st_uid
    argv = ("/usr/bin/python3", "/opt/exportsync/bin/exportsync", "run", "--config", "x.toml")
    monkeypatch.setattr(procinfo, "describe", lambda pid: procinfo.ProcessInfo(owner, owner, argv))
    sent = _Sent(monkeypatch)
    with RunLock(state):
        assert procinfo.holds_flock(os.getpid(), state / "exportsync.lock") is True
        assert daemon_refusal(state, os.getpid()) is None
        assert wake_daemon(state)
    assert len(sent.calls) == 1


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (("/usr/local/bin/exportsync", "run"), True),
        (("/usr/bin/python3", "/home/u/.venv/bin/exportsync", "run", "--config", "c"), True),
        (("python3", "-m", "exportsync", "run", "--log-format", "json"), True),
        (("python3", "-m", "exportsync", "status"), False),
        (("sleep", "60"), False),
        (("bash", "-c", "exportsync-like run"), False),
        (("/usr/bin/exportsync",), False),
    ],
)
def test_exportsync_run_is_told_from_its_arguments(argv: tuple[str, ...], expected: bool) -> None:
    assert procinfo.is_exportsync_run(argv) is expected


def test_without_proc_ps_tells_user_and_arguments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """macOS and the BSDs have no /proc: `ps` answers (arguments joined by spaces)."""
    fake_ps = tmp_path / "ps"
    fake_ps.write_text(
        "#!/bin/sh\n"
        '[ "$*" = "-o ruid= -o uid= -o command= -p 4242" ] || exit 1\n'
        "echo '  501   501 /usr/bin/python3 /usr/local/bin/exportsync run --config c.toml'\n"
    )
    fake_ps.chmod(0o755)
    monkeypatch.setattr(procinfo, "_LINUX", False)
    monkeypatch.setattr(procinfo, "_PROC", tmp_path / "no-proc")
    monkeypatch.setattr(procinfo, "_PS", str(fake_ps))
    info = procinfo.describe(4242)
    assert info == procinfo.ProcessInfo(
        501, 501, ("/usr/bin/python3", "/usr/local/bin/exportsync", "run", "--config", "c.toml")
    )
    assert procinfo.is_exportsync_run(info.argv)
    assert procinfo.describe(4343) is None  # ps found no such process
    assert procinfo.holds_flock(4242, tmp_path / "exportsync.lock") is None  # cannot be told


@pytest.mark.integration
def test_a_real_exportsync_run_is_woken_by_retry_unlike_a_foreign_pid(tmp_path: Path) -> None:
    """A real `exportsync run` holds the lock: `exportsync retry` (another process) wakes it, and
    the idle daemon, which would otherwise sleep until its daily prune, tries the item at once
    (api.url answers nothing here: `api_unreachable`). SIGUSR1 unhandled would end it instead."""
    export, state = tmp_path / "export", tmp_path / "state"
    export.mkdir()
    (export / "a.csv").write_text("a\n1\n")
    with Spool.open(state) as spool:
        intake = Intake(spool, root=export, matcher=FileMatcher(), clock=FakeClock())
        result = intake.offer(export / "a.csv")
        assert result is not None
        spool.mark_failed(result.item.id, "refused for the test", now=time.time())
    key = tmp_path / "api_key"
    key.write_text("k" * 40 + "\n")
    key.chmod(0o600)
    config = tmp_path / "exportsync.toml"
    config.write_text(
        f"[watch]\ndir = {json.dumps(str(export))}\n"
        f'[api]\nurl = "http://127.0.0.1:9"\napi_key_file = {json.dumps(str(key))}\n'
        f'[state]\ndir = {json.dumps(str(state))}\n[log]\nformat = "json"\n'
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "daemon")}
    env.pop("EXPORTSYNC_API_KEY", None)
    env.pop("EXPORTSYNC_CONFIG", None)
    log_path = tmp_path / "daemon.log"
    with (
        log_path.open("wb") as log,
        subprocess.Popen(
            [sys.executable, "-m", "exportsync", "run", "--config", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        ) as daemon,
    ):
        try:
            assert wait_for(
                lambda: b"daemon_ready" in log_path.read_bytes() or daemon.poll() is not None, 30
            ), log_path.read_text()
            assert daemon.poll() is None, log_path.read_text()
            assert running_pid(state) == daemon.pid
            assert daemon_refusal(state, daemon.pid) is None
            assert b"api_unreachable" not in log_path.read_bytes()  # idle: the item had failed
            command = ["retry", "--all-failed", "--config", str(config)]
            retry = subprocess.run(
                [sys.executable, "-m", "exportsync", *command],
                capture_output=True,
                text=True,
                check=False,
                env=env,
                timeout=60,
            )
            assert retry.returncode == 0, retry.stderr
            assert wait_for(lambda: b"api_unreachable" in log_path.read_bytes(), 30), (
                log_path.read_text()
            )
            assert daemon.poll() is None, log_path.read_text()  # handled, not killed
            daemon.send_signal(signal.SIGTERM)
            try:
                code = daemon.wait(60)
            except subprocess.TimeoutExpired:
                raise AssertionError(log_path.read_text()) from None
            assert code == 0, log_path.read_text()
        finally:
            if daemon.poll() is None:
                daemon.kill()
