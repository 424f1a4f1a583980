"""Safe reads of files in the export folder: identity snapshots, verified reads and streams.

Everything opens through `open_regular`, which never follows a symlink, never blocks on a fifo,
never opens a device or directory, refuses a file with more than one hard link (where
fs.protected_hardlinks is off, anyone who can write the folder could link in any file the daemon
can read), and refuses paths whose real parent directory is outside the root. The parent
directory is then opened component by component from the root pinned at start, without
following a symlink (`dirfd`), so a parent swapped for a symlink between the check and the open
is refused too, and a watch folder replaced by a symlink reads as missing (`WatchDirReplaced`).

Content identity is the SHA-256 of the bytes actually read, and the bytes sent are the bytes hashed:
`read_verified` and `open_verified_stream` raise `FileChanged` when the file no longer matches what
was spooled. What happens to a file after its delivery (moves, deletion) is in `moves`.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from exportsync.errors import ExportsyncError, FileRejected
from exportsync.fs.dirfd import WatchDirReplaced, held_fd, open_pinned, pin, relative_parts

__all__ = [
    "CHUNK_SIZE",
    "FileChanged",
    "FileSnapshot",
    "VerifiedStream",
    "checked_parent",
    "open_regular",
    "open_verified_stream",
    "read_verified",
    "snapshot",
]

CHUNK_SIZE = 1024 * 1024
_SNAPSHOT_ATTEMPTS = 3
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


@dataclass(frozen=True, slots=True)
class FileSnapshot:
    """A file's identity, taken by reading it once: `size` and `sha256` describe the bytes read."""

    path: Path
    size: int
    mtime_ns: int
    sha256: str
    inode: int


class FileChanged(ExportsyncError):
    """The file's content is not (or no longer) what was spooled; deliver it again later.

    `snapshot` is the file's new identity when it could be taken, None when the file kept changing
    while it was being read.
    """

    retryable = True

    def __init__(self, path: Path, message: str, snapshot: FileSnapshot | None = None) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.snapshot = snapshot


def _kind_name(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "directory"),
        (stat.S_ISFIFO, "fifo"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
    ):
        if test(mode):
            return name
    return "special file"


def _within(real_root: str, real_path: str) -> bool:
    return real_path == real_root or real_path.startswith(real_root.rstrip(os.sep) + os.sep)


def _describe_symlink(root: Path, path: Path) -> str:
    """A rejection reason saying where a symlink points; the target itself is never opened."""
    try:
        target = os.readlink(path)
    except OSError:
        return f"{path}: symlink (not followed)"
    resolved = os.path.realpath(path)
    where = "inside" if _within(str(pin(root)), resolved) else "outside"
    return f"{path}: symlink to {target!r} ({where} the watched folder; symlinks are not followed)"


def _hard_links(path: Path, info: os.stat_result) -> None:
    if info.st_nlink > 1:
        raise FileRejected(f"{path}: hard link ({info.st_nlink} names for one file; not read)")


def checked_parent(root: Path, path: Path) -> str:
    """The real parent directory of `path`, checked to be the pinned root or below it.

    WatchDirReplaced when the root is no longer the folder pinned at start (now reached through
    a symlink); FileRejected when `path` is lexically outside it or under a symlinked folder that
    leads outside.
    """
    absolute = Path(os.path.abspath(path))
    if absolute.name in ("", ".", ".."):
        raise FileRejected(f"{path}: not a file name")
    parts = relative_parts(root, absolute.parent)
    real_root = str(pin(root))
    if os.path.realpath(real_root) != real_root:
        raise WatchDirReplaced(root, "symlink")
    real_parent = os.path.join(real_root, *parts)
    if not _within(real_root, os.path.realpath(real_parent)):
        raise FileRejected(f"{path}: outside the watched folder {root}")
    return real_parent


