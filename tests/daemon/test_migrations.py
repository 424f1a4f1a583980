"""Spool migrations: a spool written by the first schema opens, upgraded in place, every row intact.

The v1 DDL and rows below are what exportsync wrote before the schema had migrations (copied from
that release, sentinels included), so the test holds however the current schema moves on.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from exportsync.errors import SpoolError
from exportsync.migrations import MIGRATIONS, SCHEMA_VERSION, migrate, schema_version
from exportsync.spool import STATES, Spool

V1_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id              INTEGER PRIMARY KEY,
    path            TEXT    NOT NULL,
    kind            TEXT    NOT NULL CHECK (kind IN ('csv', 'session')),
    size            INTEGER NOT NULL,
    mtime_ns        INTEGER NOT NULL,
    sha256          TEXT    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('pending', 'sending', 'delivered', 'failed')),
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
INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', '1');
"""


def _v1(item_id: int, path: str, sha256: str, state: str, **fields: object) -> dict[str, object]:
    """One items row as v1 wrote it; the fields not given take v1's defaults."""
    row: dict[str, object] = {
        "id": item_id,
        "path": path,
        "kind": "session" if path.endswith(".json") else "csv",
        "size": 10 * item_id,
        "mtime_ns": 111 * item_id,
        "sha256": sha256,
        "state": state,
        "attempts": 0,
        "next_attempt_at": 0.0,
        "last_error": None,
        "parts_done": 0,
        "part_errors": None,
        "remote_key": None,
        "created_at": float(item_id),
        "updated_at": float(item_id) + 0.5,
        "delivered_at": None,
    }
    row.update(fields)
    return row


V1_ROWS = [
    _v1(1, "/x/new.csv", "a" * 64, "pending"),
    _v1(2, "/x/busy.csv", "b" * 64, "sending", attempts=1, next_attempt_at=5.0),
    _v1(3, "/x/done.csv", "c" * 64, "delivered", remote_key="uploads/u/c/d.csv", delivered_at=4.0),
    _v1(4, "/x/bad.session.json", "d" * 64, "failed", attempts=2, last_error="refused: x",
        parts_done=3, part_errors='["#2: too_deep"]'),
    # The file vanished before delivery: v1 forgot its mtime (-1).
    _v1(5, "/x/gone.csv", "e" * 64, "failed", mtime_ns=-1, attempts=1, last_error="deleted"),
    # Refused before it was read: v1's sentinel hash, size and mtime 0.
    _v1(6, "/x/link.csv", "-", "failed", size=0, mtime_ns=0, last_error="symlink"),
    _v1(7, "/x/half.session.json", "f" * 64, "pending", next_attempt_at=9.5, parts_done=100),
    # A vanished version put back by `exportsync retry`: v1 left its mtime at -1.
    _v1(8, "/x/retried.csv", "9" * 64, "pending", mtime_ns=-1),
]  # fmt: skip
COLUMNS = list(V1_ROWS[0])


def _write_v1(path: Path) -> None:
    db = sqlite3.connect(path)
    with db:
        db.executescript(V1_SCHEMA)
        db.executemany(
            f"INSERT INTO items ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",  # noqa: S608 -- fixed column list
            [tuple(row[c] for c in COLUMNS) for row in V1_ROWS],
        )
        db.executemany(
            "INSERT INTO quota_periods VALUES (?, ?, ?)", [(0.0, 7, 0), (86_400.0, 10, 1)]
        )
        db.execute("INSERT INTO meta VALUES ('last_request_at', '86500.25')")
    db.close()


@pytest.fixture
def v1_spool(tmp_path: Path) -> Path:
    path = Spool.path_in(tmp_path)
    _write_v1(path)
    return path


def test_a_v1_spool_is_upgraded_in_place_and_every_row_keeps_its_meaning(v1_spool: Path) -> None:
    with Spool(v1_spool) as spool:
        items = {item.id: item for item in spool.items()}
        assert sorted(items) == [row["id"] for row in V1_ROWS]
        unchanged = [c for c in COLUMNS if c not in ("path", "sha256", "mtime_ns", "part_errors")]
        for row in V1_ROWS:
            item = items[int(str(row["id"]))]
            assert {c: getattr(item, c) for c in unchanged} == {c: row[c] for c in unchanged}
            assert str(item.path) == row["path"]
        assert items[4].part_errors == ("#2: too_deep",)
        assert (items[1].mtime_ns, items[1].sha256) == (111, "a" * 64)

        # The sentinels are columns now.
        assert (items[6].refused, items[6].sha256, items[6].vanished) == (True, None, False)
        assert [i for i, item in items.items() if item.refused] == [6]
        assert [i for i, item in items.items() if item.vanished] == [5, 8]
        assert items[5].sha256 == "e" * 64

        # ...and behave as the sentinels did.
        assert spool.known(Path("/x/new.csv"), 10, 111)
        assert not spool.known(Path("/x/gone.csv"), 50, -1)
        assert not spool.known(Path("/x/gone.csv"), 50, 0)
        assert spool.retry([4, 6], now=10.0) == [4]  # a refused item is never retried
        again = spool.record(
            Path("/x/gone.csv"), "csv", size=50, mtime_ns=5, sha256="e" * 64, now=11.0
        )
        assert (again.created, again.requeued, again.item.vanished) == (False, True, False)
        assert not spool.record_rejected(Path("/x/link.csv"), "csv", "symlink", now=12.0).created

        assert spool.quota_period(0.0) == (7, False)
        assert spool.quota_period(86_400.0) == (10, True)
        assert spool.last_request_at() == 86_500.25


