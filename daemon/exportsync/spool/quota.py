"""The quota ledger's rows: requests counted per quota period, so the day's count survives
restarts together with the items it was spent on."""

from __future__ import annotations

import sqlite3

from exportsync.spool.connection import Connection

__all__ = ["QuotaStore"]


class QuotaStore(Connection):
    """The quota_periods table and the time of the last request."""

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
            return _spend(db, period_start, at)

    def quota_spend_spaced(
        self, period_start: float, *, at: float, gap: float
    ) -> tuple[int | None, float]:
        """Count one request as `quota_spend` does, unless the spool's last request was less
        than `gap` seconds before `at`: then count nothing. ``(new count, 0.0)``, or ``(None,
        seconds to wait)``. Checked and counted in one transaction, so processes sharing the
        spool (two `check --probe` at once) go `gap` apart; the caller waits without the lock.
        """
        with self._tx() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'last_request_at'").fetchone()
            if row is not None:
                last = float(row[0])
                if last > at:
                    # Stamped before the wall clock was set back: the request was at most now,
                    # so it is now, and the next goes one gap from here (not hours later).
                    _stamp(db, at)
                    return None, gap
                wait = last + gap - at
                if wait > 0:
                    return None, wait
            return _spend(db, period_start, at), 0.0

    def quota_bring_back(self, now: float) -> None:
        """A last request stamped later than `now` (the wall clock was set back since) is taken
        to have gone `now`: spacing from it then ends one interval from here."""
        with self._tx() as db:
            db.execute(
                "UPDATE meta SET value = ? WHERE key = 'last_request_at'"
                " AND CAST(value AS REAL) > ?",
                (repr(now), now),
            )

    def quota_answered(self, at: float) -> None:
        """The request counted last was answered at `at`: the next one is spaced from here, as
        the gateway counted it on arrival, somewhere before its answer."""
        with self._tx() as db:
            db.execute(
                "UPDATE meta SET value = ? WHERE key = 'last_request_at'"
                " AND CAST(value AS REAL) < ?",
                (repr(at), at),
            )

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


def _spend(db: sqlite3.Connection, period_start: float, at: float) -> int:
    db.execute(
        "INSERT INTO quota_periods (period_start, used) VALUES (?, 1)"
        " ON CONFLICT (period_start) DO UPDATE SET used = used + 1",
        (period_start,),
    )
    _stamp(db, at)
    row = db.execute(
        "SELECT used FROM quota_periods WHERE period_start = ?", (period_start,)
    ).fetchone()
    return int(row[0])


def _stamp(db: sqlite3.Connection, at: float) -> None:
    db.execute(
        "INSERT INTO meta (key, value) VALUES ('last_request_at', ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (repr(at),),
    )