def open_regular(root: Path, path: Path) -> int:
    """Open `path` read-only and return the fd, or raise FileRejected / FileNotFoundError.

    Refused: symlinks (never followed, whatever they point at), anything but a regular file, a
    file with more than one hard link, and paths whose real parent directory is outside `root`
    (symlinked parent directories included). A watch folder replaced by a symlink since it was
    pinned raises WatchDirReplaced (a FileNotFoundError: the folder is treated as missing).
    """
    return _open_regular(root, path)[0]


def _open_regular(root: Path, path: Path) -> tuple[int, os.stat_result]:
    """`open_regular`, with the fstat of what it opened."""
    # Strings, not Paths: this runs for every file of a burst.
    parent, name = os.path.split(os.path.abspath(path))
    parts = relative_parts(root, parent)
    # Inside `held`, a file in the pinned folder itself is looked at and opened relative to the
    # held descriptor: its walk from / was the check (a symlink anywhere on the way was refused).
    anchor = None if parts else held_fd(root)
    if anchor is None:
        info = os.lstat(os.path.join(checked_parent(root, path), name))
    elif name in ("", ".", ".."):
        raise FileRejected(f"{path}: not a file name")
    else:
        info = os.lstat(name, dir_fd=anchor)
    # lstat first so a device or fifo is refused without ever being opened (opening a device can
    # have side effects); O_NOFOLLOW and fstat below close the race with a swap after the lstat.
    if stat.S_ISLNK(info.st_mode):
        raise FileRejected(_describe_symlink(root, path))
    if not stat.S_ISREG(info.st_mode):
        raise FileRejected(f"{path}: not a regular file ({_kind_name(info.st_mode)})")
    _hard_links(path, info)
    # Walked from the pinned root without following a symlink: a parent swapped for one after
    # the check is refused.
    dir_fd = open_pinned(root, parts) if anchor is None else anchor
    try:
        fd = os.open(name, _OPEN_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise FileRejected(f"{path}: symlink (not followed)") from None
        raise
    finally:
        if dir_fd != anchor:
            os.close(dir_fd)
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode):
            raise FileRejected(f"{path}: not a regular file ({_kind_name(opened.st_mode)})")
        _hard_links(path, opened)
    except BaseException:
        os.close(fd)
        raise
    return fd, opened


def _hash_fd(fd: int, length: int) -> tuple[str, int]:
    """Stream up to `length` bytes through SHA-256 in CHUNK_SIZE reads (bounded: a file that keeps
    growing cannot keep the reader busy forever)."""
    digest = hashlib.sha256()
    size = 0
    while size < length and (chunk := os.read(fd, min(CHUNK_SIZE, length - size))):
        size += len(chunk)
        digest.update(chunk)
    return digest.hexdigest(), size


def _snapshot_fd(
    fd: int, path: Path, max_bytes: int | None, before: os.stat_result | None = None
) -> FileSnapshot | None:
    """One attempt: None when size or mtime moved while reading (a writer is active). `before`:
    the descriptor's fstat taken just now, if the caller has it."""
    if before is None:
        before = os.fstat(fd)
    if max_bytes is not None and before.st_size > max_bytes:
        raise FileRejected(f"{path}: {before.st_size} bytes, over the limit of {max_bytes}")
    os.lseek(fd, 0, os.SEEK_SET)
    sha256, size = _hash_fd(fd, before.st_size)
    after = os.fstat(fd)
    if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns) or (
        size != after.st_size
    ):
        return None
    return FileSnapshot(path, size, after.st_mtime_ns, sha256, after.st_ino)


def snapshot(root: Path, path: Path, *, max_bytes: int | None = None) -> FileSnapshot:
    """Read `path` once and return its identity.

    Raises FileRejected (symlink, not a regular file, outside `root`, over `max_bytes`),
    FileNotFoundError (vanished), or FileChanged (kept changing during every read attempt).
    """
    fd, opened = _open_regular(root, path)
    before: os.stat_result | None = opened  # the first attempt starts from the open's fstat
    try:
        for _ in range(_SNAPSHOT_ATTEMPTS):
            taken = _snapshot_fd(fd, path, max_bytes, before)
            if taken is not None:
                return taken
            before = None
    finally:
        os.close(fd)
    raise FileChanged(path, "kept changing while it was read")


