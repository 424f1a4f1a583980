"""Notes one process leaves for another in the meta table: a pending `exportsync send-now`, what
the API's last answer said about the key or the network, the API address in use."""

from __future__ import annotations

from exportsync.errors import REDIRECT_MARK
from exportsync.spool.connection import Connection
from exportsync.spool.states import release_holds

__all__ = ["API_KEY_REFUSED", "API_STATE_KEY", "API_UNREACHABLE", "SEND_NOW_KEY", "MetaStore"]

# Meta notes one process leaves for another: what the API's last answer said about the key or
# the network (absent: nothing wrong), and a pending `exportsync send-now` (its time).
API_STATE_KEY = "api_state"
API_KEY_REFUSED = "key_refused"
API_UNREACHABLE = "unreachable"
SEND_NOW_KEY = "send_now_requested_at"


class MetaStore(Connection):
    """The meta table's notes."""

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
            return release_holds(db, REDIRECT_MARK, now)
