"""Intake: every file the daemon delivers is recorded in the (real, SQLite) spool exactly once."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from exportsync.clock import FakeClock
from exportsync.fs import files
from exportsync.intake import MAX_SESSION_FILE_BYTES, Intake
from exportsync.matcher import FileMatcher
from exportsync.spool import Spool
from exportsync_wire import limits


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "exports"
    path.mkdir()
    return path


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    with Spool.open(tmp_path / "state") as opened:
        yield opened


class Counter:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1


@pytest.fixture
def woken() -> Counter:
    return Counter()


@pytest.fixture
def intake(spool: Spool, root: Path, woken: Counter) -> Intake:
    return Intake(spool, root=root, matcher=FileMatcher(), clock=FakeClock(), on_spooled=woken)


def test_a_new_file_is_spooled_once_with_its_hash(
    intake: Intake, spool: Spool, root: Path, woken: Counter
) -> None:
    path = root / "a.csv"
    path.write_bytes(b"id,v\n1,2\n")
    result = intake.offer(path)
    assert result is not None
    assert result.created
    item = result.item
    assert (item.path, item.kind, item.state) == (path, "csv", "pending")
    assert item.sha256 == hashlib.sha256(b"id,v\n1,2\n").hexdigest()
    assert item.size == 9
    assert woken.calls == 1
    assert spool.counts()["pending"] == 1


def test_the_same_version_again_is_not_hashed_or_spooled_again(
    intake: Intake, spool: Spool, root: Path, woken: Counter, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = root / "a.csv"
    path.write_bytes(b"x")
    intake.offer(path)

    def no_reading(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the file was read again")

    monkeypatch.setattr(files, "snapshot", no_reading)
    assert intake.offer(path) is None
    assert woken.calls == 1
    assert len(spool.items()) == 1


def test_same_content_saved_again_is_recognised(
    intake: Intake, spool: Spool, root: Path, woken: Counter
) -> None:
    path = root / "a.csv"
    path.write_bytes(b"same")
    first = intake.offer(path)
    assert first is not None
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))  # a re-save: new mtime, same bytes
    again = intake.offer(path)
    assert again is not None
    assert not again.created
    assert again.item.id == first.item.id
    assert woken.calls == 1
    assert len(spool.items()) == 1
    assert intake.offer(path) is None  # the new mtime is remembered: no third hash


def test_forced_offer_of_a_known_version_reports_it_without_a_new_item(
    intake: Intake, spool: Spool, root: Path
) -> None:
    path = root / "a.csv"
    path.write_bytes(b"x")
    first = intake.offer(path)
    forced = intake.offer(path, force=True)
    assert first is not None
    assert forced is not None
    assert not forced.created
    assert forced.item.id == first.item.id


def test_changed_content_is_a_new_item_that_supersedes_the_pending_one(
    intake: Intake, spool: Spool, root: Path
) -> None:
    path = root / "a.csv"
    path.write_bytes(b"v1")
    first = intake.offer(path)
    path.write_bytes(b"v2, longer")
    second = intake.offer(path)
    assert first is not None
    assert second is not None
    assert second.created
    assert second.item.id != first.item.id
    assert second.item.sha256 == hashlib.sha256(b"v2, longer").hexdigest()
    # The first version's content is gone from the file: it is dropped, never sent.
    assert [item.id for item in spool.items("pending")] == [second.item.id]
    assert spool.get(first.item.id) is None


def test_session_files_are_spooled_as_sessions(intake: Intake, root: Path) -> None:
    path = root / "run.session.json"
    path.write_text('{"timestamp": "2024-05-01"}')
    result = intake.offer(path)
    assert result is not None
    assert result.item.kind == "session"


@pytest.mark.parametrize("name", ["notes.txt", ".hidden.csv", "a.csv.tmp", "a.csv~"])
def test_files_that_match_no_glob_are_ignored(
    intake: Intake, spool: Spool, root: Path, name: str
) -> None:
    (root / name).write_bytes(b"x")
    assert intake.offer(root / name) is None
    assert spool.items() == []


def test_files_outside_the_root_are_ignored(intake: Intake, spool: Spool, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.csv"
    outside.write_bytes(b"x")
    assert intake.offer(outside) is None
    assert spool.items() == []


def test_a_vanished_file_is_none(intake: Intake, spool: Spool, root: Path) -> None:
    assert intake.offer(root / "gone.csv") is None
    assert spool.items() == []


def test_a_file_vanishing_between_stat_and_read_is_none(
    intake: Intake, spool: Spool, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = root / "a.csv"
    path.write_bytes(b"x")

    def deleted_meanwhile(*args: Any, **kwargs: Any) -> Any:
        path.unlink()
        raise FileNotFoundError(str(path))

    monkeypatch.setattr(files, "snapshot", deleted_meanwhile)
    assert intake.offer(path) is None
    assert spool.items() == []


def test_a_file_still_being_written_is_left_for_later(
    intake: Intake, spool: Spool, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = root / "a.csv"
    path.write_bytes(b"x")

    def changing(*args: Any, **kwargs: Any) -> Any:
        raise files.FileChanged(path, "kept changing while it was read")

    monkeypatch.setattr(files, "snapshot", changing)
    assert intake.offer(path) is None
    assert spool.items() == []


def test_a_symlink_is_a_failed_item_and_its_target_is_never_opened(
    intake: Intake, spool: Spool, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "secret.csv"
    target.write_bytes(b"not yours")
    link = root / "link.csv"
    link.symlink_to(target)
    opened: list[str] = []
    real_open = os.open

    def spy(path: Any, *args: Any, **kwargs: Any) -> int:
        opened.append(os.fsdecode(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy)
    result = intake.offer(link)
    (root / "real.csv").write_bytes(b"x")
    intake.offer(root / "real.csv")
    monkeypatch.undo()
    assert "real.csv" in {os.path.basename(p) for p in opened}  # the spy does see opens

    assert result is not None
    assert result.created
    item = result.item
    assert (item.state, item.refused, item.sha256, item.path) == ("failed", True, None, link)
    assert item.last_error is not None
    assert "symlink" in item.last_error
    assert str(target) not in opened
    assert not any(os.path.basename(p) in ("secret.csv", "link.csv") for p in opened)
    # Offered again (a rescan), the same rejection is not recorded twice.
    again = intake.offer(link)
    assert again is not None
    assert not again.created
    assert spool.counts()["failed"] == 1


def test_a_fifo_is_rejected_without_blocking(intake: Intake, spool: Spool, root: Path) -> None:
    fifo = root / "pipe.csv"
    os.mkfifo(fifo)
    result = intake.offer(fifo)
    assert result is not None
    assert result.item.state == "failed"
    assert result.item.last_error is not None
    assert "fifo" in result.item.last_error


def test_an_oversized_session_file_is_rejected_with_the_reason(
    intake: Intake, spool: Spool, root: Path
) -> None:
    path = root / "huge.session.json"
    with path.open("wb") as handle:
        handle.truncate(MAX_SESSION_FILE_BYTES + 1)  # sparse: no 32 MB written
    result = intake.offer(path)
    assert result is not None
    assert result.item.state == "failed"
    assert result.item.last_error is not None
    assert "over the limit" in result.item.last_error


def test_a_large_csv_has_no_such_limit(intake: Intake, root: Path) -> None:
    path = root / "big.csv"
    with path.open("wb") as handle:
        handle.truncate(MAX_SESSION_FILE_BYTES + 1)
    result = intake.offer(path)
    assert result is not None
    assert result.item.state == "pending"


def test_a_csv_over_what_one_put_takes_is_refused_without_being_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "export"
    root.mkdir()
    huge = root / "sparse.csv"
    with huge.open("wb") as handle:
        handle.truncate(limits.OBJECT_BYTES + 1)  # sparse: no disk used
    read: list[int] = []
    real_read = os.read

    def spy(fd: int, n: int) -> bytes:
        read.append(n)
        return real_read(fd, n)

    monkeypatch.setattr(os, "read", spy)
    with Spool.open(tmp_path / "state") as spool:
        intake = Intake(spool, root=root, matcher=FileMatcher(), clock=FakeClock(1.0))
        result = intake.offer(huge)
        assert result is not None
        assert result.item.state == "failed"
        assert "over the limit" in (result.item.last_error or "")
    assert read == []


def test_a_batch_of_files_is_recorded_in_one_transaction(
    intake: Intake, spool: Spool, root: Path, woken: Counter
) -> None:
    paths = []
    for i in range(40):
        path = root / f"f{i:02d}.csv"
        path.write_text(f"id\n{i}\n")
        paths.append(path)
    before = spool.commits
    results = intake.offer_many(paths)
    assert spool.commits - before == 1
    assert all(r is not None and r.created for r in results)
    assert spool.counts()["pending"] == 40
    assert woken.calls == 1  # the delivery loop is woken once, after the commit


def test_a_batch_with_a_rejected_file_still_records_the_rest(
    intake: Intake, spool: Spool, root: Path
) -> None:
    good = root / "good.csv"
    good.write_text("x")
    link = root / "link.csv"
    link.symlink_to("/etc/passwd")
    gone = root / "gone.csv"
    results = intake.offer_many([good, link, gone])
    assert results[0] is not None
    assert results[0].item.state == "pending"
    assert results[1] is not None
    assert results[1].item.state == "failed"
    assert results[2] is None


def test_the_scan_key_includes_the_inode(intake: Intake, spool: Spool, root: Path) -> None:
    path = root / "a.csv"
    path.write_text("same")
    first = intake.offer(path)
    assert first is not None
    info = path.stat()
    assert first.item.inode == info.st_ino
    assert (os.fsencode(path), info.st_size, info.st_mtime_ns, info.st_ino) in spool.versions()
    assert not spool.known(path, info.st_size, info.st_mtime_ns, info.st_ino + 1)


def test_a_batch_asks_the_spool_once_which_versions_it_has(
    root: Path, spool: Spool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The delivery thread holds the spool's lock for its transactions: a burst of files waited
    for it once per file before hashing. Now once per batch."""
    paths = [root / f"f{n}.csv" for n in range(20)]
    for path in paths:
        path.write_bytes(b"id\n1\n")
    intake = Intake(spool, root=root, matcher=FileMatcher(), clock=FakeClock())
    intake.offer(paths[0])  # a version already spooled is not hashed again
    asked: list[int] = []
    real_known_many = spool.known_many

    def once(versions: Any) -> list[bool]:
        asked.append(len(versions))
        return real_known_many(versions)

    def per_file(*_args: Any, **_kwargs: Any) -> bool:
        raise AssertionError("asked per file")

    monkeypatch.setattr(spool, "known_many", once)
    monkeypatch.setattr(spool, "known", per_file)
    results = intake.offer_many(paths)
    assert asked == [20]
    assert results[0] is None
    assert all(r is not None and r.created for r in results[1:])


def test_a_spooled_file_is_one_info_line(root: Path, spool: Spool) -> None:
    """Per file at info only `item_spooled` (after the commit): `file_detected` is debug, or a
    burst would spend a fifth of the intake's time on two lines per file."""
    path = root / "a.csv"
    path.write_bytes(b"id\n1\n")
    intake = Intake(spool, root=root, matcher=FileMatcher(), clock=FakeClock())
    with capture_logs() as logs:
        intake.offer(path)
    said = [(e["event"], e["log_level"]) for e in logs]
    assert ("file_detected", "debug") in said
    assert [event for event, level in said if level != "debug"] == ["item_spooled"]