def read_verified(root: Path, path: Path, expected_sha256: str, expected_size: int) -> bytes:
    """The bytes, guaranteed to hash to `expected_sha256`; else FileChanged with the new identity.

    Meant for inline uploads (a few MB): the whole content is held in memory, and never more than
    `expected_size` + 1 bytes are read into it.
    """
    fd = open_regular(root, path)
    try:
        info = os.fstat(fd)
        if info.st_size == expected_size:
            data = _read_at_most(fd, expected_size + 1)
            if len(data) == expected_size and hashlib.sha256(data).hexdigest() == expected_sha256:
                return data
        # Changed: describe the new content without holding it in memory.
        new = _snapshot_fd(fd, path, None)
    finally:
        os.close(fd)
    raise FileChanged(path, "content differs from the spooled snapshot", new)


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    remaining = limit
    while remaining > 0 and (chunk := os.read(fd, min(CHUNK_SIZE, remaining))):
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


class VerifiedStream:
    """A request body that streams a file and hashes exactly the bytes it hands out.

    Usable by requests as `data=` (it has `read`, `__iter__` and `__len__`, so Content-Length is
    `expected_size`; a zero-byte file would be sent chunked, so send those inline). It never yields
    more than `expected_size` bytes; when the file ends early it raises FileChanged mid-request,
    which aborts the upload. After streaming call `verify()` (or compare `.sha256`): the presigned
    PUT also carries x-amz-checksum-sha256, so S3 rejects a torn body on its own.
    """

    def __init__(self, fd: int, path: Path, expected_sha256: str, expected_size: int) -> None:
        self._fd: int | None = fd
        self._path = path
        self._expected_sha256 = expected_sha256
        self._remaining = expected_size
        self._size = expected_size
        self._digest = hashlib.sha256()
        self.bytes_read = 0

    def __len__(self) -> int:
        return self._size

    def __repr__(self) -> str:
        return f"VerifiedStream({str(self._path)!r}, size={self._size}, read={self.bytes_read})"

    @property
    def sha256(self) -> str:
        """SHA-256 of the bytes handed out so far."""
        return self._digest.hexdigest()

    def read(self, size: int = -1) -> bytes:
        if self._fd is None or self._remaining == 0:
            return b""
        want = self._remaining if size is None or size < 0 else min(size, self._remaining)
        chunk = os.read(self._fd, min(want, CHUNK_SIZE))
        if not chunk:
            self.close()
            raise FileChanged(self._path, f"ended after {self.bytes_read} of {self._size} bytes")
        self._remaining -= len(chunk)
        self.bytes_read += len(chunk)
        self._digest.update(chunk)
        if self._remaining == 0:
            self.close()
        return chunk

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read(CHUNK_SIZE):
            yield chunk

    def verify(self) -> None:
        """Raise FileChanged unless the whole expected content was streamed and matched."""
        if self.bytes_read != self._size or self.sha256 != self._expected_sha256:
            raise FileChanged(self._path, "streamed content differs from the spooled snapshot")

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_verified_stream(
    root: Path, path: Path, expected_sha256: str, expected_size: int
) -> VerifiedStream:
    """Open `path` safely for a streamed upload; FileChanged at once if its size already differs."""
    fd = open_regular(root, path)
    try:
        if os.fstat(fd).st_size != expected_size:
            raise FileChanged(
                path, "size differs from the spooled snapshot", _snapshot_fd(fd, path, None)
            )
    except BaseException:
        os.close(fd)
        raise
    return VerifiedStream(fd, path, expected_sha256, expected_size)
