"""Who a process is: its user, its command line, and whether it holds a given flock.

`exportsync enqueue`/`retry` signal the pid the run lock names; whoever can write the state folder
can write any pid there, and the command may run as root. So before a signal the pid is asked to
be an `exportsync run` of the state folder's owner that holds the lock itself (see
`runlock.wake_daemon`). Linux answers from /proc (`/proc/PID/status`, `/proc/PID/cmdline`,
`/proc/locks`); elsewhere (macOS, the BSDs) `ps` gives the user and the command line, and who holds
a flock cannot be told.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ProcessInfo", "describe", "holds_flock", "is_exportsync_run"]

_PROC = Path("/proc")
_PS = "/bin/ps"
# A plain bool, not sys.platform inline: mypy would call the other branch unreachable.
_LINUX = sys.platform.startswith("linux")


@dataclass(frozen=True)
class ProcessInfo:
    """A live process's real and effective uid and its arguments."""

    uid: int
    euid: int
    argv: tuple[str, ...]


def describe(pid: int) -> ProcessInfo | None:
    """The process `pid`, or None when it is gone or cannot be looked at."""
    # Only Linux's /proc has the status and cmdline read here (FreeBSD's procfs differs).
    return _from_proc(pid) if _LINUX else _from_ps(pid)


def _from_proc(pid: int) -> ProcessInfo | None:
    base = _PROC / str(pid)
    try:
        status = (base / "status").read_text(errors="replace")
        cmdline = (base / "cmdline").read_bytes()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("Uid:"):
            ids = line.split()[1:3]
            if len(ids) == 2 and all(i.isdigit() for i in ids):
                argv = tuple(os.fsdecode(a) for a in cmdline.split(b"\0") if a)
                return ProcessInfo(int(ids[0]), int(ids[1]), argv)
    return None


def _from_ps(pid: int) -> ProcessInfo | None:
    """`ps` prints the arguments joined by spaces: enough to tell `exportsync run` apart."""
    try:
        done = subprocess.run(  # noqa: S603 - a fixed program; the pid is an int
            [_PS, "-o", "ruid=", "-o", "uid=", "-o", "command=", "-p", str(pid)],
            capture_output=True,
            check=False,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    fields = os.fsdecode(done.stdout).split()
    if done.returncode != 0 or len(fields) < 3 or not (fields[0] + fields[1]).isdigit():
        return None
    return ProcessInfo(int(fields[0]), int(fields[1]), tuple(fields[2:]))


def is_exportsync_run(argv: tuple[str, ...]) -> bool:
    """`exportsync run ...`, `python .../bin/exportsync run ...` or `python -m exportsync run ...`:
    an argument named exportsync followed, later, by the subcommand `run`."""
    for index, arg in enumerate(argv):
        if os.path.basename(arg) == "exportsync":
            return "run" in argv[index + 1 :]
    return False


def holds_flock(pid: int, path: Path) -> bool | None:
    """Whether `pid` holds an exclusive flock on the file `path`; None when this cannot be told
    (no /proc/locks: not Linux)."""
    try:
        text = (_PROC / "locks").read_text(errors="replace")
    except OSError:
        return None
    try:
        info = os.stat(path)
    except OSError:
        return False
    wanted = (os.major(info.st_dev), os.minor(info.st_dev), info.st_ino)
    for line in text.splitlines():
        # "1: FLOCK  ADVISORY  WRITE 1234 fe:00:2150044 0 EOF"; waiters carry "->": not holders.
        fields = line.split()
        if len(fields) < 6 or fields[1] != "FLOCK" or fields[3] != "WRITE":
            continue
        if fields[4] == str(pid) and _device_inode(fields[5]) == wanted:
            return True
    return False


def _device_inode(field: str) -> tuple[int, int, int] | None:
    parts = field.split(":")
    if len(parts) != 3:
        return None
    try:
        return (int(parts[0], 16), int(parts[1], 16), int(parts[2]))
    except ValueError:
        return None
