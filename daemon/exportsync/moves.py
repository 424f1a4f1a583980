"""The after-upload moves in the export folder: into ``sent/``, aside before deletion, back again.

They act only inside the root (checked as `files` checks reads) and on regular files, never
overwrite (a taken name gets a ``-N`` suffix), and fsync the directories they change.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from pathlib import Path

from exportsync.durable import fsync_dir
from exportsync.errors import FileRejected
from exportsync.files import checked_parent
from exportsync.matcher import PRIVATE_PREFIX, SENT_DIR

__all__ = ["delete_file", "move_to_sent", "restore", "set_aside"]


def _numbered(name: str, n: int) -> str:
    """``report.csv`` -> ``report-1.csv``; ``x.session.json`` -> ``x-1.session.json``."""
    dot = name.find(".", 1)
    if dot == -1:
        return f"{name}-{n}"
    return f"{name[:dot]}-{n}{name[dot:]}"


def _sent_dir(root: Path) -> Path:
    sent = root / SENT_DIR
    try:
        os.mkdir(sent)
    except FileExistsError:
        pass
    else:
        fsync_dir(root)
    info = os.lstat(sent)
    if not stat.S_ISDIR(info.st_mode):
        raise FileRejected(f"{sent}: exists and is not a directory (symlinks are not followed)")
    return sent


def move_to_sent(root: Path, path: Path) -> Path:
    """Move a delivered file into ``root/sent/`` without overwriting anything; return its new path.

    A name already taken there gets a ``-N`` suffix. The rename is made durable by fsyncing both
    directories.
    """
    checked_parent(root, path)
    info = os.lstat(path)
    if not stat.S_ISREG(info.st_mode):
        raise FileRejected(f"{path}: not a regular file; not moved")
    return _move_without_overwrite(path, _sent_dir(root), path.name)


def delete_file(path: Path) -> None:
    """Delete a delivered file durably; a file already gone is not an error."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return
    fsync_dir(path.parent)


def set_aside(root: Path, path: Path) -> Path:
    """Rename a delivered file to a private name beside it (never matched), before deleting it.

    After the rename, a writer opening the path makes a new file the watcher sees; what was
    renamed can be hashed once more and deleted only if it is still what was delivered.
    """
    checked_parent(root, path)
    info = os.lstat(path)
    if not stat.S_ISREG(info.st_mode):
        raise FileRejected(f"{path}: not a regular file; not deleted")
    aside = path.with_name(f"{PRIVATE_PREFIX}{secrets.token_hex(6)}-{path.name}")
    os.rename(path, aside)
    return aside


def restore(root: Path, moved: Path, original: Path) -> Path:
    """Put a file back where it was delivered from, as `original` (or `name-N` beside it).

    Never overwrites; the folder is `original`'s own (a sub-folder in recursive mode), checked to
    be inside `root`.
    """
    checked_parent(root, moved)
    checked_parent(root, original)
    return _move_without_overwrite(moved, original.parent, original.name)


def _move_without_overwrite(src: Path, folder: Path, name: str) -> Path:
    """Move `src` into `folder` as `name`, or `name-N` when taken; durable; returns the path."""
    n = 0
    while True:
        dest = folder / (name if n == 0 else _numbered(name, n))
        try:
            # link() refuses to overwrite, unlike rename(); the unlink below completes the move.
            os.link(src, dest, follow_symlinks=False)
        except FileExistsError:
            n += 1
            continue
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                raise
            # Hard links unsupported (FAT, some network shares): check, then rename.
            if os.path.lexists(dest):
                n += 1
                continue
            os.replace(src, dest)
        else:
            os.unlink(src)
        break
    fsync_dir(folder)
    fsync_dir(src.parent)
    return dest
