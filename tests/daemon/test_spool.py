"""The spool on a real SQLite file: versions, transitions, crash recovery, quota rows."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from exportsync.errors import KEY_REFUSED_MARK, REDIRECT_MARK, SpoolCorrupt, SpoolError
from exportsync.spool import NewVersion, Spool


def _record(spool: Spool, path: str, sha: str, *, size: int = 3, now: float = 100.0) -> int:
    result = spool.record(Path(path), "csv", size=size, mtime_ns=1, sha256=sha, now=now)
    return result.item.id


def test_same_content_is_one_item_and_a_change_is_a_new_version(tmp_path: Path) -> None:
    with Spool.open(tmp_path) as spool:
        first = spool.record(Path("/x/a.csv"), "csv", size=3, mtime_ns=1, sha256="aa", now=1.0)
        again = spool.record(Path("/x/a.csv"), "csv", size=3, mtime_ns=2, sha256="aa", now=2.0)
        # The re-save's mtime is remembered, so a start-up scan need not hash it again.
        assert spool.known(Path("/x/a.csv"), 3, 2)
        changed = spool.record(Path("/x/a.csv"), "csv", size=4, mtime_ns=3, sha256="bb", now=3.0)
        assert first.created
        assert not again.created
        assert changed.created
        assert again.item.id == first.item.id != changed.item.id
        # The new version supersedes the pending old one (its content is no longer in the file).
        assert [i.id for i in spool.items()] == [changed.item.id]
        assert spool.counts()["pending"] == 1


def test_recorded_items_are_the_rows_as_stored(tmp_path: Path) -> None:
    """What record_many answers for a new version, a known one and a re-saved one is the row
    the spool holds, field for field (a new row's item is not read back from the table)."""
    with Spool.open(tmp_path) as spool:
        first = spool.record_many(
            [
                NewVersion(Path("/x/a.csv"), "csv", 3, 7, "aa", 11),
                NewVersion(Path("/x/s.session.json"), "session", 5, 8, "bb", 12),
            ],
            now=4.5,
        )
        for result in first:
            assert result.item == spool.get(result.item.id)
        again = spool.record_many([NewVersion(Path("/x/a.csv"), "csv", 3, 9, "aa", 13)], now=6.0)
        assert again[0].item == spool.get(first[0].item.id)
        assert (again[0].item.mtime_ns, again[0].item.inode) == (9, 13)
        assert [r.created for r in (*first, *again)] == [True, True, False]
        assert first[0].item.path == Path("/x/a.csv")
        assert first[1].item.kind == "session"


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
    with Spool.open(tmp_path) as spool:
        # Read back from the spool's own connection: synchronous is per connection, so a
        # second connection would report its own default, not what the spool commits with.
        assert spool.durability() == ("wal", 2)  # 2 is FULL
        db = sqlite3.connect(tmp_path / "spool.sqlite3")
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        db.close()
    assert (tmp_path / "spool.sqlite3").stat().st_mode & 0o077 == 0


def test_the_quarantines_unsynced_commits_leave_the_spool_at_full_sync(tmp_path: Path) -> None:
    """The in-hand marks skip one fsync each; every commit after them is fsynced again."""
    with Spool.open(tmp_path) as spool:
        item_id = _record(spool, "/x/a.csv", "aa")
        spool.hold(item_id, now=1.0)
        assert spool.durability() == ("wal", 2)  # 2 is FULL
        spool.release_hold()
        assert spool.durability() == ("wal", 2)


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


def test_a_path_that_is_not_utf8_is_kept_byte_for_byte(tmp_path: Path) -> None:
    raw = Path(os.fsdecode(b"/x/r\xff\xfe.csv"))  # lone surrogates: SQLite text refuses them
    with Spool.open(tmp_path) as spool:
        item = spool.record(raw, "csv", size=3, mtime_ns=1, sha256="aa", now=1.0).item
        rejected = spool.record_rejected(raw, "csv", "fifo", now=1.0).item
        assert spool.known(raw, 3, 1)
    with Spool.open(tmp_path) as spool:
        assert [i.path for i in spool.items()] == [raw, raw]
        assert os.fsencode(spool.items()[0].path) == b"/x/r\xff\xfe.csv"
        assert {item.id, rejected.id} == {i.id for i in spool.items()}


def test_the_item_in_hand_when_the_daemon_died_twice_is_failed(tmp_path: Path) -> None:
    with Spool.open(tmp_path) as spool:
        poison = _record(spool, "/x/poison.csv", "aa")
        other = _record(spool, "/x/other.csv", "bb")
        spool.hold(other, now=1.0)
        spool.hold(poison, now=2.0)  # one item in hand at a time: other's mark is gone
    for run in (1, 2):
        with Spool.open(tmp_path) as spool:
            [counted] = spool.count_crashes(now=10.0)
            assert counted.id == poison
            assert counted.crashes == run
            assert counted.state == ("pending" if run == 1 else "failed")
            if run == 1:
                spool.hold(poison, now=11.0)  # read again, and the daemon dies again
    with Spool.open(tmp_path) as spool:
        assert spool.count_crashes(now=20.0) == []
        item = spool.get(poison)
        assert item is not None
        assert item.state == "failed"
        assert item.last_error == "stopped the daemon 2 times; not touched again"
        assert spool.get(other).state == "pending"  # type: ignore[union-attr]
        spool.hold(other, now=21.0)
        spool.release_hold()
        assert spool.count_crashes(now=22.0) == []
        assert spool.retry([poison], now=23.0) == [poison]
        assert spool.get(poison).crashes == 0  # type: ignore[union-attr]


def test_a_corrupt_spool_is_moved_aside_and_a_fresh_one_starts(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite3"
    path.write_bytes(b"this is not a database\n" * 100)
    with pytest.raises(SpoolCorrupt):
        Spool.open(tmp_path)
    spool, aside = Spool.open_or_replace(tmp_path, now=1_800_000_000.0)
    with spool:
        assert aside is not None
        assert aside.name == "spool.sqlite3.corrupt-20270115T080000Z"
        assert aside.read_bytes() == b"this is not a database\n" * 100
        assert spool.counts() == {"pending": 0, "sending": 0, "delivered": 0, "failed": 0}
        _record(spool, "/x/a.csv", "aa")
    spool, aside = Spool.open_or_replace(tmp_path, now=1_800_000_001.0)
    with spool:
        assert aside is None  # a healthy spool is kept
        assert spool.counts()["pending"] == 1


def test_state_files_are_private_and_a_looser_state_dir_is_tightened(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    state.chmod(0o755)
    old = os.umask(0o022)
    try:
        with Spool.open(state) as spool:
            _record(spool, "/x/a.csv", "aa")
            assert {p.name for p in state.iterdir()} >= {
                "spool.sqlite3",
                "spool.sqlite3-wal",
                "spool.sqlite3-shm",
            }
            for name in ("spool.sqlite3", "spool.sqlite3-wal", "spool.sqlite3-shm"):
                assert (state / name).stat().st_mode & 0o777 == 0o600, name
        assert state.stat().st_mode & 0o777 == 0o700
        # Left readable by an older version: tightened at the next start.
        state.chmod(0o755)
        (state / "spool.sqlite3").chmod(0o644)
        with Spool.open(state):
            assert (state / "spool.sqlite3").stat().st_mode & 0o777 == 0o600
            assert (state / "spool.sqlite3-wal").stat().st_mode & 0o777 == 0o600
        assert state.stat().st_mode & 0o777 == 0o700
    finally:
        os.umask(old)


def test_only_crashes_in_a_row_count(tmp_path: Path) -> None:
    """A kill that happened to land on an item once is forgotten once the item comes through."""
    with Spool.open(tmp_path) as spool:
        item_id = _record(spool, "/x/a.csv", "aa")
        other = _record(spool, "/x/b.csv", "bb")
        spool.hold(item_id, now=1.0)
    with Spool.open(tmp_path) as spool:
        assert [i.crashes for i in spool.count_crashes(now=2.0)] == [1]
        spool.hold(item_id, now=3.0)
        spool.hold(other, now=4.0)  # a.csv came through
        assert spool.get(item_id).crashes == 0  # type: ignore[union-attr]
        spool.release_hold()
    with Spool.open(tmp_path) as spool:
        assert spool.count_crashes(now=5.0) == []
        spool.hold(item_id, now=6.0)
    with Spool.open(tmp_path) as spool:
        [again] = spool.count_crashes(now=7.0)
        assert (again.crashes, again.state) == (1, "pending")


def test_counts_follow_every_transition_without_counting_rows(tmp_path: Path) -> None:
    with Spool.open(tmp_path) as spool:
        a = _record(spool, "/x/a.csv", "aa")
        b = _record(spool, "/x/b.csv", "bb")
        spool.mark_sending([a, b], now=1.0)
        spool.mark_delivered(a, now=2.0)
        spool.mark_failed(b, "refused", now=2.0)
        spool.retry([b], now=3.0)
        c = _record(spool, "/x/c.csv", "cc")
        spool.forget(c)
        expected = {"pending": 1, "sending": 0, "delivered": 1, "failed": 0}
        assert spool.counts() == expected
        db = sqlite3.connect(tmp_path / "spool.sqlite3")
        real = dict(db.execute("SELECT state, COUNT(*) FROM items GROUP BY state").fetchall())
        db.close()
        assert {state: real.get(state, 0) for state in expected} == expected


def _delivered(spool: Spool, path: Path, sha: str, *, at: float, key: tuple[int, int, int]) -> int:
    size, mtime_ns, inode = key
    result = spool.record(
        path, "csv", size=size, mtime_ns=mtime_ns, sha256=sha, now=at, inode=inode
    )
    spool.mark_sending([result.item.id], now=at)
    spool.mark_delivered(result.item.id, now=at)
    return result.item.id


def test_prune_drops_old_delivered_rows_but_keeps_what_dedupe_needs(tmp_path: Path) -> None:
    folder: dict[Path, tuple[int, int, int]] = {}
    with Spool.open(tmp_path) as spool:
        gone = _delivered(spool, Path("/x/gone.csv"), "g1", at=10.0, key=(1, 1, 1))
        here = _delivered(spool, Path("/x/here.csv"), "h1", at=10.0, key=(2, 2, 2))
        folder[Path("/x/here.csv")] = (2, 2, 2)
        changed = _delivered(spool, Path("/x/changed.csv"), "c1", at=10.0, key=(3, 3, 3))
        folder[Path("/x/changed.csv")] = (30, 31, 3)  # rewritten since: the row is history
        recent = _delivered(spool, Path("/x/recent.csv"), "r1", at=500.0, key=(4, 4, 4))
        pending = _record(spool, "/x/pending.csv", "p1", now=10.0)
        dropped = spool.prune_delivered(100.0, current=folder.get)
        assert dropped == 2
        assert spool.get(gone) is None
        assert spool.get(changed) is None
        assert spool.get(here) is not None  # still in the folder as delivered: not sent again
        assert spool.get(recent) is not None
        assert spool.get(pending) is not None
        assert spool.counts()["delivered"] == 2


def _old_delivered(spool: Spool, count: int, *, at: float) -> None:
    """`count` delivered rows, delivered at `at`, written in two transactions."""
    results = spool.record_many(
        [
            NewVersion(Path(f"/x/old-{i:05d}.csv"), "csv", 1, 1, f"{i:064x}", 1)
            for i in range(count)
        ],
        now=at,
    )
    spool.mark_delivered_many([(r.item.id, None) for r in results], now=at)


def test_prune_goes_a_bounded_chunk_per_transaction(tmp_path: Path) -> None:
    """Each call deletes at most `limit` rows in exactly one transaction and says where the
    next one starts, so the lock is never held for a whole large pass."""
    with Spool.open(tmp_path) as spool:
        _old_delivered(spool, 2500, at=10.0)
        sizes: list[int] = []
        after: int | None = 0
        while after is not None:
            commits = spool.commits
            dropped, after = spool.prune_chunk(
                100.0, current=lambda _p: None, after=after, limit=1000
            )
            assert spool.commits - commits == (1 if dropped else 0)
            sizes.append(dropped)
        assert sizes == [1000, 1000, 500]
        assert spool.counts()["delivered"] == 0
        while not spool.reclaim(pages=8):  # the freed pages go back a slice at a time
            pass


def test_each_reclaim_slice_checkpoints_its_own_pages(tmp_path: Path) -> None:
    """A slice of freed pages goes to the database file with its own checkpoint, so the last
    slice's WAL truncation has no backlog of a thousand pages to write (that one piece held
    delivery 84 ms over a million pruned rows)."""
    with Spool.open(tmp_path) as spool:
        _old_delivered(spool, 2500, at=10.0)
        after: int | None = 0
        while after is not None:
            _, after = spool.prune_chunk(100.0, current=lambda _p: None, after=after)
        statements: list[str] = []
        spool._db.set_trace_callback(statements.append)
        slices = 0
        while True:
            statements.clear()
            done = spool.reclaim(pages=8)
            slices += 1
            checkpoints = [s for s in statements if "wal_checkpoint" in s]
            if done:
                assert checkpoints == ["PRAGMA wal_checkpoint(TRUNCATE)"]
                break
            assert checkpoints == ["PRAGMA wal_checkpoint(PASSIVE)"]
        spool._db.set_trace_callback(None)
        assert slices > 1


def test_pruning_gives_the_space_back_to_the_disk(tmp_path: Path) -> None:
    with Spool.open(tmp_path) as spool:
        for i in range(300):
            _delivered(spool, Path(f"/x/{i:04d}-{'n' * 200}.csv"), f"s{i}", at=1.0, key=(1, 1, 1))
    with sqlite3.connect(tmp_path / "spool.sqlite3") as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    full = (tmp_path / "spool.sqlite3").stat().st_size
    with Spool.open(tmp_path) as spool:
        assert spool.prune_delivered(100.0, current=lambda _p: None) == 300
    assert (tmp_path / "spool.sqlite3").stat().st_size < full / 2


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


def test_pull_back_makes_attempts_beyond_the_horizon_due(tmp_path: Path) -> None:
    with Spool.open(tmp_path) as spool:
        waiting = _record(spool, "/x/a.csv", "aa")
        stranded = _record(spool, "/x/b.csv", "bb")
        spool.reschedule(waiting, at=100.0 + 1800, error="503", now=100.0)
        spool.reschedule(stranded, at=100.0 + 3 * 3600, error="503", now=100.0)
        assert spool.pull_back(100.0 + 3600, now=100.0) == 1
        assert [i.id for i in spool.due(100.0)] == [stranded]
        assert spool.pull_back(100.0 + 3600, now=100.0) == 0


def test_a_new_api_url_releases_only_the_holds_a_redirect_caused(tmp_path: Path) -> None:
    """The spool remembers the api.url in use; a different one lets items held after a redirect
    go at once, and leaves other waits (a 5xx backoff) alone."""
    redirected = f"the API answered 308, {REDIRECT_MARK} https://elsewhere/; check api.url"
    with Spool.open(tmp_path) as spool:
        held = _record(spool, "/x/a.csv", "aa")
        backoff = _record(spool, "/x/b.csv", "bb")
        spool.reschedule(held, at=400.0, error=redirected, now=100.0, count_attempt=False)
        spool.reschedule(backoff, at=400.0, error="HTTP 503", now=100.0)
        assert spool.note_api_url("https://old/prod", now=100.0) == 0  # nothing remembered yet
        assert spool.note_api_url("https://old/prod", now=110.0) == 0  # the same address
    with Spool.open(tmp_path) as spool:  # remembered across a restart
        assert spool.note_api_url("https://new/prod", now=120.0) == 1
        assert [i.id for i in spool.due(120.0)] == [held]
        assert spool.next_due_at() == 120.0


def test_a_changed_key_releases_only_the_holds_a_refused_key_caused(tmp_path: Path) -> None:
    with Spool.open(tmp_path) as spool:
        held = _record(spool, "/x/a.csv", "aa")
        backoff = _record(spool, "/x/b.csv", "bb")
        refused = f"{KEY_REFUSED_MARK} (Forbidden)"
        spool.reschedule(held, at=400.0, error=refused, now=100.0, count_attempt=False)
        spool.reschedule(backoff, at=400.0, error="HTTP 503", now=100.0)
        assert spool.release_key_refused(now=120.0) == 1
        assert [i.id for i in spool.due(120.0)] == [held]


def test_arrivals_are_when_items_were_spooled_whatever_became_of_them(tmp_path: Path) -> None:
    with Spool.open(tmp_path) as spool:
        assert spool.first_arrival() is None
        a = _record(spool, "/x/a.csv", "aa", now=100.0)
        b = _record(spool, "/x/b.csv", "bb", now=200.0)
        _record(spool, "/x/c.csv", "cc", now=300.0)
        spool.mark_delivered(a, now=150.0)
        spool.mark_failed(b, "refused", now=250.0)
        assert spool.first_arrival() == 100.0
        assert spool.arrivals(100.0, 300.0) == [100.0, 200.0]
        assert spool.arrivals(0.0, float("inf")) == [100.0, 200.0, 300.0]
        # The backlog knows how long its items have waited, in sum.
        backlog = spool.backlog(1000.0, inline_max_bytes=1000, max_entries=10)
        assert backlog.held(400.0) == 100.0


def test_known_many_answers_as_known_does_for_each_version(tmp_path: Path) -> None:
    """The intake asks once per batch; each answer is the one `known` gives, over more paths than
    one query binds (inode 0, from before inodes were kept, matches any inode)."""
    with Spool.open(tmp_path) as spool:
        spool.record(Path("/x/a.csv"), "csv", size=3, mtime_ns=1, sha256="aa", now=1.0, inode=7)
        spool.record(Path("/x/old.csv"), "csv", size=3, mtime_ns=1, sha256="bb", now=1.0)
        gone = _record(spool, "/x/gone.csv", "cc")
        spool.mark_failed(gone, "deleted", now=2.0, vanished=True)
        asked: list[tuple[Path, int, int, int | None]] = [
            (Path("/x/a.csv"), 3, 1, 7),
            (Path("/x/a.csv"), 3, 1, 8),
            (Path("/x/a.csv"), 3, 1, None),
            (Path("/x/a.csv"), 4, 1, 7),
            (Path("/x/a.csv"), 3, 2, 7),
            (Path("/x/old.csv"), 3, 1, 99),
            (Path("/x/gone.csv"), 3, 1, 0),
            *[(Path(f"/x/new-{n}.csv"), 3, 1, n) for n in range(1200)],
        ]
        expected = [spool.known(p, size, mtime, inode) for p, size, mtime, inode in asked]
        assert expected[:7] == [True, False, True, False, False, True, False]
        assert spool.known_many(asked) == expected


def test_known_many_asks_in_a_few_statement_shapes_whatever_the_batch(tmp_path: Path) -> None:
    """Each distinct statement stays prepared in the connection's cache: a burst's batches of
    every size must not each leave one behind. The padding matches nothing."""
    with Spool.open(tmp_path) as spool:
        spool.record(Path("/x/a.csv"), "csv", size=3, mtime_ns=1, sha256="aa", now=1.0, inode=7)
        statements: set[str] = set()
        spool._db.set_trace_callback(statements.add)  # the statements sent
        for n in range(1, 120):
            asked = [(Path(f"/x/n{i}.csv"), 3, 1, i) for i in range(n - 1)]
            answers = spool.known_many([(Path("/x/a.csv"), 3, 1, 7), *asked])
            assert answers == [True] + [False] * (n - 1)
        # The trace shows each statement with its values: its shape is the IN list's length.
        lengths = {s.split(" IN (")[1].count(",") + 1 for s in statements if " IN (" in s}
        assert len(lengths) <= 4
