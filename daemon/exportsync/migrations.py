"""The spool's schema, as numbered migrations read from the database itself.

The ``meta`` row ``schema_version`` holds the number (a new file has none: version 0). Step ``n``
in `MIGRATIONS` upgrades version ``n`` to ``n + 1`` in one transaction with the new number, so a
crash leaves the file at a version, never between two. A later schema change appends one step;
steps already released never change, since spools written by them exist on users' disks.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from exportsync.errors import SpoolError

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "migrate", "schema_version"]


def _v1_initial(db: sqlite3.Connection) -> None:
    """The first schema. States hid in sentinels: sha256 ``'-'`` for a file refused before it
    was read, mtime_ns ``-1`` for a version whose file had vanished."""
    _script(
        db,
        """
        CREATE TABLE IF NOT EXISTS items (
            id              INTEGER PRIMARY KEY,
            path            TEXT    NOT NULL,
            kind            TEXT    NOT NULL CHECK (kind IN ('csv', 'session')),
            size            INTEGER NOT NULL,
            mtime_ns        INTEGER NOT NULL,
            sha256          TEXT    NOT NULL,
            state           TEXT    NOT NULL
                CHECK (state IN ('pending', 'sending', 'delivered', 'failed')),
            attempts        INTEGER NOT NULL DEFAULT 0,
            next_attempt_at REAL    NOT NULL DEFAULT 0,
            last_error      TEXT,
            parts_done      INTEGER NOT NULL DEFAULT 0,
            part_errors     TEXT,
            remote_key      TEXT,
            created_at      REAL    NOT NULL,
            updated_at      REAL    NOT NULL,
            delivered_at    REAL,
            UNIQUE (path, sha256)
        );
        CREATE INDEX IF NOT EXISTS items_due ON items (state, next_attempt_at);
        CREATE INDEX IF NOT EXISTS items_path ON items (path, size, mtime_ns);
        CREATE TABLE IF NOT EXISTS quota_periods (
            period_start REAL    PRIMARY KEY,
            used         INTEGER NOT NULL DEFAULT 0,
            exhausted    INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE IF NOT EXISTS meta (
            key   TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        """,
    )


def _v2_explicit_states(db: sqlite3.Connection) -> None:
    """Sentinels become columns: ``refused`` (read nothing; sha256 is NULL) and ``vanished`` (the
    file was gone when last looked at, so its recorded mtime says nothing about a file there now).

    SQLite cannot change a column's constraints in place: the table is rebuilt and copied.
    """
    _script(
        db,
        """
        CREATE TABLE items_v2 (
            id              INTEGER PRIMARY KEY,
            path            TEXT    NOT NULL,
            kind            TEXT    NOT NULL CHECK (kind IN ('csv', 'session')),
            size            INTEGER NOT NULL,
            mtime_ns        INTEGER NOT NULL,
            sha256          TEXT,
            refused         INTEGER NOT NULL DEFAULT 0 CHECK (refused IN (0, 1)),
            vanished        INTEGER NOT NULL DEFAULT 0 CHECK (vanished IN (0, 1)),
            state           TEXT    NOT NULL
                CHECK (state IN ('pending', 'sending', 'delivered', 'failed')),
            attempts        INTEGER NOT NULL DEFAULT 0,
            next_attempt_at REAL    NOT NULL DEFAULT 0,
            last_error      TEXT,
            parts_done      INTEGER NOT NULL DEFAULT 0,
            part_errors     TEXT,
            remote_key      TEXT,
            created_at      REAL    NOT NULL,
            updated_at      REAL    NOT NULL,
            delivered_at    REAL,
            CHECK ((sha256 IS NULL) = (refused = 1)),
            UNIQUE (path, sha256)
        );
        INSERT INTO items_v2 (
            id, path, kind, size, mtime_ns, sha256, refused, vanished, state, attempts,
            next_attempt_at, last_error, parts_done, part_errors, remote_key, created_at,
            updated_at, delivered_at
        )
        SELECT
            id, path, kind, size,
            CASE WHEN mtime_ns = -1 THEN 0 ELSE mtime_ns END,
            CASE WHEN sha256 = '-' THEN NULL ELSE sha256 END,
            sha256 = '-',
            mtime_ns = -1,
            state, attempts, next_attempt_at, last_error, parts_done, part_errors, remote_key,
            created_at, updated_at, delivered_at
        FROM items;
        DROP TABLE items;
        ALTER TABLE items_v2 RENAME TO items;
        CREATE INDEX items_due ON items (state, next_attempt_at);
        CREATE INDEX items_path ON items (path, size, mtime_ns);
        -- UNIQUE (path, sha256) lets NULLs repeat: one refused row per path is kept here.
        CREATE UNIQUE INDEX items_refused ON items (path) WHERE refused = 1;
        """,
    )


def _v3_paths_as_bytes(db: sqlite3.Connection) -> None:
    """Paths are kept as the kernel's bytes (a BLOB): a file name that is not UTF-8 cannot be
    SQLite text. Text paths written before are the same bytes once cast."""
    db.execute("UPDATE items SET path = CAST(path AS BLOB) WHERE typeof(path) = 'text'")


def _v4_poison_pill(db: sqlite3.Connection) -> None:
    """Poison-pill quarantine: ``in_hand_since`` marks the item being read and parsed; a mark
    found at start means the daemon died on it, and ``crashes`` counts how often in a row."""
    db.execute("ALTER TABLE items ADD COLUMN crashes INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE items ADD COLUMN in_hand_since REAL")


def _v5_multipart_uploads(db: sqlite3.Connection) -> None:
    """Multipart uploads in progress: the presigned plan (part URLs, completion, expiry, the
    content it is for) per item, and each sent part's ETag, so a restart sends only the rest."""
    _script(
        db,
        """
        CREATE TABLE uploads (
            item_id INTEGER PRIMARY KEY REFERENCES items (id) ON DELETE CASCADE,
            plan    TEXT    NOT NULL
        );
        CREATE TABLE upload_parts (
            item_id INTEGER NOT NULL REFERENCES uploads (item_id) ON DELETE CASCADE,
            number  INTEGER NOT NULL,
            etag    TEXT    NOT NULL,
            PRIMARY KEY (item_id, number)
        );
        """,
    )


def _v6_scale(db: sqlite3.Connection) -> None:
    """For large folders and spools: the file's inode beside size and mtime (a start-up scan
    compares all three with the folder), and the count of items per state kept by triggers
    (`status` reads four rows, not a million). Statement by statement: trigger bodies hold
    semicolons, which `_script` would split."""
    for statement in (
        "ALTER TABLE items ADD COLUMN inode INTEGER NOT NULL DEFAULT 0",
        "CREATE TABLE item_counts (state TEXT PRIMARY KEY, n INTEGER NOT NULL)",
        "INSERT INTO item_counts (state, n) SELECT s.state, (SELECT COUNT(*) FROM items"
        " WHERE items.state = s.state) FROM (SELECT 'pending' AS state UNION ALL SELECT 'sending'"
        " UNION ALL SELECT 'delivered' UNION ALL SELECT 'failed') AS s",
        "CREATE TRIGGER items_count_insert AFTER INSERT ON items BEGIN"
        " UPDATE item_counts SET n = n + 1 WHERE state = NEW.state; END",
        "CREATE TRIGGER items_count_delete AFTER DELETE ON items BEGIN"
        " UPDATE item_counts SET n = n - 1 WHERE state = OLD.state; END",
        "CREATE TRIGGER items_count_update AFTER UPDATE OF state ON items"
        " WHEN OLD.state != NEW.state BEGIN"
        " UPDATE item_counts SET n = n - 1 WHERE state = OLD.state;"
        " UPDATE item_counts SET n = n + 1 WHERE state = NEW.state; END",
    ):
        db.execute(statement)


def _v7_dismissed(db: sqlite3.Connection) -> None:
    """Failed items a person dismissed (`exportsync dismiss`), or that a newer delivered
    version or the file's removal superseded, leave the failed list but keep their row (a scan
    must still know the file, or it would be spooled and sent again). The per-state counts count
    such a row as 'dismissed', so `counts.failed` drops."""
    new = (
        "CASE WHEN NEW.state = 'failed' AND NEW.dismissed_at IS NOT NULL"
        " THEN 'dismissed' ELSE NEW.state END"
    )
    old = new.replace("NEW.", "OLD.")
    triggers = (
        ("items_count_insert", "AFTER INSERT ON items", f"n = n + 1 WHERE state = {new}"),
        ("items_count_delete", "AFTER DELETE ON items", f"n = n - 1 WHERE state = {old}"),
    )
    for statement in (
        "ALTER TABLE items ADD COLUMN dismissed_at REAL",
        "INSERT INTO item_counts (state, n) VALUES ('dismissed', 0)",
        "DROP TRIGGER items_count_insert",
        "DROP TRIGGER items_count_delete",
        "DROP TRIGGER items_count_update",
        *(
            f"CREATE TRIGGER {name} {when} BEGIN UPDATE item_counts SET {change}; END"  # noqa: S608 -- constants above
            for name, when, change in triggers
        ),
        "CREATE TRIGGER items_count_update AFTER UPDATE OF state, dismissed_at ON items"  # noqa: S608 -- constants above
        " WHEN " + old + " != " + new + " BEGIN"
        " UPDATE item_counts SET n = n - 1 WHERE state = " + old + ";"
        " UPDATE item_counts SET n = n + 1 WHERE state = " + new + "; END",
    ):
        db.execute(statement)


def _v8_arrivals_index(db: sqlite3.Connection) -> None:
    """Items by the instant they were spooled: the pacing policy reads the last two weeks'
    arrivals (`Spool.arrivals`) without scanning a large spool."""
    db.execute("CREATE INDEX IF NOT EXISTS items_created ON items (created_at)")


Migration = Callable[[sqlite3.Connection], None]

# MIGRATIONS[n] upgrades schema version n to n + 1. Append only.
MIGRATIONS: tuple[Migration, ...] = (
    _v1_initial,
    _v2_explicit_states,
    _v3_paths_as_bytes,
    _v4_poison_pill,
    _v5_multipart_uploads,
    _v6_scale,
    _v7_dismissed,
    _v8_arrivals_index,
)
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(db: sqlite3.Connection) -> int:
    """The version the file is at: its ``meta.schema_version``, 0 for a new file."""
    has_meta = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
    ).fetchone()
    if not has_meta:
        return 0
    row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else 0


def migrate(db: sqlite3.Connection) -> int:
    """Bring the database to `SCHEMA_VERSION`, one step per transaction; the version it was at.

    `db` must be in autocommit mode (``isolation_level=None``). A file from a newer exportsync is
    refused rather than guessed at.
    """
    start = schema_version(db)
    if start > SCHEMA_VERSION:
        raise SpoolError(
            f"the spool is at schema version {start}, newer than this exportsync knows"
            f" ({SCHEMA_VERSION}); upgrade exportsync or use another state directory"
        )
    for version in range(start, SCHEMA_VERSION):
        db.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have migrated between our read and our lock.
            if schema_version(db) != version:
                db.execute("ROLLBACK")
                continue
            MIGRATIONS[version](db)
            db.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(version + 1),),
            )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    return start


def _script(db: sqlite3.Connection, sql: str) -> None:
    # executescript() would COMMIT the surrounding transaction; run the statements one by one.
    for statement in sql.split(";"):
        if statement.strip():
            db.execute(statement)
