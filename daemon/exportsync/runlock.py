"""One daemon per state directory: two would each think they own the day's quota."""

from __future__ import annotations

import fcntl
import os
import signal
import time
from pathlib import Path

from exportsync import procinfo
from exportsync.errors import SpoolError
from exportsync.logs import get_logger

__all__ = ["WAKE_SIGNAL", "RunLock", "daemon_refusal", "running_pid", "wake_daemon"]

_log = get_logger(__name__)

_NAME = "exportsync.lock"
# Sent by `exportsync enqueue`/`retry` to the running daemon: look at the spool now. The daemon
# handles it from before it takes the lock, so the signal never meets its default action (exit).
WAKE_SIGNAL = signal.SIGUSR1


class RunLock:
    """An exclusive `flock` on `<state dir>/exportsync.lock`, holding the owner's pid."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / _NAME
        self._fd: int | None = None

    def acquire(self, *, contention_seconds: float = 0.5) -> None:
        """Take the lock or raise SpoolError naming the running daemon's pid.

        `running_pid` (every `exportsync status`) holds a shared lock for a moment; a daemon
        starting in that moment retries for up to `contention_seconds` instead of giving up.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        deadline = time.monotonic() + contention_seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    pid = running_pid(self.path.parent)
                    owner = f" (pid {pid})" if pid and pid > 0 else ""
                    raise SpoolError(
                        f"another exportsync is running on {self.path.parent}{owner}"
                    ) from None
            time.sleep(0.01)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the lock; the file stays for the next run
            self._fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def running_pid(state_dir: Path) -> int | None:
    """The pid of the daemon holding the lock, or None when no daemon runs."""
    path = state_dir / _NAME
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.read(fd, 32).decode("ascii", "replace").strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def daemon_refusal(state_dir: Path, pid: int) -> str | None:
    """Why `pid` is not the daemon running on `state_dir` (None when it is): it must be an
    `exportsync run` of the state folder's owner and, where the kernel tells (Linux), hold the
    lock itself. The lock file names whatever pid its writer chose."""
    try:
        owner = os.stat(state_dir).st_uid
    except OSError:
        return "the state folder cannot be looked at"
    process = procinfo.describe(pid)
    if process is None:
        return "no such process"
    if (process.uid, process.euid) != (owner, owner):
        return f"runs as uid {process.euid}, not the state folder's owner (uid {owner})"
    if not procinfo.is_exportsync_run(process.argv):
        return "not an `exportsync run`"
    if procinfo.holds_flock(pid, state_dir / _NAME) is False:
        return "does not hold the run lock"
    return None


def wake_daemon(state_dir: Path) -> bool:
    """Tell the daemon running on `state_dir` (if any) that the spool changed; True if told.

    Only a pid that passes `daemon_refusal` is signalled (a service account able to write the
    lock file cannot make root signal another process). On Linux the signal goes through a pidfd
    opened before the checks, so a pid reused after them is never signalled.
    """
    pid = running_pid(state_dir)
    if pid is None or pid <= 0:
        return False
    pidfd = _pidfd(pid)
    try:
        refusal = daemon_refusal(state_dir, pid)
        if refusal is not None:
            _log.warning("wake_refused", pid=pid, reason=refusal)
            return False
        if pidfd is not None:
            signal.pidfd_send_signal(pidfd, WAKE_SIGNAL)
        else:
            os.kill(pid, WAKE_SIGNAL)
    except OSError:
        return False  # exited meanwhile: it reads the spool when it starts
    finally:
        if pidfd is not None:
            os.close(pidfd)
    return True


def _pidfd(pid: int) -> int | None:
    """A descriptor on the process itself (Linux 5.3+), None where there is none."""
    if not hasattr(os, "pidfd_open"):
        return None
    try:
        return os.pidfd_open(pid)
    except OSError:
        return None  # gone (the checks say so too), or no pidfd support