def test_the_upgrade_is_recorded_and_happens_once(v1_spool: Path) -> None:
    Spool(v1_spool).close()
    db = sqlite3.connect(v1_spool, isolation_level=None)
    try:
        assert schema_version(db) == SCHEMA_VERSION == len(MIGRATIONS)
        assert migrate(db) == SCHEMA_VERSION  # nothing left to do
        assert db.execute("SELECT COUNT(*) FROM items").fetchone()[0] == len(V1_ROWS)
    finally:
        db.close()


def test_a_new_spool_starts_at_the_current_version(tmp_path: Path) -> None:
    with Spool.open(tmp_path) as spool:
        link = spool.record_rejected(Path("/x/l.csv"), "csv", "symlink", now=1.0)
        assert link.item.refused
    db = sqlite3.connect(Spool.path_in(tmp_path), isolation_level=None)
    try:
        assert schema_version(db) == SCHEMA_VERSION
    finally:
        db.close()


def test_a_spool_from_a_newer_exportsync_is_refused(tmp_path: Path) -> None:
    path = Spool.path_in(tmp_path)
    _write_v1(path)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    db.close()
    with pytest.raises(SpoolError, match="schema version 999"):
        Spool(path)


def test_a_failing_step_leaves_the_file_at_its_old_version(
    v1_spool: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(db: sqlite3.Connection) -> None:
        db.execute("DROP TABLE items")
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr("exportsync.migrations.MIGRATIONS", (MIGRATIONS[0], broken))
    db = sqlite3.connect(v1_spool, isolation_level=None)
    try:
        with pytest.raises(sqlite3.OperationalError):
            migrate(db)
        assert schema_version(db) == 1
        assert db.execute("SELECT COUNT(*) FROM items").fetchone()[0] == len(V1_ROWS)
    finally:
        db.close()


def test_a_v2_spool_gains_the_multipart_progress_tables(v1_spool: Path) -> None:
    db = sqlite3.connect(v1_spool, isolation_level=None)
    try:
        for version in (1,):  # the v1 file, upgraded to v2 as the release before did
            db.execute("BEGIN IMMEDIATE")
            MIGRATIONS[version](db)
            db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (version + 1,))
            db.execute("COMMIT")
        assert schema_version(db) == 2
    finally:
        db.close()
    with Spool(v1_spool) as spool:
        assert spool.upload_get(1) is None
        plan = {"upload_id": "u1", "sha256": "a" * 64, "parts": []}
        assert spool.upload_save(1, plan) == {}
        spool.upload_part_done(1, 1, '"etag-1"')
        assert spool.upload_save(1, {**plan, "expires_at": 5.0}) == {1: '"etag-1"'}  # renewed
        assert spool.upload_save(1, {**plan, "upload_id": "u2"}) == {}  # a new upload starts over
        assert spool.upload_get(1) == ({**plan, "upload_id": "u2"}, {})
        spool.forget(1)
        assert spool.upload_get(1) is None  # the item's upload goes with it
    db = sqlite3.connect(v1_spool, isolation_level=None)
    try:
        assert schema_version(db) == SCHEMA_VERSION == 8
    finally:
        db.close()


def test_paths_become_the_kernels_bytes_and_no_item_has_crashed(v1_spool: Path) -> None:
    """Migrations 3 and 4: text paths are cast to the same bytes; the quarantine columns start
    empty."""
    with Spool(v1_spool) as spool:
        assert all(item.crashes == 0 for item in spool.items())
        assert spool.known(Path("/x/new.csv"), 10, 111)
    db = sqlite3.connect(v1_spool)
    try:
        assert {row[0] for row in db.execute("SELECT typeof(path) FROM items")} == {"blob"}
        assert (
            db.execute("SELECT COUNT(*) FROM items WHERE in_hand_since IS NOT NULL").fetchone()[0]
            == 0
        )
    finally:
        db.close()


def test_a_v5_spool_gains_inodes_and_counts_that_match_its_rows(tmp_path: Path) -> None:
    """The scale step (6) on a spool stopped at version 5: per-state counts start from the rows
    already there, and rows without an inode still spare their files a hash."""
    path = Spool.path_in(tmp_path)
    _write_v1(path)
    first_five = MIGRATIONS[:5]
    db = sqlite3.connect(path, isolation_level=None)
    try:
        for version in range(1, len(first_five)):
            db.execute("BEGIN IMMEDIATE")
            first_five[version](db)
            db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (version + 1,))
            db.execute("COMMIT")
        assert schema_version(db) == 5
    finally:
        db.close()
    with Spool(path) as spool:
        states = [str(row["state"]) for row in V1_ROWS]
        assert spool.counts() == {s: states.count(s) for s in STATES}
        assert spool.known(Path("/x/new.csv"), 10, 111, inode=987654)
        assert (b"/x/done.csv", 30, 333, 0) in spool.versions()
        spool.mark_delivered(1, now=20.0)
        assert spool.counts()["delivered"] == states.count("delivered") + 1
