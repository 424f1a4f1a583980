"""Poison-pill quarantine: the item in hand while its file is read and parsed, and the count of
runs that died on it; one that stopped the daemon `MAX_CRASHES` times in a row is failed.
"""

from __future__ import annotations

from exportsync.spool.connection import _UNKNOWN, Connection
from exportsync.spool.items import COLUMNS, Item

__all__ = ["MAX_CRASHES", "QuarantineStore"]

# An item the daemon died on this many times in a row is failed at the next start, never read again.
MAX_CRASHES = 2


class QuarantineStore(Connection):
    """The in-hand mark and crash count of the items table.

    `_in_hand` (on `Connection`) is the item this connection marked last, None when it released
    it, `_UNKNOWN` until it has looked (a new connection: a mark may be left from a run that
    died, which `count_crashes` or the first hold or release clears)."""

    def hold(self, item_id: int, *, now: float) -> None:
        """Mark `item_id` as the one item in hand, before its file is read and parsed.

        The item held before it came through: its mark and crash count are cleared (only crashes
        in a row count, so a kill -9 that happened to land on an item now and then never
        quarantines it). Committed without fsync: it has to survive the process, not power loss.
        Once this connection knows which item it marked, only that row and the new one are
        touched (by id), not every row: a burst of thousands of files holds each in turn.
        """
        with self._tx(sync=False) as db:
            params: tuple[int, ...]
            if self._in_hand == _UNKNOWN:
                where, params = "in_hand_since IS NOT NULL OR id = ?", (item_id,)
            else:
                where, params = "id IN (?, ?)", (item_id, self._in_hand or item_id)
            db.execute(
                "UPDATE items SET in_hand_since = CASE WHEN id = ? THEN ? END,"  # noqa: S608 -- fixed text
                f" crashes = CASE WHEN id = ? THEN crashes ELSE 0 END WHERE {where}",
                (item_id, now, item_id, *params),
            )
        self._in_hand = item_id

    def release_hold(self) -> None:
        """Nothing is in hand any more: the item held came through."""
        if self._in_hand is None:
            return  # nothing marked since the last release: no write
        with self._tx(sync=False) as db:
            params: tuple[int, ...]
            if self._in_hand == _UNKNOWN:
                where, params = "in_hand_since IS NOT NULL", ()
            else:
                where, params = "id = ?", (self._in_hand,)
            db.execute(
                f"UPDATE items SET in_hand_since = NULL, crashes = 0 WHERE {where}",  # noqa: S608 -- fixed text
                params,
            )
        self._in_hand = None

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
            self._in_hand = None  # every mark was just cleared
            rows = [
                db.execute(f"SELECT {COLUMNS} FROM items WHERE id = ?", (i,)).fetchone()  # noqa: S608 -- fixed column list
                for i in ids
            ]
        return [Item.from_row(r) for r in rows]
