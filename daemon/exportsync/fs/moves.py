"""The after-upload moves in the export folder: into ``sent/``, aside before deletion, back again.

They work only through directory descriptors opened one component at a time with O_NOFOLLOW
(`dir_fd`-relative link, rename and unlink), act only on regular files (and, when given, only on
the inode that was checked), never overwrite (a taken name gets a ``-N`` suffix), and fsync the
directories they change. So a folder swapped for a symlink mid-move can never make the daemon move
or delete a file outside the watched folder.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from exportsync.errors import FileRejected
from exportsync.fs.dirfd import folder, open_dir
from exportsync.matcher import PRIVATE_PREFIX, SENT_DIR

__all__ = ["delete_file", "move_to_sent", "restore", "set_aside"]

_NAME_MAX = 255


def _regular_here(dir_fd: int, name: str, path: Path, inode: int | None, verb: str) -> None:
    """Refuse anything but the regular file expected (the inode that was checked, if given)."""
    info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if not stat.S_ISREG(info.st_mode):
        raise FileRejected(f"{path}: not a regular file; not {verb}")
    if inode is not None and info.st_ino != inode:
        raise FileRejected(f"{path}: replaced by another file since it was checked; not {verb}")


def _numbered(name: str, n: int) -> str:
    """``report.csv`` -> ``report-1.csv``; ``x.session.json`` -> ``x-1.session.json``."""
    dot = name.find(".", 1)
    if dot == -1:
        return f"{name}-{n}"
    return f"{name[:dot]}-{n}{name[dot:]}"


def _sent_dir(root_fd: int, root: Path) -> int:
    """A descriptor on ``root/sent`` (made when missing); a symlink there is refused."""
    try:
        os.mkdir(SENT_DIR, 0o755, dir_fd=root_fd)
    except FileExistsError:
        pass
    else:
        os.fsync(root_fd)
    try:
        return open_dir(SENT_DIR, dir_fd=root_fd)
    except FileRejected:
        raise FileRejected(
            f"{root / SENT_DIR}: exists and is not a directory (symlinks are not followed)"
        ) from None


def move_to_sent(root: Path, path: Path, *, inode: int | None = None) -> Path:
    """Move a delivered file into ``root/sent/`` without overwriting anything; return its new path.

    A name already taken there gets a ``-N`` suffix. With `inode`, only that very file is moved.
    The rename is made durable by fsyncing both directories.
    """
    with folder(root, path.parent) as src_fd, folder(root, root) as root_fd:
        _regular_here(src_fd, path.name, path, inode, "moved")
        sent_fd = _sent_dir(root_fd, root)
        try:
            name = _move_without_overwrite(src_fd, path.name, sent_fd, path.name)
        finally:
            os.close(sent_fd)
    return root / SENT_DIR / name


def delete_file(root: Path, path: Path, *, inode: int | None = None) -> None:
    """Delete a delivered file durably; a file already gone is not an error. With `inode`, only
    that very file is deleted (checked in the same directory descriptor as the unlink)."""
    with folder(root, path.parent) as dir_fd:
        try:
            if inode is not None:
                _regular_here(dir_fd, path.name, path, inode, "deleted")
            os.unlink(path.name, dir_fd=dir_fd)
        except FileNotFoundError:
            return
        os.fsync(dir_fd)


def set_aside(root: Path, path: Path, *, inode: int | None = None) -> Path:
    """Rename a delivered file to a private name beside it (never matched), before deleting it.

    After the rename, a writer opening the path makes a new file the watcher sees; what was
    renamed can be hashed once more and deleted only if it is still what was delivered.
    """
    aside = _private_name(path.name)
    with folder(root, path.parent) as dir_fd:
        _regular_here(dir_fd, path.name, path, inode, "deleted")
        os.rename(path.name, aside, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    return path.with_name(aside)


def restore(root: Path, moved: Path, original: Path) -> Path:
    """Put a file back where it was delivered from, as `original` (or `name-N` beside it).

    Never overwrites; the folder is `original`'s own (a sub-folder in recursive mode), checked to
    be inside `root`.
    """
    with folder(root, moved.parent) as src_fd, folder(root, original.parent) as dst_fd:
        name = _move_without_overwrite(src_fd, moved.name, dst_fd, original.name)
    return original.with_name(name)


def _private_name(name: str) -> str:
    """A private name for `name` that still fits in NAME_MAX (`_NAME_MAX` bytes): a long name's
    tail is cut (as bytes; the kernel takes any, and the name is never matched or shown)."""
    # os.urandom(6).hex() is what secrets.token_hex(6) returns, without loading `secrets` (and
    # `random` with it) into every daemon for the rare move.
    prefix = os.fsencode(f"{PRIVATE_PREFIX}{os.urandom(6).hex()}-")
    return os.fsdecode(prefix + os.fsencode(name)[: _NAME_MAX - len(prefix)])


def _move_without_overwrite(src_fd: int, src: str, dst_fd: int, name: str) -> str:
    """Move `src` (in the folder `src_fd`) into the folder `dst_fd` as `name`, or `name-N` when
    taken; durable; returns the name it got."""
    n = 0
    while True:
        dest = name if n == 0 else _numbered(name, n)
        try:
            # link() refuses to overwrite, unlike rename(); the unlink below completes the move.
            os.link(src, dest, src_dir_fd=src_fd, dst_dir_fd=dst_fd, follow_symlinks=False)
        except FileExistsError:
            n += 1
            continue
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                raise
            # Hard links unsupported (FAT, some network shares): check, then rename.
            if _exists(dst_fd, dest):
                n += 1
                continue
            os.rename(src, dest, src_dir_fd=src_fd, dst_dir_fd=dst_fd)
        else:
            os.unlink(src, dir_fd=src_fd)
        break
    os.fsync(dst_fd)
    os.fsync(src_fd)
    return dest


def _exists(dir_fd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True
