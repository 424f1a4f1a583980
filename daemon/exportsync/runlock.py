"""One daemon per state directory: two would each think they own the day's quota."""

from __future__ import annotations

import fcntl
import os
import signal
import time
from pathlib import Path

from exportsync.errors import SpoolError

__all__ = ["WAKE_SIGNAL", "RunLock", "running_pid", "wake_daemon"]

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


def wake_daemon(state_dir: Path) -> bool:
    """Tell the daemon running on `state_dir` (if any) that the spool changed; True if told."""
    pid = running_pid(state_dir)
    if pid is None or pid <= 0:
        return False
    try:
        os.kill(pid, WAKE_SIGNAL)
    except OSError:
        return False  # exited meanwhile (or not ours): it reads the spool when it starts
    return True
