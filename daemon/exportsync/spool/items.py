"""The items table: one row per file version, `pending → sending → delivered | failed`.

Items are unique by (path, sha256): an identical re-save is recognised and not sent again, while
a changed file becomes a new item (a new version) that supersedes a pending older one. `Item`'s
fields are its columns, named once: the SELECT list and the row reader are made from them.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

from exportsync.backlog import ENTRY_OVERHEAD_BYTES, Backlog, requests_needed
from exportsync.errors import SpoolError
from exportsync.fs.names import from_stored, stored
from exportsync.spool.connection import Connection

__all__ = [
    "COLUMNS",
    "LISTED_FAILED",
    "PRUNE_CHUNK",
    "RECLAIM_PAGES",
    "STATES",
    "Item",
    "ItemStore",
    "NewVersion",
    "RecordResult",
    "State",
    "VersionKey",
]

State = Literal["pending", "sending", "delivered", "failed"]
STATES: tuple[State, ...] = ("pending", "sending", "delivered", "failed")

VersionKey = tuple[bytes, int, int, int]
"""(path as stored, size, mtime_ns, inode) of a spooled version: what a scan compares with."""

# Paths per `known_many` query: under SQLite's default limit of bound parameters.
_IN_CHUNK = 500
# The lengths of `known_many`'s IN lists (the last is `_IN_CHUNK`).
_IN_SIZES = (1, 8, 64, _IN_CHUNK)

# Ids looked at per pruning transaction: bounds the WAL and how long the delivery loop (and the
# intake) wait for the lock (bench/bench_local.py `spool` times the longest piece).
PRUNE_CHUNK = 250
# Pages given back to the disk per step after a prune (1 MiB of 4 KiB pages).
RECLAIM_PAGES = 256
_AUTO_VACUUM_INCREMENTAL = 2

# A failed item still on the failed list (not dismissed, not superseded).
LISTED_FAILED = "state = 'failed' AND dismissed_at IS NULL"


@dataclass(frozen=True, slots=True)
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
    def from_row(cls, row: sqlite3.Row) -> Item:
        return cls(*[row[i] if read is None else read(row[i]) for i, read in enumerate(_READ)])

    @property
    def content_sha256(self) -> str:
        """The content hash, which every item but a refused one has."""
        if self.sha256 is None:
            raise SpoolError(f"item {self.id} was refused before its content was read")
        return self.sha256


_NAMES = tuple(f.name for f in fields(Item))
COLUMNS = ", ".join(_NAMES)
# The columns not stored as their field holds them; the others are read as they are.
_DECODE: dict[str, Callable[[Any], Any]] = {
    "path": from_stored,
    "refused": bool,
    "vanished": bool,
    "part_errors": lambda text: tuple(json.loads(text)) if text else (),
}

# Each field's reader, in field order (the order of COLUMNS, which every item query selects).
_READ = tuple(_DECODE.get(name) for name in _NAMES)


@dataclass(frozen=True, slots=True)
class NewVersion:
    """One hashed file version to record (`Spool.record_many`)."""

    path: Path
    kind: Literal["csv", "session"]
    size: int
    mtime_ns: int
    sha256: str
    inode: int = 0


@dataclass(frozen=True, slots=True)
class RecordResult:
    """What `Spool.record` did: `created` is False when the same version was already known;
    `requeued` is True when that known version had failed and is pending again."""

    item: Item
    created: bool
    requeued: bool = False


class ItemStore(Connection):
    """Recording file versions and reading them (their state moves are `StateStore`'s)."""

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
        if cursor.rowcount == 1:
            # "+state": look the path up by its index, not every pending row by state.
            db.execute(
                "DELETE FROM items WHERE path = ? AND sha256 != ? AND +state = 'pending'",
                (path, v.sha256),
            )
            # The new row is what was just written with the table's defaults: not read back (a
            # burst records thousands of them in one transaction).
            return RecordResult(_new_item(cursor.lastrowid, v, now), created=True)
        # Known already. A version that failed because its file vanished before delivery, and
        # is now back, goes back in line. Versions refused for their content stay failed:
        # saving the same bytes again would only spend a request on the same refusal
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
            f"SELECT {COLUMNS} FROM items WHERE path = ? AND sha256 = ?",  # noqa: S608 -- fixed column list
            (path, v.sha256),
        ).fetchone()
        return RecordResult(Item.from_row(row), False, requeued)

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
                f"SELECT {COLUMNS} FROM items WHERE path = ? AND refused = 1",  # noqa: S608 -- fixed column list
                (stored(path),),
            ).fetchone()
        return RecordResult(Item.from_row(row), created)

    def known(self, path: Path, size: int, mtime_ns: int, inode: int | None = None) -> bool:
        """True when this exact (path, size, mtime[, inode]) was already spooled: a scan need not
        hash it. A row from before inodes were recorded (inode 0) matches any inode."""
        rows = self._query(
            "SELECT 1 FROM items WHERE path = ? AND size = ? AND mtime_ns = ? AND vanished = 0"
            " AND (? IS NULL OR inode IN (0, ?)) LIMIT 1",
            (stored(path), size, mtime_ns, inode, inode),
        )
        return bool(rows)

    def known_many(self, versions: Sequence[tuple[Path, int, int, int | None]]) -> list[bool]:
        """`known` for each (path, size, mtime_ns, inode), in one query per `_IN_CHUNK` paths:
        a batch of the intake takes the spool's lock once, not once per file (the delivery
        thread holds it for its own transactions meanwhile)."""
        found: set[tuple[bytes, int, int]] = set()
        inodes: dict[tuple[bytes, int, int], set[int]] = {}
        names = sorted({stored(path) for path, *_ in versions})
        for start in range(0, len(names), _IN_CHUNK):
            chunk: list[bytes | None] = list(names[start : start + _IN_CHUNK])
            # Padded with NULLs (which match no path) to one of a few lengths: each distinct
            # statement is prepared and kept in the connection's cache, and a burst's batches
            # come in every size.
            size = next(n for n in _IN_SIZES if n >= len(chunk))
            chunk += [None] * (size - len(chunk))
            rows = self._query(
                "SELECT path, size, mtime_ns, inode FROM items WHERE vanished = 0"  # noqa: S608 -- placeholders only
                f" AND path IN ({', '.join('?' * size)})",
                chunk,
            )
            for row in rows:
                key = (bytes(row[0]), int(row[1]), int(row[2]))
                found.add(key)
                inodes.setdefault(key, set()).add(int(row[3] or 0))
        out = []
        for path, size, mtime_ns, inode in versions:
            key = (stored(path), size, mtime_ns)
            seen = inodes.get(key, set())
            out.append(key in found and (inode is None or 0 in seen or inode in seen))
        return out

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
        rows = self._query(f"SELECT {COLUMNS} FROM items WHERE id = ?", (item_id,))  # noqa: S608 -- fixed column list
        return Item.from_row(rows[0]) if rows else None

    def items(self, state: State | None = None, *, limit: int = 1000) -> list[Item]:
        if state is None:
            rows = self._query(
                f"SELECT {COLUMNS} FROM items ORDER BY id LIMIT ?",  # noqa: S608 -- fixed column list
                (limit,),
            )
        elif state == "failed":  # the failed list: dismissed and superseded items are off it
            rows = self._query(
                f"SELECT {COLUMNS} FROM items WHERE {LISTED_FAILED} ORDER BY id LIMIT ?",  # noqa: S608 -- fixed text
                (limit,),
            )
        else:
            rows = self._query(
                f"SELECT {COLUMNS} FROM items WHERE state = ? ORDER BY id LIMIT ?",  # noqa: S608 -- fixed column list
                (state, limit),
            )
        return [Item.from_row(r) for r in rows]

    def recent(self, *, limit: int = 5) -> list[Item]:
        """The items that changed state last, newest first (`status --watch`'s last events)."""
        rows = self._query(
            f"SELECT {COLUMNS} FROM items ORDER BY updated_at DESC, id DESC LIMIT ?",  # noqa: S608 -- fixed column list
            (limit,),
        )
        return [Item.from_row(r) for r in rows]

    def due(self, now: float, *, limit: int = 500) -> list[Item]:
        """Pending items whose next attempt time has come, oldest first."""
        rows = self._query(
            f"SELECT {COLUMNS} FROM items WHERE state = 'pending' AND next_attempt_at <= ?"  # noqa: S608 -- fixed column list
            " ORDER BY next_attempt_at, id LIMIT ?",
            (now, limit),
        )
        return [Item.from_row(r) for r in rows]

    def next_due_at(self) -> float | None:
        """When the earliest pending item may be tried, or None when nothing is pending."""
        rows = self._query("SELECT MIN(next_attempt_at) FROM items WHERE state = 'pending'")
        value = rows[0][0]
        return float(value) if value is not None else None

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

    def prune_delivered(
        self, before: float, *, current: Callable[[Path], tuple[int, int, int] | None]
    ) -> int:
        """Drop delivered items delivered before `before`; the number dropped. The whole pass
        at once (`prune_chunk` and `reclaim` are its steps, which the daemon spreads out)."""
        dropped = 0
        after: int | None = 0
        while after is not None:
            count, after = self.prune_chunk(before, current=current, after=after)
            dropped += count
        if dropped:
            while not self.reclaim():
                pass
        return dropped

    def prune_chunk(
        self,
        before: float,
        *,
        current: Callable[[Path], tuple[int, int, int] | None],
        after: int = 0,
        limit: int = PRUNE_CHUNK,
    ) -> tuple[int, int | None]:
        """Drop the items delivered before `before` among the ids in (`after`, `after` +
        `limit`], in one short transaction: ``(dropped, where the next chunk starts)``, None
        once no id lies beyond. A window of ids, not of matching rows: each chunk reads at
        most `limit` rows by the table's own key, however few of them are prunable.

        Kept: a row whose file is still in the folder as it was delivered (`current(path)` gives
        the file's (size, mtime_ns, inode), None when it is gone), since that row is what keeps
        a scan from hashing and sending the file again. The files are looked at between the
        read and the write, with the spool's lock let go.
        """
        top = after + limit
        # "+state" here and below: walk the ids, never the state index (which visits every
        # delivered row of the spool for each chunk).
        rows = self._query(
            "SELECT id, path, size, mtime_ns, inode FROM items WHERE id > ? AND id <= ?"
            " AND +state = 'delivered' AND delivered_at < ?",
            (after, top, before),
        )
        dropped = 0
        if rows:
            kept = [int(r[0]) for r in rows if _still_there(r, current)]
            # Without an fsync of its own: a prune that a power cut undoes only brings old
            # history back (pruned again next time); the next synced commit carries it to disk.
            with self._tx(sync=False) as db:
                # The same rows the SELECT saw, unless a newer delivery came in, which
                # `delivered_at` leaves out.
                dropped = db.execute(
                    "DELETE FROM items WHERE id > ? AND id <= ? AND +state = 'delivered'"
                    " AND delivered_at < ? AND id NOT IN (SELECT value FROM json_each(?))",
                    (after, top, before, json.dumps(kept)),
                ).rowcount
        beyond = self._query("SELECT 1 FROM items WHERE id > ? LIMIT 1", (top,))
        return dropped, (top if beyond else None)

    def reclaim(self, pages: int = RECLAIM_PAGES) -> bool:
        """Give up to `pages` freed pages back to the disk (a spool made before incremental
        vacuum only reuses them) and shrink the WAL; True once none is left to give back."""
        with self._lock:
            try:
                # executescript steps the pragma to its end; execute() frees a single page.
                self._db.executescript(f"PRAGMA incremental_vacuum({int(pages)});")
                left = int(self._db.execute("PRAGMA freelist_count").fetchone()[0])
                auto = int(self._db.execute("PRAGMA auto_vacuum").fetchone()[0])
                if left and auto == _AUTO_VACUUM_INCREMENTAL:
                    # This slice's pages go to the database now, a slice at a time: left to
                    # the last piece's TRUNCATE, the WAL's thousand pages took it over 50 ms.
                    self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    return False
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            except sqlite3.Error as exc:
                raise SpoolError(f"spool vacuum failed: {exc}") from exc
        return True


def _new_item(item_id: int | None, v: NewVersion, now: float) -> Item:
    """The row `record_many` just inserted for `v`: its values and the table's defaults."""
    if item_id is None:
        raise SpoolError(f"no row id for the new version of {v.path}")
    return Item(
        id=item_id,
        path=v.path,
        kind=v.kind,
        size=v.size,
        mtime_ns=v.mtime_ns,
        sha256=v.sha256,
        refused=False,
        vanished=False,
        state="pending",
        attempts=0,
        next_attempt_at=0.0,
        last_error=None,
        parts_done=0,
        part_errors=(),
        remote_key=None,
        created_at=now,
        updated_at=now,
        delivered_at=None,
        inode=v.inode,
    )


def _still_there(row: sqlite3.Row, current: Callable[[Path], tuple[int, int, int] | None]) -> bool:
    """The row still describes the file at its path (a row without an inode matches any)."""
    _, path, size, mtime_ns, inode = row
    key = current(from_stored(path))
    return key is not None and key[:2] == (size, mtime_ns) and inode in (0, key[2])
