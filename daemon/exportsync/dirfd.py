"""Directories opened without following a symlink anywhere on the way.

A path is walked from ``/`` one component at a time with O_NOFOLLOW, so a folder swapped for a
symlink between a check and the open is refused (FileRejected) instead of followed. Reads
(`files`) open files relative to such descriptors, and moves (`moves`) link, rename and unlink
relative to them.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from exportsync.errors import FileRejected

__all__ = ["folder", "open_dir", "open_real_dir"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def open_dir(name: str, *, dir_fd: int) -> int:
    """Open the directory `name` inside `dir_fd`; FileRejected when it is a symlink or no
    directory."""
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise FileRejected(f"{name!r} is not a directory (symlinks are not followed)") from None
        raise


def open_real_dir(real: str, extra: tuple[str, ...] = ()) -> int:
    """A descriptor on the symlink-free absolute path `real` (then `extra` below it)."""
    fd = os.open("/", _DIR_FLAGS)
    try:
        for name in [*(p for p in real.split(os.sep) if p), *extra]:
            inner = open_dir(name, dir_fd=fd)
            os.close(fd)
            fd = inner
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextmanager
def folder(root: Path, directory: Path) -> Iterator[int]:
    """A descriptor on `directory`, the root or a folder below it (lexically), opened without
    following any symlink from ``/`` down."""
    relative = os.path.relpath(os.path.abspath(directory), os.path.abspath(root))
    parts = () if relative == "." else tuple(relative.split(os.sep))
    if ".." in parts:
        raise FileRejected(f"{directory}: outside the watched folder {root}")
    try:
        fd = open_real_dir(os.path.realpath(root), parts)
    except FileRejected as exc:
        raise FileRejected(f"{directory}: {exc}") from None
    try:
        yield fd
    finally:
        os.close(fd)
