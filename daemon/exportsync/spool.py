"""The durable spool: one SQLite file in the state directory that remembers every file seen.

An item is written here (path, kind, size, mtime, sha256) before anything else happens to it,
and moves ``pending → sending → delivered | failed``. The database runs in WAL mode with
``synchronous=FULL`` so a committed transition survives a power cut; an item left in ``sending``
by a crash goes back to ``pending`` at the next start, and the server's idempotency makes the
replay harmless.

The schema lives in `migrations`: opening a spool written by an older exportsync upgrades it in
place. Items are unique by (path, sha256): an identical re-save is recognised and not sent again,
while a changed file becomes a new item (a new version) that supersedes a pending older one (its
content is gone from the file, so it is never sent). The spool also holds the quota ledger's rows,
so the day's request count survives restarts together with the items it was spent on.

Scale: files are recorded in batches (`record_many`: one transaction, one fsync); a start-up scan
compares the folder against `versions()`, one query; `item_counts` is kept by triggers so `counts()`
reads four rows whatever the spool's size; `prune_delivered` drops old delivered rows except those
that still describe a file in the folder (dedupe needs them).
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from exportsync.backlog import ENTRY_OVERHEAD_BYTES, Backlog, requests_needed
from exportsync.errors import KEY_REFUSED_MARK, REDIRECT_MARK, SpoolCorrupt, SpoolError, SpoolFull
from exportsync.fs.durable import fsync_dir
from exportsync.fs.names import from_stored, stored
from exportsync.migrations import migrate

__all__ = [
    "API_KEY_REFUSED",
    "API_STATE_KEY",
    "API_UNREACHABLE",
    "MAX_CRASHES",
    "SEND_NOW_KEY",
    "STATES",
    "Item",
    "NewVersion",
    "RecordResult",
    "Spool",
    "State",
    "VersionKey",
]

State = Literal["pending", "sending", "delivered", "failed"]
STATES: tuple[State, ...] = ("pending", "sending", "delivered", "failed")

VersionKey = tuple[bytes, int, int, int]
"""(path as stored, size, mtime_ns, inode) of a spooled version: what a scan compares with."""

_MEMORY = ":memory:"
# Rows pruned per transaction: bounds the WAL and how long the delivery loop waits for the lock.
_PRUNE_CHUNK = 20_000
_CORRUPT = (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT)
_NO_ROOM = (errno.ENOSPC, errno.EDQUOT)
# SQLite's companions of the database file; they belong to it and move with it.
_COMPANIONS = ("-wal", "-shm", "-journal")

_COLUMNS = (
    "id, path, kind, size, mtime_ns, sha256, refused, vanished, state, attempts, next_attempt_at,"
    " last_error, "
    "parts_done, part_errors, remote_key, created_at, updated_at, delivered_at, crashes, inode,"
    " dismissed_at"
)
# A failed item still on the failed list (not dismissed, not superseded).
_LISTED_FAILED = "state = 'failed' AND dismissed_at IS NULL"

# Meta notes one process leaves for another: what the API's last answer said about the key or
# the network (absent: nothing wrong), and a pending `exportsync send-now` (its time).
API_STATE_KEY = "api_state"
API_KEY_REFUSED = "key_refused"
API_UNREACHABLE = "unreachable"
SEND_NOW_KEY = "send_now_requested_at"

# An item the daemon died on this many times in a row is failed at the next start, never read again.
MAX_CRASHES = 2


@dataclass(frozen=True)
class Item:
    """One file version in the spool."""

    id: int
    path: Path
    kind: Literal["csv", "session"]
    size: int
    mtime_ns: int
    sha256: str | None  # None only when refused
    # Refused before its content was read (a symlink, a fifo): failed, never sent, never retried.
    refused: bool
    # Its file was gone when last looked at: the recorded mtime says nothing about a file there now.
    vanished: bool
    state: State
    attempts: int
    next_attempt_at: float
    last_error: str | None
    parts_done: int
    part_errors: tuple[str, ...]
    remote_key: str | None
    created_at: float
    updated_at: float
    delivered_at: float | None
    # Runs in a row that died while this item was being read and parsed (poison-pill quarantine).
    crashes: int = 0
    inode: int = 0  # 0: recorded before inodes were (schema 6)
    # Failed, then dismissed or superseded: off the failed list, the row kept (schema 7).
    dismissed_at: float | None = None

    @classmethod
    def _from_row(cls, row: sqlite3.Row) -> Item:
        errors = tuple(json.loads(row["part_errors"])) if row["part_errors"] else ()
        return cls(
            id=row["id"],
            path=from_stored(row["path"]),
            kind=row["kind"],
            size=row["size"],
            mtime_ns=row["mtime_ns"],
            sha256=row["sha256"],
            refused=bool(row["refused"]),
            vanished=bool(row["vanished"]),
            state=row["state"],
            attempts=row["attempts"],
            next_attempt_at=row["next_attempt_at"],
            last_error=row["last_error"],
            parts_done=row["parts_done"],
            part_errors=errors,
            remote_key=row["remote_key"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            delivered_at=row["delivered_at"],
            crashes=row["crashes"],
            inode=row["inode"],
            dismissed_at=row["dismissed_at"],
        )

    @property
    def content_sha256(self) -> str:
        """The content hash, which every item but a refused one has."""
        if self.sha256 is None:
            raise SpoolError(f"item {self.id} was refused before its content was read")
        return self.sha256


@dataclass(frozen=True)
class NewVersion:
    """One hashed file version to record (`Spool.record_many`)."""

    path: Path
    kind: Literal["csv", "session"]
    size: int
    mtime_ns: int
    sha256: str
    inode: int = 0


@dataclass(frozen=True)
class RecordResult:
    """What `Spool.record` did: `created` is False when the same version was already known;
    `requeued` is True when that known version had failed and is pending again."""

    item: Item
    created: bool
    requeued: bool = False


class Spool:
    """The spool database. Thread-safe: the watcher spools while the delivery loop sends."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.commits = 0
        """Transactions this connection committed (each one fsync): group commit shows here."""
        self._lock = threading.RLock()
        self._db, self._identity = _connect(path)

    def _reconnect(self) -> None:
        self._db, self._identity = _connect(self.path)

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
            aside = _set_aside(self.path, now) if os.path.lexists(self.path) else None
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
        aside = _set_aside(self.path, now) if os.path.lexists(self.path) else None
        os.rename(copy, self.path)
        fsync_dir(self.path.parent)
        self._reconnect()
        return aside

    @staticmethod
    def path_in(state_dir: Path) -> Path:
        return state_dir / "spool.sqlite3"

    @classmethod
    def open(cls, state_dir: Path) -> Spool:
        """Open (creating when needed) the spool in `state_dir`."""
        return cls(cls.path_in(state_dir))

    @classmethod
    def open_or_replace(cls, state_dir: Path, *, now: float) -> tuple[Spool, Path | None]:
        """Open the spool; a damaged one is first renamed ``spool.sqlite3.corrupt-<UTC time>``
        (its WAL and SHM beside it) and a fresh one started. Returns the spool and where the
        damaged file went, None when it was healthy."""
        path = cls.path_in(state_dir)
        try:
            return cls(path), None
        except SpoolCorrupt:
            aside = _set_aside(path, now)
        return cls(path), aside

    @classmethod
    def in_memory(cls) -> Spool:
        """An empty spool that touches no disk (for reporting on a state dir that has none)."""
        return cls(Path(_MEMORY))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def durability(self) -> tuple[str, int]:
        """``(journal_mode, synchronous)`` as this connection runs them (FULL is 2).

        synchronous is a per-connection setting: only the spool's own connection can say it.
        """
        with self._lock:
            mode = self._db.execute("PRAGMA journal_mode").fetchone()[0]
            sync = self._db.execute("PRAGMA synchronous").fetchone()[0]
        return str(mode), int(sync)

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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

    # -- items -------------------------------------------------------------------------------

    def record(
        self,
        path: Path,
        kind: Literal["csv", "session"],
        *,
        size: int,
        mtime_ns: int,
        sha256: str,
        now: float,
        inode: int = 0,
    ) -> RecordResult:
        """Record one file version as pending; a version already known is left as it is."""
        return self.record_many([NewVersion(path, kind, size, mtime_ns, sha256, inode)], now=now)[0]

    def record_many(self, versions: Sequence[NewVersion], *, now: float) -> list[RecordResult]:
        """Record file versions in one transaction (one fsync), in order; see `record`.

        A new version supersedes the pending older versions of its path: their content is no
        longer in the file, so they are dropped rather than sent.
        """
        with self._tx() as db:
            return [self._record_one(db, version, now) for version in versions]

    @staticmethod
    def _record_one(db: sqlite3.Connection, v: NewVersion, now: float) -> RecordResult:
        path = stored(v.path)
        cursor = db.execute(
            "INSERT OR IGNORE INTO items (path, kind, size, mtime_ns, inode, sha256, state,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
            (path, v.kind, v.size, v.mtime_ns, v.inode, v.sha256, now, now),
        )
        created = cursor.rowcount == 1
        requeued = False
        if created:
            # "+state": look the path up by its index, not every pending row by state.
            db.execute(
                "DELETE FROM items WHERE path = ? AND sha256 != ? AND +state = 'pending'",
                (path, v.sha256),
            )
        else:
            # A version that failed because its file vanished before delivery, and is now
            # back, goes back in line. Versions refused for their content stay failed: saving
            # the same bytes again would only spend a request on the same refusal
            # (`exportsync retry` is there for that).
            requeued = (
                db.execute(
                    "UPDATE items SET state = 'pending', attempts = 0, next_attempt_at = 0,"
                    " last_error = NULL, parts_done = 0, part_errors = NULL, updated_at = ?,"
                    " dismissed_at = NULL"
                    " WHERE path = ? AND sha256 = ? AND +state = 'failed' AND vanished = 1",
                    (now, path, v.sha256),
                ).rowcount
                == 1
            )
            # Same content saved again: remember the new mtime so start-up scans skip it.
            db.execute(
                "UPDATE items SET mtime_ns = ?, size = ?, inode = ?, vanished = 0"
                " WHERE path = ? AND sha256 = ?",
                (v.mtime_ns, v.size, v.inode, path, v.sha256),
            )
        row = db.execute(
            f"SELECT {_COLUMNS} FROM items WHERE path = ? AND sha256 = ?",  # noqa: S608 -- fixed column list
            (path, v.sha256),
        ).fetchone()
        return RecordResult(Item._from_row(row), created, requeued)

    def record_rejected(
        self, path: Path, kind: Literal["csv", "session"], reason: str, *, now: float
    ) -> RecordResult:
        """Record a file refused before reading (symlink, not a regular file) as failed."""
        with self._tx() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO items (path, kind, size, mtime_ns, sha256, refused, state,"
                " last_error, created_at, updated_at)"
                " VALUES (?, ?, 0, 0, NULL, 1, 'failed', ?, ?, ?)",
                (stored(path), kind, reason, now, now),
            )
            created = cursor.rowcount == 1
            row = db.execute(
                f"SELECT {_COLUMNS} FROM items WHERE path = ? AND refused = 1",  # noqa: S608 -- fixed column list
                (stored(path),),
            ).fetchone()
        return RecordResult(Item._from_row(row), created)

    def known(self, path: Path, size: int, mtime_ns: int, inode: int | None = None) -> bool:
        """True when this exact (path, size, mtime[, inode]) was already spooled: a scan need not
        hash it. A row from before inodes were recorded (inode 0) matches any inode."""
        rows = self._query(
            "SELECT 1 FROM items WHERE path = ? AND size = ? AND mtime_ns = ? AND vanished = 0"
            " AND (? IS NULL OR inode IN (0, ?)) LIMIT 1",
            (stored(path), size, mtime_ns, inode, inode),
        )
        return bool(rows)

    def versions(self) -> set[VersionKey]:
        """Every spooled (path, size, mtime_ns, inode), in one query: what a scan compares with.

        Rows without a recorded inode (older spools) come with inode 0; vanished and refused
        versions are left out, so their files are looked at again.
        """
        with self._lock:
            try:
                cursor = self._db.cursor()
                cursor.row_factory = None  # plain tuples: they are the set's members
                cursor.execute(
                    "SELECT path, size, mtime_ns, inode FROM items"
                    " WHERE vanished = 0 AND refused = 0"
                )
                return set(cursor)
            except sqlite3.Error as exc:
                raise SpoolError(f"spool query failed: {exc}") from exc

    def get(self, item_id: int) -> Item | None:
        rows = self._query(f"SELECT {_COLUMNS} FROM items WHERE id = ?", (item_id,))  # noqa: S608 -- fixed column list
        return Item._from_row(rows[0]) if rows else None

    def items(self, state: State | None = None, *, limit: int = 1000) -> list[Item]:
        if state is None:
            rows = self._query(
                f"SELECT {_COLUMNS} FROM items ORDER BY id LIMIT ?",  # noqa: S608 -- fixed column list
                (limit,),
            )
        elif state == "failed":  # the failed list: dismissed and superseded items are off it
            rows = self._query(
                f"SELECT {_COLUMNS} FROM items WHERE {_LISTED_FAILED} ORDER BY id LIMIT ?",  # noqa: S608 -- fixed text
                (limit,),
            )
        else:
            rows = self._query(
                f"SELECT {_COLUMNS} FROM items WHERE state = ? ORDER BY id LIMIT ?",  # noqa: S608 -- fixed column list
                (state, limit),
            )
        return [Item._from_row(r) for r in rows]

    def recent(self, *, limit: int = 5) -> list[Item]:
        """The items that changed state last, newest first (`status --watch`'s last events)."""
        rows = self._query(
            f"SELECT {_COLUMNS} FROM items ORDER BY updated_at DESC, id DESC LIMIT ?",  # noqa: S608 -- fixed column list
            (limit,),
        )
        return [Item._from_row(r) for r in rows]

    def due(self, now: float, *, limit: int = 500) -> list[Item]:
        """Pending items whose next attempt time has come, oldest first."""
        rows = self._query(
            f"SELECT {_COLUMNS} FROM items WHERE state = 'pending' AND next_attempt_at <= ?"  # noqa: S608 -- fixed column list
            " ORDER BY next_attempt_at, id LIMIT ?",
            (now, limit),
        )
        return [Item._from_row(r) for r in rows]

    def pull_back(self, beyond: float, *, now: float) -> int:
        """Pending items scheduled, or recorded, after `beyond` are due and recorded at `now`;
        how many.

        The caller passes a time no delay reaches: such a time was written before the wall
        clock was set back, and would otherwise hold the item (its retry, the pacing's quiet
        window) for the whole step.
        """
        stale = "state = 'pending' AND (next_attempt_at > ? OR created_at > ?)"
        if not self._query(f"SELECT 1 FROM items WHERE {stale} LIMIT 1", (beyond, beyond)):  # noqa: S608 -- fixed text
            return 0
        with self._tx() as db:
            cursor = db.execute(
                "UPDATE items SET next_attempt_at = MIN(next_attempt_at, ?),"  # noqa: S608 -- fixed text
                f" created_at = MIN(created_at, ?), updated_at = ? WHERE {stale}",
                (now, now, now, beyond, beyond),
            )
            return cursor.rowcount

    def next_due_at(self) -> float | None:
        """When the earliest pending item may be tried, or None when nothing is pending."""
        rows = self._query("SELECT MIN(next_attempt_at) FROM items WHERE state = 'pending'")
        value = rows[0][0]
        return float(value) if value is not None else None

    def recover(self, now: float) -> int:
        """Return items a crash left in `sending` to `pending`, due at once; how many.

        Also what a running daemon does before each step (`Deliverer.step`): nothing is in
        flight then, so an item in `sending` is one whose outcome could not be recorded.
        """
        if not self._query("SELECT 1 FROM items WHERE state = 'sending' LIMIT 1"):
            return 0  # the common case, and no write (a full disk does not stop a quiet step)
        with self._tx() as db:
            cursor = db.execute(
                "UPDATE items SET state = 'pending', next_attempt_at = 0, updated_at = ?"
                " WHERE state = 'sending'",
                (now,),
            )
            return cursor.rowcount

    # -- poison-pill quarantine ---------------------------------------------------------------

    def hold(self, item_id: int, *, now: float) -> None:
        """Mark `item_id` as the one item in hand, before its file is read and parsed.

        The item held before it came through: its mark and crash count are cleared (only crashes
        in a row count, so a kill -9 that happened to land on an item now and then never
        quarantines it). Committed without fsync: it has to survive the process, not power loss.
        """
        with self._tx(sync=False) as db:
            db.execute(
                "UPDATE items SET in_hand_since = CASE WHEN id = ? THEN ? END,"
                " crashes = CASE WHEN id = ? THEN crashes ELSE 0 END"
                " WHERE in_hand_since IS NOT NULL OR id = ?",
                (item_id, now, item_id, item_id),
            )

    def release_hold(self) -> None:
        """Nothing is in hand any more: the item held came through."""
        with self._tx(sync=False) as db:
            db.execute(
                "UPDATE items SET in_hand_since = NULL, crashes = 0 WHERE in_hand_since IS NOT NULL"
            )

    def count_crashes(self, *, now: float) -> list[Item]:
        """At start: an item still marked in hand stopped the previous run. Count it; one that
        did so MAX_CRASHES times in a row is failed for good. Returns the items counted."""
        with self._tx() as db:
            ids = [
                int(r[0])
                for r in db.execute("SELECT id FROM items WHERE in_hand_since IS NOT NULL")
            ]
            db.execute(
                "UPDATE items SET crashes = crashes + 1, in_hand_since = NULL"
                " WHERE in_hand_since IS NOT NULL"
            )
            db.execute(
                "UPDATE items SET state = 'failed', last_error = ?, updated_at = ?"
                " WHERE crashes >= ? AND state IN ('pending', 'sending')",
                (f"stopped the daemon {MAX_CRASHES} times; not touched again", now, MAX_CRASHES),
            )
            rows = [
                db.execute(f"SELECT {_COLUMNS} FROM items WHERE id = ?", (i,)).fetchone()  # noqa: S608 -- fixed column list
                for i in ids
            ]
        return [Item._from_row(r) for r in rows]

    def mark_sending(self, ids: Iterable[int], *, now: float) -> None:
        with self._tx() as db:
            db.executemany(
                "UPDATE items SET state = 'sending', updated_at = ?"
                " WHERE id = ? AND state = 'pending'",
                [(now, i) for i in ids],
            )

    def mark_delivered(self, item_id: int, *, now: float, remote_key: str | None = None) -> int:
        """Delivered; older failed versions of its path leave the failed list (superseded).
        Returns how many did."""
        with self._tx() as db:
            db.execute(
                "UPDATE items SET state = 'delivered', delivered_at = ?, updated_at = ?,"
                " remote_key = COALESCE(?, remote_key), last_error = NULL WHERE id = ?",
                (now, now, remote_key, item_id),
            )
            return db.execute(
                "UPDATE items SET dismissed_at = ? WHERE path = (SELECT path FROM items"  # noqa: S608 -- fixed text
                f" WHERE id = ?) AND id < ? AND {_LISTED_FAILED}",
                (now, item_id, item_id),
            ).rowcount

    def mark_failed(self, item_id: int, reason: str, *, now: float, vanished: bool = False) -> None:
        """Failed with `reason`. A `vanished` file is marked so, and `known()` no longer matches
        it: the file is hashed and spooled again should it reappear."""
        with self._tx() as db:
            db.execute(
                "UPDATE items SET state = 'failed', last_error = ?, updated_at = ?,"
                " attempts = attempts + 1, vanished = MAX(vanished, ?) WHERE id = ?",
                (reason, now, vanished, item_id),
            )

    def reschedule(
        self, item_id: int, *, at: float, error: str | None, now: float, count_attempt: bool = True
    ) -> None:
        """Back to pending, to be tried again at `at`."""
        self.reschedule_many([item_id], at=at, error=error, now=now, count_attempt=count_attempt)

    def reschedule_many(
        self,
        ids: Iterable[int],
        *,
        at: float,
        error: str | None,
        now: float,
        count_attempt: bool = True,
    ) -> None:
        """`reschedule` for several items (those of one request), in one transaction."""
        with self._tx() as db:
            db.executemany(
                "UPDATE items SET state = 'pending', next_attempt_at = ?, last_error = ?,"
                " updated_at = ?, attempts = attempts + ? WHERE id = ?",
                [(at, error, now, 1 if count_attempt else 0, i) for i in ids],
            )

    def release_sending(
        self, ids: Iterable[int], *, at: float, error: str | None, now: float
    ) -> None:
        """Items of an interrupted request that are still `sending` go back to pending."""
        with self._tx() as db:
            db.executemany(
                "UPDATE items SET state = 'pending', next_attempt_at = ?, last_error = ?,"
                " updated_at = ? WHERE id = ? AND state = 'sending'",
                [(at, error, now, i) for i in ids],
            )

    def record_parts(
        self, item_id: int, *, parts_done: int, part_errors: Sequence[str], now: float
    ) -> None:
        """Progress through a multi-part item (a session file larger than one batch)."""
        with self._tx() as db:
            db.execute(
                "UPDATE items SET parts_done = ?, part_errors = ?, updated_at = ? WHERE id = ?",
                (parts_done, json.dumps(list(part_errors)) if part_errors else None, now, item_id),
            )

    def replace_version(
        self, item_id: int, *, size: int, mtime_ns: int, sha256: str, at: float, now: float
    ) -> bool:
        """The file changed after it was spooled: this item now stands for the new content.

        Returns False (and drops this item) when the new version is already spooled separately.
        """
        with self._tx() as db:
            row = db.execute("SELECT path FROM items WHERE id = ?", (item_id,)).fetchone()
            if row is None:
                return False
            clash = db.execute(
                "SELECT 1 FROM items WHERE path = ? AND sha256 = ? AND id != ?",
                (row["path"], sha256, item_id),
            ).fetchone()
            if clash:
                db.execute("DELETE FROM items WHERE id = ?", (item_id,))
                return False
            db.execute(
                "UPDATE items SET size = ?, mtime_ns = ?, sha256 = ?, vanished = 0,"
                " state = 'pending', next_attempt_at = ?, parts_done = 0, part_errors = NULL,"
                " last_error = ?, updated_at = ? WHERE id = ?",
                (size, mtime_ns, sha256, at, "file changed after it was spooled", now, item_id),
            )
            return True

    def retry(self, ids: Iterable[int], *, now: float) -> list[int]:
        """Failed items back to pending; the ids actually moved."""
        moved: list[int] = []
        with self._tx() as db:
            for item_id in ids:
                cursor = db.execute(
                    "UPDATE items SET state = 'pending', next_attempt_at = 0, attempts = 0,"
                    " parts_done = 0, part_errors = NULL, crashes = 0, updated_at = ?,"
                    " dismissed_at = NULL WHERE id = ? AND state = 'failed' AND refused = 0",
                    (now, item_id),
                )
                if cursor.rowcount:
                    moved.append(item_id)
        return moved

    def forget(self, item_id: int) -> None:
        """Drop an item (a refused one about to be examined afresh)."""
        with self._tx() as db:
            db.execute("DELETE FROM items WHERE id = ?", (item_id,))

    def failed_ids(self) -> list[int]:
        """The ids on the failed list (dismissed and superseded items are not)."""
        rows = self._query(f"SELECT id FROM items WHERE {_LISTED_FAILED} ORDER BY id")  # noqa: S608 -- fixed text
        return [int(r[0]) for r in rows]

    def dismiss(self, ids: Iterable[int], *, now: float) -> list[int]:
        """Failed items off the failed list, their rows kept (so a scan does not spool the same
        file again); the ids actually dismissed."""
        dismissed: list[int] = []
        with self._tx() as db:
            for item_id in ids:
                cursor = db.execute(
                    f"UPDATE items SET dismissed_at = ? WHERE id = ? AND {_LISTED_FAILED}",  # noqa: S608 -- fixed text
                    (now, item_id),
                )
                if cursor.rowcount:
                    dismissed.append(item_id)
        return dismissed

    def dismiss_superseded(self, *, now: float, gone: Callable[[Path], bool]) -> list[Item]:
        """Failed items whose path a newer version was since delivered to, or whose file is
        `gone`, leave the failed list; the items that did."""
        rows = self._query(
            f"SELECT {_COLUMNS} FROM items AS f WHERE {_LISTED_FAILED} ORDER BY id LIMIT 1000"  # noqa: S608 -- fixed text
        )
        newer = {
            int(r[0])
            for r in self._query(
                "SELECT f.id FROM items AS f JOIN items AS d ON d.path = f.path AND d.id > f.id"
                " AND d.state = 'delivered' WHERE f.state = 'failed' AND f.dismissed_at IS NULL"
            )
        }
        superseded = [
            Item._from_row(r) for r in rows if r["id"] in newer or gone(from_stored(r["path"]))
        ]
        if superseded:
            self.dismiss([item.id for item in superseded], now=now)
        return superseded

    def make_due(self, ids: Iterable[int] | None, *, now: float) -> list[int]:
        """Pending items waiting out a backoff go at the next send (None: every pending item);
        the ids of those that were waiting."""
        with self._tx() as db:
            if ids is None:
                rows = db.execute(
                    "SELECT id FROM items WHERE state = 'pending' AND next_attempt_at > ?", (now,)
                ).fetchall()
                ids = [int(r[0]) for r in rows]
            moved = []
            for item_id in ids:
                cursor = db.execute(
                    "UPDATE items SET next_attempt_at = ?, updated_at = ?"
                    " WHERE id = ? AND state = 'pending' AND next_attempt_at > ?",
                    (now, now, item_id, now),
                )
                if cursor.rowcount:
                    moved.append(item_id)
        return moved

    # -- notes for other processes: a send-now request, the API's last answer -----------------

    def meta_set(self, key: str, value: str | None) -> None:
        """Set (None: remove) one note in the spool's meta table; keys are this module's."""
        with self._tx() as db:
            if value is None:
                db.execute("DELETE FROM meta WHERE key = ?", (key,))
            else:
                db.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (key, value),
                )

    def meta_get(self, key: str) -> str | None:
        rows = self._query("SELECT value FROM meta WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    def meta_clear_if(self, key: str, value: str) -> bool:
        """Remove the note only while it still holds `value` (a newer one is kept)."""
        with self._tx() as db:
            return (
                db.execute("DELETE FROM meta WHERE key = ? AND value = ?", (key, value)).rowcount
                == 1
            )

    def counts(self) -> dict[State, int]:
        """Items per state, from the counts the triggers keep (no scan of the items)."""
        counts: dict[State, int] = dict.fromkeys(STATES, 0)
        for row in self._query("SELECT state, n FROM item_counts"):
            if row[0] in counts:  # 'dismissed' is counted apart, off the four states
                counts[row[0]] = int(row[1])
        return counts

    def backlog(self, now: float, *, inline_max_bytes: int, max_entries: int) -> Backlog:
        """The due pending items in summary: count, bytes, requests they need, arrival span."""
        rows = self._query(
            "SELECT COUNT(*), COALESCE(SUM(size), 0),"
            " COALESCE(SUM(CASE WHEN kind = 'session' OR size <= ? THEN size ELSE 0 END), 0),"
            " COALESCE(SUM(CASE WHEN kind = 'session' OR size <= ? THEN 1 ELSE 0 END), 0),"
            " MIN(created_at), MAX(created_at), SUM(created_at)"
            " FROM items WHERE state = 'pending' AND next_attempt_at <= ?",
            (inline_max_bytes, inline_max_bytes, now),
        )
        count, total, inline, inline_count, oldest, newest, arrived = rows[0]
        return Backlog(
            items=int(count),
            bytes=int(total),
            requests_needed=requests_needed(
                int(count),
                int(inline) + ENTRY_OVERHEAD_BYTES * int(inline_count),
                inline_max_bytes=inline_max_bytes,
                max_entries=max_entries,
            ),
            oldest_at=oldest,
            newest_at=newest,
            arrived_sum=arrived,
        )

    def arrivals(self, since: float, until: float) -> list[float]:
        """When items were spooled in [since, until), oldest first: the arrival history the
        pacing policy learns from. Whatever became of them (delivered, failed, refused)."""
        rows = self._query(
            "SELECT created_at FROM items WHERE created_at >= ? AND created_at < ?"
            " ORDER BY created_at",
            (since, until),
        )
        return [float(r[0]) for r in rows]

    def first_arrival(self) -> float | None:
        """When the oldest item still in the spool was spooled (None: the spool is empty)."""
        value = self._query("SELECT MIN(created_at) FROM items")[0][0]
        return float(value) if value is not None else None

    # -- multipart uploads in progress -------------------------------------------------------

    def upload_save(self, item_id: int, plan: Mapping[str, Any]) -> dict[int, str]:
        """Remember a presigned multipart upload (its parts' URLs) before any part is sent; the
        ETags already recorded when it continues the upload recorded before, else none."""
        with self._tx() as db:
            row = db.execute("SELECT plan FROM uploads WHERE item_id = ?", (item_id,)).fetchone()
            same = row is not None and json.loads(row[0]).get("upload_id") == plan.get("upload_id")
            if same:
                db.execute(
                    "UPDATE uploads SET plan = ? WHERE item_id = ?", (json.dumps(plan), item_id)
                )
            else:
                db.execute("DELETE FROM uploads WHERE item_id = ?", (item_id,))
                db.execute(
                    "INSERT INTO uploads (item_id, plan) VALUES (?, ?)",
                    (item_id, json.dumps(plan)),
                )
            parts = db.execute(
                "SELECT number, etag FROM upload_parts WHERE item_id = ?", (item_id,)
            ).fetchall()
        return {int(n): str(e) for n, e in parts}

    def upload_get(self, item_id: int) -> tuple[dict[str, Any], dict[int, str]] | None:
        """(plan, ETags of parts sent) of the item's upload, or None."""
        rows = self._query("SELECT plan FROM uploads WHERE item_id = ?", (item_id,))
        if not rows:
            return None
        parts = self._query("SELECT number, etag FROM upload_parts WHERE item_id = ?", (item_id,))
        return json.loads(rows[0][0]), {int(n): str(e) for n, e in parts}

    def upload_part_done(self, item_id: int, number: int, etag: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO upload_parts (item_id, number, etag) VALUES (?, ?, ?)",
                (item_id, number, etag),
            )

    def upload_drop(self, item_id: int) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM uploads WHERE item_id = ?", (item_id,))

    def uploads_due(self, now: float) -> list[tuple[int, str, dict[str, Any], dict[int, str]]]:
        """(item id, its sha256, plan, ETags of parts sent) for uploads of due pending items."""
        rows = self._query(
            "SELECT u.item_id, i.sha256, u.plan FROM uploads u JOIN items i ON i.id = u.item_id"
            " WHERE i.state = 'pending' AND i.next_attempt_at <= ? ORDER BY u.item_id",
            (now,),
        )
        found = []
        for item_id, sha256, plan in rows:
            parts = self._query(
                "SELECT number, etag FROM upload_parts WHERE item_id = ?", (item_id,)
            )
            found.append(
                (int(item_id), str(sha256), json.loads(plan), {int(n): str(e) for n, e in parts})
            )
        return found

    def prune_delivered(
        self, before: float, *, current: Callable[[Path], tuple[int, int, int] | None]
    ) -> int:
        """Drop delivered items delivered before `before`; the number dropped.

        Kept: a row whose file is still in the folder as it was delivered (`current(path)` gives
        the file's (size, mtime_ns, inode), None when it is gone), since that row is what keeps
        a scan from hashing and sending the file again.
        """
        dropped = 0
        after = 0
        while True:  # a chunk at a time by id: bounded memory, and the lock is let go between
            rows = self._query(
                "SELECT id, path, size, mtime_ns, inode FROM items WHERE id > ?"
                " AND state = 'delivered' AND delivered_at < ? ORDER BY id LIMIT ?",
                (after, before, _PRUNE_CHUNK),
            )
            if not rows:
                break
            after = int(rows[-1][0])
            kept = [int(r[0]) for r in rows if _still_there(r, current)]
            with self._tx() as db:
                # One statement over the chunk's id range (the same rows the SELECT saw, unless
                # a newer delivery came in, which `delivered_at` leaves out).
                dropped += db.execute(
                    "DELETE FROM items WHERE id BETWEEN ? AND ? AND state = 'delivered'"
                    " AND delivered_at < ? AND id NOT IN (SELECT value FROM json_each(?))",
                    (int(rows[0][0]), after, before, json.dumps(kept)),
                ).rowcount
        if dropped:
            with self._lock:
                # Give the freed pages back (a spool made before incremental vacuum only reuses
                # them) and shrink the WAL the deletes grew. executescript steps the pragma to
                # its end; execute() frees a single page.
                self._db.executescript("PRAGMA incremental_vacuum;")
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        return dropped

    # -- quota ledger rows -------------------------------------------------------------------

    def quota_period(self, period_start: float) -> tuple[int, bool]:
        """(requests used, exhausted flag) for the quota period starting at `period_start`."""
        rows = self._query(
            "SELECT used, exhausted FROM quota_periods WHERE period_start = ?", (period_start,)
        )
        if not rows:
            return 0, False
        return int(rows[0][0]), bool(rows[0][1])

    def quota_overlapping(self, after: float, until: float) -> tuple[int, bool]:
        """The summed count, and any exhausted flag, of periods starting in (after, until].

        Summed, not the largest: such periods overlap only after `reset_utc` changed, and the
        gateway's one day may hold requests of each of them.
        """
        rows = self._query(
            "SELECT SUM(used), MAX(exhausted) FROM quota_periods"
            " WHERE period_start > ? AND period_start <= ?",
            (after, until),
        )
        used, exhausted = rows[0]
        return int(used or 0), bool(exhausted)

    def quota_spend(self, period_start: float, *, at: float) -> int:
        """Count one request in the period and remember when it was sent; the new count."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO quota_periods (period_start, used) VALUES (?, 1)"
                " ON CONFLICT (period_start) DO UPDATE SET used = used + 1",
                (period_start,),
            )
            db.execute(
                "INSERT INTO meta (key, value) VALUES ('last_request_at', ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (repr(at),),
            )
            row = db.execute(
                "SELECT used FROM quota_periods WHERE period_start = ?", (period_start,)
            ).fetchone()
            return int(row[0])

    def quota_refund(self, period_start: float) -> None:
        """Take back one request that provably never reached the gateway."""
        with self._tx() as db:
            db.execute(
                "UPDATE quota_periods SET used = MAX(0, used - 1) WHERE period_start = ?",
                (period_start,),
            )

    def quota_raise_to(self, period_start: float, used: int) -> None:
        """Count at least `used` requests in the period."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO quota_periods (period_start, used) VALUES (?, ?)"
                " ON CONFLICT (period_start) DO UPDATE SET used = MAX(used, excluded.used)",
                (period_start, used),
            )

    def quota_mark_exhausted(self, period_start: float) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO quota_periods (period_start, used, exhausted) VALUES (?, 0, 1)"
                " ON CONFLICT (period_start) DO UPDATE SET exhausted = 1",
                (period_start,),
            )

    def last_request_at(self) -> float | None:
        rows = self._query("SELECT value FROM meta WHERE key = 'last_request_at'")
        return float(rows[0][0]) if rows else None

    def note_api_url(self, url: str, *, now: float) -> int:
        """Remember the API address in use. When it differs from the one remembered, items held
        after a redirect answer (only a new `api.url` cures those) go at the next send; returns
        how many were released."""
        with self._tx() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'api_url'").fetchone()
            db.execute(
                "INSERT INTO meta (key, value) VALUES ('api_url', ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (url,),
            )
            if row is None or row[0] == url:
                return 0
            return _release_holds(db, REDIRECT_MARK, now)

    def release_key_refused(self, *, now: float) -> int:
        """Items held after the API refused the key go at the next send (the key was changed);
        returns how many."""
        with self._tx() as db:
            return _release_holds(db, KEY_REFUSED_MARK, now)


def _release_holds(db: sqlite3.Connection, mark: str, now: float) -> int:
    """Pending items waiting out a hold whose reason carries `mark` are due now."""
    released = db.execute(
        "UPDATE items SET next_attempt_at = ?, updated_at = ?"
        " WHERE state = 'pending' AND next_attempt_at > ? AND last_error LIKE ?",
        (now, now, now, f"%{mark}%"),
    )
    return released.rowcount


_Identity = tuple[tuple[int, int] | None, ...]


def _connect(path: Path) -> tuple[sqlite3.Connection, _Identity | None]:
    """A connection to the spool at `path`, migrated; with the (st_dev, st_ino) of the database,
    its WAL and its shared memory (None for one not there), or None in memory."""
    on_disk = str(path) != _MEMORY
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


def _still_there(row: sqlite3.Row, current: Callable[[Path], tuple[int, int, int] | None]) -> bool:
    """The row still describes the file at its path (a row without an inode matches any)."""
    _, path, size, mtime_ns, inode = row
    key = current(from_stored(path))
    return key is not None and key[:2] == (size, mtime_ns) and inode in (0, key[2])


def _set_aside(path: Path, now: float) -> Path:
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
