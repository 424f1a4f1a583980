"""Moving items between states: `pending → sending → delivered | failed`, back to pending for a
retry or a hold, off the failed list (dismissed, superseded), and a crash's `sending` released.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from exportsync.errors import KEY_REFUSED_MARK
from exportsync.fs.names import from_stored
from exportsync.spool.connection import Connection
from exportsync.spool.items import COLUMNS, LISTED_FAILED, Item

__all__ = ["StateStore", "release_holds"]


class StateStore(Connection):
    """The items' state transitions."""

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
        return self.mark_delivered_many([(item_id, remote_key)], now=now)[0]

    def mark_delivered_many(
        self, delivered: Sequence[tuple[int, str | None]], *, now: float
    ) -> list[int]:
        """`mark_delivered` for the (item id, remote key) pairs of one answer, in one
        transaction (one fsync for the whole request), their multipart progress dropped with
        them; how many each one superseded."""
        superseded: list[int] = []
        with self._tx() as db:
            for item_id, remote_key in delivered:
                db.execute(
                    "UPDATE items SET state = 'delivered', delivered_at = ?, updated_at = ?,"
                    " remote_key = COALESCE(?, remote_key), last_error = NULL WHERE id = ?",
                    (now, now, remote_key, item_id),
                )
                db.execute("DELETE FROM uploads WHERE item_id = ?", (item_id,))
                superseded.append(
                    db.execute(
                        "UPDATE items SET dismissed_at = ? WHERE path = (SELECT path FROM items"  # noqa: S608 -- fixed text
                        f" WHERE id = ?) AND id < ? AND {LISTED_FAILED}",
                        (now, item_id, item_id),
                    ).rowcount
                )
        return superseded

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
        rows = self._query(f"SELECT id FROM items WHERE {LISTED_FAILED} ORDER BY id")  # noqa: S608 -- fixed text
        return [int(r[0]) for r in rows]

    def dismiss(self, ids: Iterable[int], *, now: float) -> list[int]:
        """Failed items off the failed list, their rows kept (so a scan does not spool the same
        file again); the ids actually dismissed."""
        dismissed: list[int] = []
        with self._tx() as db:
            for item_id in ids:
                cursor = db.execute(
                    f"UPDATE items SET dismissed_at = ? WHERE id = ? AND {LISTED_FAILED}",  # noqa: S608 -- fixed text
                    (now, item_id),
                )
                if cursor.rowcount:
                    dismissed.append(item_id)
        return dismissed

    def dismiss_superseded(self, *, now: float, gone: Callable[[Path], bool]) -> list[Item]:
        """Failed items whose path a newer version was since delivered to, or whose file is
        `gone`, leave the failed list; the items that did."""
        rows = self._query(
            f"SELECT {COLUMNS} FROM items AS f WHERE {LISTED_FAILED} ORDER BY id LIMIT 1000"  # noqa: S608 -- fixed text
        )
        newer = {
            int(r[0])
            for r in self._query(
                "SELECT f.id FROM items AS f JOIN items AS d ON d.path = f.path AND d.id > f.id"
                " AND d.state = 'delivered' WHERE f.state = 'failed' AND f.dismissed_at IS NULL"
            )
        }
        superseded = [
            Item.from_row(r) for r in rows if r["id"] in newer or gone(from_stored(r["path"]))
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

    def release_key_refused(self, *, now: float) -> int:
        """Items held after the API refused the key go at the next send (the key was changed);
        returns how many."""
        with self._tx() as db:
            return release_holds(db, KEY_REFUSED_MARK, now)


def release_holds(db: sqlite3.Connection, mark: str, now: float) -> int:
    """Pending items waiting out a hold whose reason carries `mark` are due now."""
    released = db.execute(
        "UPDATE items SET next_attempt_at = ?, updated_at = ?"
        " WHERE state = 'pending' AND next_attempt_at > ? AND last_error LIKE ?",
        (now, now, now, f"%{mark}%"),
    )
    return released.rowcount
