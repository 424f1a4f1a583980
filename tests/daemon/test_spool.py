"""The spool on a real SQLite file: versions, transitions, crash recovery, quota rows."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from exportsync.errors import SpoolError
from exportsync.spool import Spool


def _record(spool: Spool, path: str, sha: str, *, size: int = 3, now: float = 100.0) -> int:
    result = spool.record(Path(path), "csv", size=size, mtime_ns=1, sha256=sha, now=now)
    return result.item.id


def test_same_content_is_one_item_and_a_change_is_a_new_version(tmp_path: Path) -> None:
    with Spool.open(tmp_path) as spool:
        first = spool.record(Path("/x/a.csv"), "csv", size=3, mtime_ns=1, sha256="aa", now=1.0)
        again = spool.record(Path("/x/a.csv"), "csv", size=3, mtime_ns=2, sha256="aa", now=2.0)
        changed = spool.record(Path("/x/a.csv"), "csv", size=4, mtime_ns=3, sha256="bb", now=3.0)
        assert first.created
        assert not again.created
        assert changed.created
        assert again.item.id == first.item.id != changed.item.id
        # The re-save's mtime is remembered, so a start-up scan need not hash it again.
        assert spool.known(Path("/x/a.csv"), 3, 2)
        assert spool.counts()["pending"] == 2


def test_state_survives_reopening_the_file(tmp_path: Path) -> None:
    with Spool.open(tmp_path) as spool:
        item_id = _record(spool, "/x/a.csv", "aa")
        spool.mark_delivered(item_id, now=5.0, remote_key="uploads/u/aa/a.csv")
    with Spool.open(tmp_path) as spool:
        item = spool.get(item_id)
        assert item is not None
        assert item.state == "delivered"
        assert item.remote_key == "uploads/u/aa/a.csv"


def test_database_is_wal_with_full_sync(tmp_path: Path) -> None:
    with Spool.open(tmp_path):
        db = sqlite3.connect(tmp_path / "spool.sqlite3")
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        db.close()
    assert (tmp_path / "spool.sqlite3").stat().st_mode & 0o077 == 0


def test_items_left_sending_by_a_crash_return_to_pending(tmp_path: Path) -> None:
    spool = Spool.open(tmp_path)
    a = _record(spool, "/x/a.csv", "aa")
    b = _record(spool, "/x/b.csv", "bb")
    spool.mark_sending([a, b], now=10.0)
    spool.mark_delivered(b, now=11.0)
    # No close(): the process "died" here.
    with Spool.open(tmp_path) as reopened:
        assert reopened.recover(now=20.0) == 1
        assert [i.id for i in reopened.due(now=20.0)] == [a]
        assert reopened.counts() == {"pending": 1, "sending": 0, "delivered": 1, "failed": 0}
    spool.close()


def test_due_respects_next_attempt_and_orders_oldest_first(tmp_path: Path) -> None:
    with Spool.open(tmp_path) as spool:
        a = _record(spool, "/x/a.csv", "aa")
        b = _record(spool, "/x/b.csv", "bb")
        c = _record(spool, "/x/c.csv", "cc")
        spool.reschedule(a, at=50.0, error="HTTP 503", now=10.0)
        assert [i.id for i in spool.due(now=20.0)] == [b, c]
        assert spool.next_due_at() == 0.0
        assert [i.id for i in spool.due(now=60.0)] == [b, c, a]
        item = spool.get(a)
        assert item is not None
        assert (item.attempts, item.last_error) == (1, "HTTP 503")


def test_release_sending_leaves_settled_items_alone(tmp_path: Path) -> None:
    with Spool.open(tmp_path) as spool:
        a = _record(spool, "/x/a.csv", "aa")
        b = _record(spool, "/x/b.csv", "bb")
        spool.mark_sending([a, b], now=1.0)
        spool.mark_delivered(a, now=2.0)
        spool.release_sending([a, b], at=9.0, error="internal error", now=3.0)
        assert spool.counts() == {"pending": 1, "sending": 0, "delivered": 1, "failed": 0}


def test_retry_moves_failed_items_but_not_refused_ones(tmp_path: Path) -> None:
    with Spool.open(tmp_path) as spool:
        a = _record(spool, "/x/a.csv", "aa")
        spool.mark_failed(a, "refused by the API: bad", now=2.0)
        link = spool.record_rejected(Path("/x/l.csv"), "csv", "symlink", now=2.0).item
        assert (link.refused, link.sha256) == (True, None)
        assert link.state == "failed"
        assert spool.failed_ids() == [a, link.id]
        assert spool.retry([a, link.id], now=3.0) == [a]
        item = spool.get(a)
        assert item is not None
        assert (item.state, item.attempts, item.next_attempt_at) == ("pending", 0, 0.0)


def test_replace_version_merges_into_an_already_spooled_version(tmp_path: Path) -> None:
    with Spool.open(tmp_path) as spool:
        old = _record(spool, "/x/a.csv", "aa")
        assert spool.replace_version(old, size=9, mtime_ns=5, sha256="bb", at=7.0, now=5.0)
        item = spool.get(old)
        assert item is not None
        assert (item.sha256, item.size, item.next_attempt_at) == ("bb", 9, 7.0)
        other = _record(spool, "/x/b.csv", "cc")
        _record(spool, "/x/b.csv", "dd")
        assert not spool.replace_version(other, size=1, mtime_ns=1, sha256="dd", at=0, now=5.0)
        assert spool.get(other) is None


def test_quota_rows_count_per_period(tmp_path: Path) -> None:
    with Spool.open(tmp_path) as spool:
        assert spool.quota_period(0.0) == (0, False)
        assert spool.quota_spend(0.0, at=10.0) == 1
        assert spool.quota_spend(0.0, at=11.0) == 2
        assert spool.quota_spend(86_400.0, at=86_401.0) == 1
        spool.quota_mark_exhausted(0.0)
        assert spool.quota_period(0.0) == (2, True)
        assert spool.last_request_at() == 86_401.0


def test_an_unusable_state_dir_is_a_spool_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(SpoolError, match="cannot open the spool"):
        Spool.open(blocker / "state")


def test_a_vanished_version_saved_again_is_pending_again(tmp_path: Path) -> None:
    with Spool.open(tmp_path) as spool:
        item_id = _record(spool, "/x/a.csv", "aa")
        spool.mark_failed(
            item_id, "file was deleted before it could be delivered", now=2.0, vanished=True
        )
        again = spool.record(Path("/x/a.csv"), "csv", size=3, mtime_ns=9, sha256="aa", now=3.0)
        assert (again.created, again.requeued) == (False, True)
        assert again.item.id == item_id
        assert (again.item.state, again.item.attempts, again.item.last_error) == (
            "pending",
            0,
            None,
        )
        delivered = _record(spool, "/x/b.csv", "bb")
        spool.mark_delivered(delivered, now=4.0)
        same = spool.record(Path("/x/b.csv"), "csv", size=3, mtime_ns=9, sha256="bb", now=5.0)
        assert (same.created, same.requeued, same.item.state) == (False, False, "delivered")


def test_a_vanished_failure_forgets_its_mtime(tmp_path: Path) -> None:
    with Spool.open(tmp_path) as spool:
        item_id = _record(spool, "/x/a.csv", "aa")
        spool.mark_failed(item_id, "deleted", now=2.0, vanished=True)
        assert not spool.known(Path("/x/a.csv"), 3, 1)
        other = _record(spool, "/x/b.csv", "bb")
        spool.mark_failed(other, "refused by the API", now=2.0)
        assert spool.known(Path("/x/b.csv"), 3, 1)


def test_a_refused_version_saved_again_stays_failed(tmp_path: Path) -> None:
    """The same bytes would meet the same refusal: no request is spent on them unasked."""
    with Spool.open(tmp_path) as spool:
        item_id = _record(spool, "/x/a.csv", "aa")
        spool.mark_failed(item_id, "refused by the API: user_id mismatch", now=2.0)
        again = spool.record(Path("/x/a.csv"), "csv", size=3, mtime_ns=9, sha256="aa", now=3.0)
        assert (again.created, again.requeued, again.item.state) == (False, False, "failed")
        assert spool.known(Path("/x/a.csv"), 3, 9)  # and the next scan does not hash it again


def test_a_full_disk_mid_write_is_a_spool_error_and_the_spool_works_once_there_is_room(
    tmp_path: Path,
) -> None:
    """SQLite rolls a transaction back itself on SQLITE_FULL; the spool's own ROLLBACK then
    raised "cannot rollback" as a bare OperationalError, which the daemon took for a bad file
    (and never offered the file again) instead of a spool write to retry."""
    with Spool.open(tmp_path) as spool:
        pages = spool._db.execute("PRAGMA page_count").fetchone()[0]
        spool._db.execute(f"PRAGMA max_page_count = {pages + 1}")  # a disk that is full
        errors: list[Exception] = []
        for n in range(10_000):
            try:
                _record(spool, f"/x/{n}.csv", f"{n:064x}")
            except Exception as exc:  # which class it is, is the point
                errors.append(exc)
                break
        assert len(errors) == 1
        assert isinstance(errors[0], SpoolError), repr(errors[0])
        assert "full" in str(errors[0])
        spool._db.execute("PRAGMA max_page_count = 1073741823")  # room again
        _record(spool, "/x/after.csv", "ff" * 32)
        assert spool.known(Path("/x/after.csv"), 3, 1)
