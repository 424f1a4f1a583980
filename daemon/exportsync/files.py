"""Safe access to files in the export folder: identity snapshots, verified reads, durable moves.

Everything opens through `open_regular`, which never follows a symlink, never blocks on a fifo,
never opens a device or directory, and refuses paths whose real parent directory is outside the
root. Moves and deletes (`after_upload`) go further: they work only through directory
descriptors opened one component at a time with O_NOFOLLOW (`dir_fd`-relative link, rename and
unlink), and touch only the inode that was checked, so a folder swapped for a symlink mid-move
can never make the daemon move or delete a file outside the watched folder.

Content identity is the SHA-256 of the bytes actually read, and the bytes sent are the bytes hashed:
`read_verified` and `open_verified_stream` raise `FileChanged` when the file no longer matches what
was spooled.
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from exportsync.errors import ExportsyncError, FileRejected
from exportsync.matcher import PRIVATE_PREFIX, SENT_DIR

__all__ = [
    "CHUNK_SIZE",
    "FileChanged",
    "FileSnapshot",
    "VerifiedStream",
    "delete_file",
    "move_to_sent",
    "open_regular",
    "open_verified_stream",
    "read_verified",
    "restore",
    "set_aside",
    "snapshot",
]

CHUNK_SIZE = 1024 * 1024
_SNAPSHOT_ATTEMPTS = 3
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


@dataclass(frozen=True)
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
    where = "inside" if _within(os.path.realpath(root), resolved) else "outside"
    return f"{path}: symlink to {target!r} ({where} the watched folder; symlinks are not followed)"


def _real_parent(root: Path, path: Path) -> str:
    """The real parent directory of `path`, checked to be the root or below it."""
    absolute = Path(os.path.abspath(path))
    if absolute.name in ("", ".", ".."):
        raise FileRejected(f"{path}: not a file name")
    real_root = os.path.realpath(root)
    real_parent = os.path.realpath(absolute.parent)
    if not _within(real_root, real_parent):
        raise FileRejected(f"{path}: outside the watched folder {root}")
    return real_parent


def open_regular(root: Path, path: Path) -> int:
    """Open `path` read-only and return the fd, or raise FileRejected / FileNotFoundError.

    Refused: symlinks (never followed, whatever they point at), anything but a regular file, and
    paths whose real parent directory is outside `root` (symlinked parent directories included).
    """
    real_parent = _real_parent(root, path)
    name = Path(os.path.abspath(path)).name
    # lstat first so a device or fifo is refused without ever being opened (opening a device can
    # have side effects); O_NOFOLLOW and fstat below close the race with a swap after the lstat.
    info = os.lstat(os.path.join(real_parent, name))
    if stat.S_ISLNK(info.st_mode):
        raise FileRejected(_describe_symlink(root, path))
    if not stat.S_ISREG(info.st_mode):
        raise FileRejected(f"{path}: not a regular file ({_kind_name(info.st_mode)})")
    dir_fd = os.open(real_parent, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    try:
        fd = os.open(name, _OPEN_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise FileRejected(f"{path}: symlink (not followed)") from None
        raise
    finally:
        os.close(dir_fd)
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode):
            raise FileRejected(f"{path}: not a regular file ({_kind_name(opened.st_mode)})")
    except BaseException:
        os.close(fd)
        raise
    return fd


def _hash_fd(fd: int, length: int) -> tuple[str, int]:
    """Stream up to `length` bytes through SHA-256 in CHUNK_SIZE reads (bounded: a file that keeps
    growing cannot keep the reader busy forever)."""
    digest = hashlib.sha256()
    size = 0
    while size < length and (chunk := os.read(fd, min(CHUNK_SIZE, length - size))):
        size += len(chunk)
        digest.update(chunk)
    return digest.hexdigest(), size


def _snapshot_fd(fd: int, path: Path, max_bytes: int | None) -> FileSnapshot | None:
    """One attempt: None when size or mtime moved while reading (a writer is active)."""
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
    fd = open_regular(root, path)
    try:
        for _ in range(_SNAPSHOT_ATTEMPTS):
            taken = _snapshot_fd(fd, path, max_bytes)
            if taken is not None:
                return taken
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


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


@contextmanager
def _folder(root: Path, folder: Path) -> Iterator[int]:
    """A descriptor on `folder` (the root or a folder below it), opened one component at a time
    from ``/`` with O_NOFOLLOW, so no symlink anywhere on the way is followed, even one swapped in
    a moment ago. Every move and delete below works relative to such descriptors."""
    relative = os.path.relpath(os.path.abspath(folder), os.path.abspath(root))
    parts = [] if relative == "." else relative.split(os.sep)
    if ".." in parts:
        raise FileRejected(f"{folder}: outside the watched folder {root}")
    real_root = os.path.realpath(root)
    components = [p for p in real_root.split(os.sep) if p] + parts
    fd = os.open("/", _DIR_FLAGS)
    try:
        for name in components:
            try:
                inner = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise FileRejected(
                        f"{folder}: {name!r} on the way is not a directory (symlinks are not"
                        " followed)"
                    ) from None
                raise
            os.close(fd)
            fd = inner
        yield fd
    finally:
        os.close(fd)


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
        return os.open(SENT_DIR, _DIR_FLAGS, dir_fd=root_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise FileRejected(
                f"{root / SENT_DIR}: exists and is not a directory (symlinks are not followed)"
            ) from None
        raise


def move_to_sent(root: Path, path: Path, *, inode: int | None = None) -> Path:
    """Move a delivered file into ``root/sent/`` without overwriting anything; return its new path.

    A name already taken there gets a ``-N`` suffix. With `inode`, only that very file is moved.
    The rename is made durable by fsyncing both directories.
    """
    with _folder(root, path.parent) as src_fd, _folder(root, root) as root_fd:
        _regular_here(src_fd, path.name, path, inode, "moved")
        sent_fd = _sent_dir(root_fd, root)
        try:
            name = _move_without_overwrite(src_fd, path.name, sent_fd, path.name)
        finally:
            os.close(sent_fd)
    return root / SENT_DIR / name


def delete_file(root: Path, path: Path) -> None:
    """Delete a delivered file durably; a file already gone is not an error."""
    with _folder(root, path.parent) as dir_fd:
        try:
            os.unlink(path.name, dir_fd=dir_fd)
        except FileNotFoundError:
            return
        os.fsync(dir_fd)


def set_aside(root: Path, path: Path, *, inode: int | None = None) -> Path:
    """Rename a delivered file to a private name beside it (never matched), before deleting it.

    After the rename, a writer opening the path makes a new file the watcher sees; what was
    renamed can be hashed once more and deleted only if it is still what was delivered.
    """
    aside = f"{PRIVATE_PREFIX}{secrets.token_hex(6)}-{path.name}"
    with _folder(root, path.parent) as dir_fd:
        _regular_here(dir_fd, path.name, path, inode, "deleted")
        os.rename(path.name, aside, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    return path.with_name(aside)


def restore(root: Path, moved: Path, original: Path) -> Path:
    """Put a file back where it was delivered from, as `original` (or `name-N` beside it).

    Never overwrites; the folder is `original`'s own (a sub-folder in recursive mode), checked to
    be inside `root`.
    """
    with _folder(root, moved.parent) as src_fd, _folder(root, original.parent) as dst_fd:
        name = _move_without_overwrite(src_fd, moved.name, dst_fd, original.name)
    return original.with_name(name)


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
