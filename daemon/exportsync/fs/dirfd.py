"""Directories opened without following a symlink anywhere on the way, below a pinned root.

The watch folder is resolved once per process (`pin`): a symlink in the configured path is
followed then, at start, and never again. Every later open walks that real path from ``/`` one
component at a time with O_NOFOLLOW, so a folder swapped for a symlink between a check and the
open is refused instead of followed: the watch folder itself (or a folder above it) as
`WatchDirReplaced`, a FileNotFoundError, since the folder the daemon watches is no longer there;
a folder below it as FileRejected. Reads (`files`) open files relative to such descriptors, and
moves (`moves`) link, rename and unlink relative to them.

A batch of files (the intake's `offer_many`) walks once: inside `held(root)` the thread keeps the
descriptor of one walk from ``/`` and opens below it, instead of walking again per file. The
promise is the same (no symlink is followed: the held descriptor is the pinned folder itself,
whatever its name points at meanwhile); a swap during the batch is seen by the next batch's walk.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from exportsync.errors import FileRejected

__all__ = [
    "WatchDirReplaced",
    "folder",
    "held",
    "held_fd",
    "open_below",
    "open_dir",
    "open_pinned",
    "open_real_dir",
    "pin",
    "real_path",
    "relative_parts",
    "replaced_reason",
]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)

_pins: dict[str, str] = {}
_pins_lock = threading.Lock()
# Per thread: the pinned folder's descriptor held by `held` (by the folder's shown path), and how
# many `held` scopes of that folder are open.
_local = threading.local()


class WatchDirReplaced(FileNotFoundError):
    """The watch folder (or a folder above it) is no longer the directory pinned at start: a
    symlink or another kind of file now has its name. Treated as a missing folder: nothing is
    read through it, moved or deleted there."""

    def __init__(self, root: Path, reason: str) -> None:
        super().__init__(errno.ENOENT, f"{root}: the watch folder was replaced by a {reason}")
        self.root = root
        self.reason = reason


def pin(root: Path) -> Path:
    """The real path of the watch folder `root`, resolved at its first use in this process and
    the same ever after (a symlink replacing it later is not followed)."""
    key = os.path.abspath(root)
    with _pins_lock:
        real = _pins.get(key)
        if real is None:
            real = _pins[key] = os.path.realpath(key)
    return Path(real)


def _pinned_pair(root: Path) -> tuple[str, str]:
    """(shown, real) for `root`: the configured path made absolute and the pinned one. Read
    without the lock once pinned (a dict lookup is atomic): this runs per file event."""
    key = os.fspath(root)
    real = _pins.get(key)
    if real is not None and os.path.isabs(key):
        return key, real
    shown = os.path.abspath(key)
    return shown, str(pin(Path(shown)))


def real_path(root: Path, path: Path) -> Path:
    """`path`, named under the configured `root`, under the pinned folder instead (no I/O): what
    to lstat when watch.dir was a symlink at start and may point elsewhere since. `path` itself
    when `root` was no symlink, or `path` is not below it."""
    shown, real = _pinned_pair(root)
    if real == shown:
        return path
    absolute = os.path.abspath(path)
    if not absolute.startswith(shown + os.sep):
        return path
    return Path(real, absolute[len(shown) + 1 :])


def replaced_reason(real: str) -> str:
    """Why the walk down the symlink-free path `real` fails: the first component that is now a
    symlink ("symlink") or no directory ("not a directory"); "" when none is."""
    walked = os.sep
    for name in (p for p in real.split(os.sep) if p):
        walked = os.path.join(walked, name)
        try:
            mode = os.lstat(walked).st_mode
        except OSError:
            return ""
        if stat.S_ISLNK(mode):
            return "symlink"
        if not stat.S_ISDIR(mode):
            return "not a directory"
    return ""


def open_dir(name: str, *, dir_fd: int) -> int:
    """Open the directory `name` inside `dir_fd`; FileRejected when it is a symlink or no
    directory."""
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise FileRejected(f"{name!r} is not a directory (symlinks are not followed)") from None
        raise


def open_real_dir(real: str) -> int:
    """A descriptor on the symlink-free absolute path `real`, walked from ``/``."""
    top = os.open("/", _DIR_FLAGS)
    try:
        return open_below(top, tuple(p for p in real.split(os.sep) if p))
    finally:
        os.close(top)


def _walk_pinned(root: Path) -> int:
    real = str(pin(root))
    try:
        return open_real_dir(real)
    except FileRejected:
        raise WatchDirReplaced(root, replaced_reason(real) or "symlink") from None


def held_fd(root: Path) -> int | None:
    """The descriptor `held(root)` keeps on this thread; None outside such a scope (or when the
    folder could not be walked at its start). The caller must not close it."""
    fds: dict[str, int | None] = getattr(_local, "fds", {})
    return fds.get(os.path.abspath(root))


@contextmanager
def held(root: Path) -> Iterator[int | None]:
    """Within, `open_pinned(root, ...)` on this thread opens below one descriptor on the pinned
    folder, walked from ``/`` once at the start, instead of walking from ``/`` per call. Nested
    scopes share it. A folder missing or replaced at the start holds nothing: each call then
    walks and fails as it would outside."""
    key = os.path.abspath(root)
    fds: dict[str, int | None] = _local.__dict__.setdefault("fds", {})
    depth: dict[str, int] = _local.__dict__.setdefault("depth", {})
    if depth.get(key, 0) == 0:
        try:
            fds[key] = _walk_pinned(Path(key))
        except OSError:
            fds[key] = None
    depth[key] = depth.get(key, 0) + 1
    try:
        yield fds[key]
    finally:
        depth[key] -= 1
        if depth[key] == 0:
            fd = fds.pop(key)
            del depth[key]
            if fd is not None:
                os.close(fd)


def open_pinned(root: Path, parts: tuple[str, ...] = ()) -> int:
    """A descriptor on the pinned watch folder `root` (then `parts` below it): WatchDirReplaced
    when the folder itself, or one above it, is now a symlink or no directory; FileRejected when a
    folder in `parts` is. Inside `held(root)` it starts from the held descriptor."""
    anchor = held_fd(root)
    if anchor is not None:
        return open_below(anchor, parts)
    fd = _walk_pinned(root)
    try:
        return open_below(fd, parts)
    finally:
        os.close(fd)


def open_below(dir_fd: int, parts: tuple[str, ...]) -> int:
    """A new descriptor on `parts` below the directory `dir_fd` (`dir_fd` itself, duplicated, for
    no parts), each opened without following a symlink (FileRejected when one is)."""
    fd = os.dup(dir_fd)
    try:
        for name in parts:
            inner = open_dir(name, dir_fd=fd)
            os.close(fd)
            fd = inner
    except BaseException:
        os.close(fd)
        raise
    return fd


def relative_parts(root: Path, directory: str | Path) -> tuple[str, ...]:
    """`directory`'s components below `root`, lexically; FileRejected when it is not below."""
    absolute, base = os.path.abspath(directory), os.path.abspath(root)
    if absolute == base:
        return ()  # the root itself (every file of a flat folder): no relpath
    relative = os.path.relpath(absolute, base)
    parts = () if relative == "." else tuple(relative.split(os.sep))
    if ".." in parts:
        raise FileRejected(f"{directory}: outside the watched folder {root}")
    return parts


@contextmanager
def folder(root: Path, directory: Path) -> Iterator[int]:
    """A descriptor on `directory`, the root or a folder below it (lexically), opened from the
    pinned root without following any symlink from ``/`` down."""
    parts = relative_parts(root, directory)
    try:
        fd = open_pinned(root, parts)
    except FileRejected as exc:
        raise FileRejected(f"{directory}: {exc}") from None
    try:
        yield fd
    finally:
        os.close(fd)
