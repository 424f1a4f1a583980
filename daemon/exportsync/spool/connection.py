"""The spool's one SQLite connection: opening (migrated, private, WAL with synchronous=FULL),
transactions, queries, and a database lost or damaged while running put right in place.

Each table's statements are a store built on this class (`items`, `quarantine`, `uploads`,
`quota`, `meta`); `Spool` is all of them on the one connection, so a transaction may span tables.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

from exportsync.errors import SpoolCorrupt, SpoolError, SpoolFull
from exportsync.fs.durable import fsync_dir
from exportsync.migrations import migrate

__all__ = ["MEMORY", "Connection", "set_aside"]

MEMORY = ":memory:"
_CORRUPT = (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT)
_NO_ROOM = (errno.ENOSPC, errno.EDQUOT)
# `Connection._in_hand` before this connection knows which item is marked in hand (quarantine).
_UNKNOWN = -1
# SQLite's companions of the database file; they belong to it and move with it.
_COMPANIONS = ("-wal", "-shm", "-journal")


class Connection:
    """One connection to the spool database, its lock and its transactions. Thread-safe: the
    watcher spools while the delivery loop sends."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.commits = 0
        """Transactions this connection committed: group commit shows here."""
        self.synced_commits = 0
        """Those of them committed with an fsync (all but `_tx(sync=False)`'s)."""
        self._lock = threading.RLock()
        self._db, self._identity = _connect(path)
        self._in_hand: int | None = _UNKNOWN  # the item marked in hand (`QuarantineStore`)

    def _reconnect(self) -> None:
        self._db, self._identity = _connect(self.path)
        self._in_hand = _UNKNOWN

    def lost(self) -> str | None:
        """Why the files at `path` are no longer the database this connection works on, or None.

        ``deleted`` or ``replaced`` (another file there: a rename over it, a copy), or the same
        of its WAL or shared-memory file (``wal deleted``...). SQLite goes on working on the
        files it opened, so only a look at the paths tells: `os.stat` alone, since opening and
        closing the database file in this process would drop SQLite's locks on it. A file
        overwritten in place is found by SQLite itself (`SpoolCorrupt` from a query).
        """
        if self._identity is None:
            return None  # in memory
        for suffix, known in zip(("", "-wal", "-shm"), self._identity, strict=True):
            if known is None:
                continue
            name = f"{suffix[1:]} " if suffix else ""
            try:
                found = os.stat(f"{self.path}{suffix}")
            except FileNotFoundError:
                return f"{name}deleted"
            except OSError:
                return None  # cannot tell (permissions): a spool error will say more
            if (found.st_dev, found.st_ino) != known:
                return f"{name}replaced"
        return None

    def rebuild(self, *, now: float) -> tuple[bool, Path | None]:
        """Make the file at `path` this spool's database again after `lost()` said why (or a
        query found the database damaged): ``(restored, set_aside)``.

        First the database this connection still has open is copied back to `path` (SQLite's
        backup, checked with `quick_check`), so nothing is lost; whatever stood at `path` is set
        aside. When that copy fails (the pages it reads are damaged too), the file is set aside
        as at start (``spool.sqlite3.corrupt-<time>``) and a fresh spool begins: ``restored`` is
        False and the caller spools the folder afresh.
        """
        with self._lock:
            try:
                return True, self._restore_open(now)
            except (sqlite3.Error, OSError, SpoolError):
                pass  # fall back to a fresh spool
            with suppress(sqlite3.Error):
                self._db.close()
            aside = set_aside(self.path, now) if os.path.lexists(self.path) else None
            self._reconnect()
            return False, aside

    def _restore_open(self, now: float) -> Path | None:
        """Copy the open database to `path` (through a temporary file and a rename)."""
        copy = self.path.with_name(f"{self.path.name}.restoring")
        for suffix in ("", *_COMPANIONS):
            with suppress(FileNotFoundError):
                os.unlink(f"{copy}{suffix}")
        os.close(os.open(copy, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600))
        target = sqlite3.connect(copy, isolation_level=None)
        try:
            self._db.backup(target)
            if target.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise SpoolError("the copy of the open spool does not check out")
        finally:
            target.close()  # its own WAL is checkpointed and removed
        # The old connection goes first: on close it checkpoints into the file it has open.
        with suppress(sqlite3.Error):
            self._db.close()
        aside = set_aside(self.path, now) if os.path.lexists(self.path) else None
        os.rename(copy, self.path)
        fsync_dir(self.path.parent)
        self._reconnect()
        return aside

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def release_memory(self) -> None:
        """Empty this connection's page cache (`PRAGMA shrink_memory`): after a burst it holds
        up to `cache_size` of pages (about 2 MB) an idle daemon does not need; the next query
        reads what it needs again. Pages not yet written are kept (an in-memory spool loses
        nothing)."""
        with self._lock, suppress(sqlite3.Error):
            self._db.execute("PRAGMA shrink_memory")

    def durability(self) -> tuple[str, int]:
        """``(journal_mode, synchronous)`` as this connection runs them (FULL is 2).

        synchronous is a per-connection setting: only the spool's own connection can say it.
        """
        with self._lock:
            mode = self._db.execute("PRAGMA journal_mode").fetchone()[0]
            sync = self._db.execute("PRAGMA synchronous").fetchone()[0]
        return str(mode), int(sync)

    @contextmanager
    def _tx(self, *, sync: bool = True) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: committed (and fsynced) on exit, rolled back on error.

        `sync=False` skips the fsync of this commit: it survives the process dying (the OS has
        it), not a power cut, until the next synced commit carries it to the disk.
        """
        with self._lock:
            try:
                if not sync:
                    self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise _spool_error("spool busy or unwritable", exc) from exc
            try:
                try:
                    yield self._db
                except sqlite3.Error as exc:  # disk full mid-statement, I/O error
                    self._rollback()
                    raise _spool_error("cannot write to the spool", exc) from exc
                except BaseException:
                    self._rollback()
                    raise
                try:
                    self._db.execute("COMMIT")
                except sqlite3.Error as exc:  # disk full, I/O error: the transition did not happen
                    self._rollback()
                    raise _spool_error("cannot commit to the spool", exc) from exc
                self.commits += 1
                self.synced_commits += sync
            finally:
                if not sync:
                    self._db.execute("PRAGMA synchronous=FULL")

    def _rollback(self) -> None:
        # SQLite may have rolled the transaction back itself (SQLITE_FULL, SQLITE_IOERR); a
        # second ROLLBACK would then raise and hide the error that matters.
        with suppress(sqlite3.Error):
            self._db.execute("ROLLBACK")

    def _query(self, sql: str, params: Sequence[object] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return list(self._db.execute(sql, params))
            except sqlite3.Error as exc:
                raise _spool_error("spool query failed", exc) from exc


_Identity = tuple[tuple[int, int] | None, ...]


def _connect(path: Path) -> tuple[sqlite3.Connection, _Identity | None]:
    """A connection to the spool at `path`, migrated; with the (st_dev, st_ino) of the database,
    its WAL and its shared memory (None for one not there), or None in memory."""
    on_disk = str(path) != MEMORY
    db: sqlite3.Connection | None = None
    try:
        if on_disk:
            _private_dir(path.parent)
            # Created 0600 before SQLite sees it: its WAL and SHM copy the database's mode.
            os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600))
        db = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
        db.row_factory = sqlite3.Row
        # A new spool gives the pages pruning frees back to the disk (set before any table).
        db.execute("PRAGMA auto_vacuum=INCREMENTAL")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=ON")
        migrate(db)
        found = os.stat(path) if on_disk else None
    except (sqlite3.Error, OSError) as exc:
        if db is not None:
            with suppress(sqlite3.Error):
                db.close()
        if getattr(exc, "sqlite_errorcode", None) in _CORRUPT:
            raise SpoolCorrupt(f"the spool at {path} is damaged: {exc}") from exc
        code = getattr(exc, "sqlite_errorcode", -1) & 0xFF
        if code == sqlite3.SQLITE_FULL or getattr(exc, "errno", None) in _NO_ROOM:
            raise SpoolFull(f"cannot open the spool at {path}: {exc}") from exc
        raise SpoolError(f"cannot open the spool at {path}: {exc}") from exc
    if found is None:
        return db, None
    # The database holds file names and delivery history: keep it private to the user, and
    # tighten what an older version or a wide umask left readable.
    identity: list[tuple[int, int] | None] = [(found.st_dev, found.st_ino)]
    for suffix in ("-wal", "-shm"):
        try:
            companion = os.stat(f"{path}{suffix}")
        except OSError:
            identity.append(None)
        else:
            identity.append((companion.st_dev, companion.st_ino))
    for suffix in ("", "-wal", "-shm"):
        _private_file(Path(f"{path}{suffix}"))
    return db, tuple(identity)


def _spool_error(what: str, exc: sqlite3.Error) -> SpoolError:
    """`SpoolCorrupt` when SQLite found the file damaged (the daemon rebuilds it), else
    `SpoolError`."""
    if getattr(exc, "sqlite_errorcode", None) in _CORRUPT:
        return SpoolCorrupt(f"{what}: {exc}")
    return SpoolError(f"{what}: {exc}")


def set_aside(path: Path, now: float) -> Path:
    """Rename a damaged spool and its companions out of the way, never over an earlier one."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while aside.exists():
        aside = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
        n += 1
    try:
        # Companions first: a stale WAL left beside a fresh database would be replayed into it.
        for suffix in _COMPANIONS:
            with suppress(FileNotFoundError):
                os.rename(f"{path}{suffix}", f"{aside}{suffix}")
        os.rename(path, aside)
    except OSError as exc:
        raise SpoolError(f"cannot set the damaged spool {path} aside: {exc}") from exc
    return aside


def _private_dir(directory: Path) -> None:
    """The state directory, made 0700, or tightened to it when it is looser."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    if os.stat(directory).st_mode & 0o077:
        os.chmod(directory, 0o700)


def _private_file(path: Path) -> None:
    with suppress(FileNotFoundError):
        if os.stat(path).st_mode & 0o077:
            os.chmod(path, 0o600)
