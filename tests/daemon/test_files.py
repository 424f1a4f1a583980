"""files: safe opens, snapshots, verified reads and streams, durable moves."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from exportsync.clock import FakeClock
from exportsync.errors import ExportsyncError, FileRejected
from exportsync.fs import files, moves
from exportsync.fs.files import (
    FileChanged,
    open_regular,
    open_verified_stream,
    read_verified,
    snapshot,
)
from exportsync.fs.moves import delete_file, move_to_sent
from exportsync.intake import Intake
from exportsync.matcher import FileMatcher
from exportsync.spool import Spool


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "Exports"
    folder.mkdir()
    return folder


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def opened_paths(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every os.open call made (path as given, flags), to prove what was never opened."""
    calls: list[tuple[str, int]] = []
    real_open: Callable[..., int] = os.open

    def spy(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        calls.append((os.fsdecode(path), flags))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy)
    return calls


def test_snapshot_identity(root: Path) -> None:
    path = root / "a.csv"
    path.write_bytes(b"id,value\n1,2\n")
    snap = snapshot(root, path)
    info = path.stat()
    assert snap.path == path
    assert snap.size == 13
    assert snap.sha256 == _sha(b"id,value\n1,2\n")
    assert (snap.mtime_ns, snap.inode) == (info.st_mtime_ns, info.st_ino)


def test_snapshot_streams_in_chunks(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file larger than one chunk is read in CHUNK_SIZE pieces, never whole."""
    monkeypatch.setattr(files, "CHUNK_SIZE", 4)
    reads: list[int] = []
    real_read = os.read

    def spy(fd: int, n: int) -> bytes:
        reads.append(n)
        return real_read(fd, n)

    monkeypatch.setattr(os, "read", spy)
    path = root / "a.csv"
    path.write_bytes(b"0123456789")
    assert snapshot(root, path).sha256 == _sha(b"0123456789")
    assert reads == [4, 4, 2]


def test_zero_byte_file(root: Path) -> None:
    path = root / "empty.csv"
    path.touch()
    assert snapshot(root, path).sha256 == _sha(b"")


def test_symlink_out_of_folder_is_rejected_without_opening_target(
    root: Path, opened_paths: list[tuple[str, int]]
) -> None:
    link = root / "passwd.csv"
    link.symlink_to("/etc/passwd")
    with pytest.raises(
        FileRejected, match=r"symlink to '/etc/passwd' \(outside the watched folder"
    ):
        snapshot(root, link)
    # Nothing was opened at all: not the link, not its target.
    assert opened_paths == []


def test_symlink_inside_folder_is_rejected_too(root: Path) -> None:
    (root / "real.csv").write_text("x")
    link = root / "alias.csv"
    link.symlink_to(root / "real.csv")
    with pytest.raises(FileRejected, match=r"inside the watched folder"):
        snapshot(root, link)


def test_symlink_swapped_in_after_lstat_is_not_followed(
    root: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The race: lstat sees a regular file, then it becomes a symlink; O_NOFOLLOW refuses it."""
    secret = tmp_path / "secret"
    secret.write_text("never read")
    path = root / "a.csv"
    path.write_text("harmless")
    real_lstat = os.lstat

    def lstat_then_swap(p: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        result = real_lstat(p, *args, **kwargs)
        if os.fsdecode(p).endswith("a.csv"):
            path.unlink()
            path.symlink_to(secret)
        return result

    monkeypatch.setattr(os, "lstat", lstat_then_swap)
    with pytest.raises(FileRejected, match="symlink"):
        snapshot(root, path)


def test_symlinked_parent_directory_escaping_root_is_rejected(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "b.csv").write_text("x")
    (root / "sub").symlink_to(outside)
    with pytest.raises(FileRejected, match="outside the watched folder"):
        snapshot(root, root / "sub" / "b.csv")


def test_dotdot_path_escaping_root_is_rejected(root: Path, tmp_path: Path) -> None:
    (tmp_path / "c.csv").write_text("x")
    with pytest.raises(FileRejected, match="outside the watched folder"):
        snapshot(root, root / ".." / "c.csv")


def test_root_itself_reached_through_a_symlink_is_fine(tmp_path: Path, root: Path) -> None:
    """~/Exports may itself be a symlink to another disk; files in it are inside."""
    alias = tmp_path / "alias"
    alias.symlink_to(root)
    (root / "a.csv").write_text("x")
    assert snapshot(alias, alias / "a.csv").size == 1


def test_fifo_is_rejected_without_hanging(root: Path, opened_paths: list[tuple[str, int]]) -> None:
    fifo = root / "pipe.csv"
    os.mkfifo(fifo)
    with pytest.raises(FileRejected, match=r"not a regular file \(fifo\)"):
        snapshot(root, fifo)
    assert not [p for p, _ in opened_paths if p.endswith("pipe.csv")]


def test_fifo_swapped_in_after_lstat_does_not_hang(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """O_NONBLOCK: even if a fifo replaces the file after the lstat, the open returns at once."""
    path = root / "a.csv"
    path.write_text("x")
    real_lstat = os.lstat

    def lstat_then_swap(p: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        result = real_lstat(p, *args, **kwargs)
        if os.fsdecode(p).endswith("a.csv"):
            path.unlink()
            os.mkfifo(path)
        return result

    monkeypatch.setattr(os, "lstat", lstat_then_swap)
    with pytest.raises(FileRejected, match="fifo"):
        snapshot(root, path)


def test_directory_is_rejected(root: Path) -> None:
    (root / "folder.csv").mkdir()
    with pytest.raises(FileRejected, match=r"\(directory\)"):
        snapshot(root, root / "folder.csv")


def test_vanished_file_raises_file_not_found(root: Path) -> None:
    with pytest.raises(FileNotFoundError):
        snapshot(root, root / "gone.csv")


def test_too_large_is_rejected(root: Path) -> None:
    path = root / "big.csv"
    path.write_bytes(b"x" * 11)
    assert snapshot(root, path, max_bytes=11).size == 11
    with pytest.raises(FileRejected, match="over the limit of 10"):
        snapshot(root, path, max_bytes=10)


def test_file_rewritten_during_every_read_raises_file_changed(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = root / "busy.csv"
    path.write_bytes(b"a")
    real_read = os.read

    def read_and_append(fd: int, n: int) -> bytes:
        data = real_read(fd, n)
        if data:
            with path.open("ab") as f:
                f.write(b"b")
        return data

    monkeypatch.setattr(os, "read", read_and_append)
    with pytest.raises(FileChanged, match="kept changing") as caught:
        snapshot(root, path)
    assert caught.value.retryable
    assert isinstance(caught.value, ExportsyncError)


def test_file_changed_once_during_read_is_read_again(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = root / "a.csv"
    path.write_bytes(b"first")
    real_read = os.read
    appended = threading.Event()

    def read_and_append_once(fd: int, n: int) -> bytes:
        data = real_read(fd, n)
        if data and not appended.is_set():
            appended.set()
            with path.open("ab") as f:
                f.write(b"+more")
        return data

    monkeypatch.setattr(os, "read", read_and_append_once)
    assert snapshot(root, path).sha256 == _sha(b"first+more")


def test_open_regular_returns_a_readable_fd(root: Path) -> None:
    path = root / "a.csv"
    path.write_bytes(b"abc")
    fd = open_regular(root, path)
    try:
        assert os.read(fd, 10) == b"abc"
    finally:
        os.close(fd)


def test_read_verified_returns_the_hashed_bytes(root: Path) -> None:
    path = root / "a.csv"
    path.write_bytes(b"hello")
    assert read_verified(root, path, _sha(b"hello"), 5) == b"hello"


@pytest.mark.parametrize("new", [b"HELLO", b"hello world"])
def test_read_verified_raises_file_changed_with_new_snapshot(root: Path, new: bytes) -> None:
    path = root / "a.csv"
    path.write_bytes(new)
    with pytest.raises(FileChanged) as caught:
        read_verified(root, path, _sha(b"hello"), 5)
    assert caught.value.snapshot is not None
    assert caught.value.snapshot.sha256 == _sha(new)
    assert caught.value.snapshot.size == len(new)


def test_read_verified_refuses_symlink(root: Path) -> None:
    link = root / "a.csv"
    link.symlink_to("/etc/passwd")
    with pytest.raises(FileRejected, match="symlink"):
        read_verified(root, link, _sha(b""), 0)


def test_verified_stream_hashes_what_it_hands_out(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files, "CHUNK_SIZE", 3)
    data = b"0123456789"
    path = root / "big.csv"
    path.write_bytes(data)
    with open_verified_stream(root, path, _sha(data), len(data)) as body:
        assert len(body) == 10
        chunks = list(body)
        body.verify()
    assert b"".join(chunks) == data
    assert body.sha256 == _sha(data)


def test_verified_stream_read_api_stops_at_expected_size(root: Path) -> None:
    """http.client/urllib3 call read(blocksize) until b''; never more than Content-Length."""
    path = root / "big.csv"
    path.write_bytes(b"abcdef")
    body = open_verified_stream(root, path, _sha(b"abcdef"), 6)
    path.write_bytes(b"abcdefGROWN")  # same inode grows after the open
    out = b""
    while chunk := body.read(4):
        out += chunk
    assert out == b"abcdef"
    body.verify()


def test_verified_stream_rewritten_mid_flight_fails_verify(root: Path) -> None:
    path = root / "big.csv"
    path.write_bytes(b"abcdef")
    body = open_verified_stream(root, path, _sha(b"abcdef"), 6)
    assert body.read(2) == b"ab"
    with path.open("r+b") as f:  # rewritten in place, same size
        f.write(b"XXXXXX")
    assert body.read() == b"XXXX"
    with pytest.raises(FileChanged, match="streamed content differs"):
        body.verify()


def test_verified_stream_truncated_mid_flight_raises(root: Path) -> None:
    path = root / "big.csv"
    path.write_bytes(b"abcdef")
    body = open_verified_stream(root, path, _sha(b"abcdef"), 6)
    assert body.read(2) == b"ab"
    os.truncate(path, 2)
    with pytest.raises(FileChanged, match="ended after 2 of 6 bytes"):
        body.read(4)


def test_open_verified_stream_size_mismatch_raises_at_once(root: Path) -> None:
    path = root / "big.csv"
    path.write_bytes(b"abc")
    with pytest.raises(FileChanged) as caught:
        open_verified_stream(root, path, _sha(b"abcdef"), 6)
    assert caught.value.snapshot is not None
    assert caught.value.snapshot.size == 3


def test_verified_stream_as_requests_body_sets_content_length(root: Path) -> None:
    import requests  # noqa: PLC0415 - only this test needs it

    path = root / "big.csv"
    path.write_bytes(b"abcdef")
    with open_verified_stream(root, path, _sha(b"abcdef"), 6) as body:
        prepared = requests.Request("PUT", "http://127.0.0.1:9/x", data=body).prepare()
        assert prepared.headers["Content-Length"] == "6"
        assert "Transfer-Encoding" not in prepared.headers


def test_move_to_sent_avoids_collisions(root: Path) -> None:
    first = root / "x.session.json"
    first.write_text("1")
    assert move_to_sent(root, first) == root / "sent" / "x.session.json"
    first.write_text("2")
    assert move_to_sent(root, first) == root / "sent" / "x-1.session.json"
    first.write_text("3")
    assert move_to_sent(root, first) == root / "sent" / "x-2.session.json"
    assert not first.exists()
    assert [(root / "sent" / n).read_text() for n in sorted(os.listdir(root / "sent"))] == [
        "2",
        "3",
        "1",
    ]


def test_move_to_sent_without_hard_links_falls_back_to_rename(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(*args: Any, **kwargs: Any) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    (root / "sent").mkdir()
    (root / "sent" / "a.csv").write_text("old")
    path = root / "a.csv"
    path.write_text("new")
    assert move_to_sent(root, path) == root / "sent" / "a-1.csv"
    assert (root / "sent" / "a.csv").read_text() == "old"
    assert not path.exists()


def test_move_to_sent_fsyncs_the_directories(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    path = root / "a.csv"
    path.write_text("x")
    move_to_sent(root, path)
    assert len(synced) >= 2  # sent/ and the source directory (plus root when sent/ was created)


def test_move_to_sent_refuses_a_symlinked_sent_dir(root: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (root / "sent").symlink_to(elsewhere)
    path = root / "a.csv"
    path.write_text("x")
    with pytest.raises(FileRejected, match="not a directory"):
        move_to_sent(root, path)
    assert path.exists()
    assert os.listdir(elsewhere) == []


def test_move_to_sent_refuses_symlinks(root: Path) -> None:
    link = root / "a.csv"
    link.symlink_to("/etc/passwd")
    with pytest.raises(FileRejected):
        move_to_sent(root, link)


def test_delete_file_is_idempotent(root: Path) -> None:
    path = root / "a.csv"
    path.write_text("x")
    delete_file(root, path)
    assert not path.exists()
    delete_file(root, path)


def _all_messages(exc: BaseException) -> Iterator[str]:
    yield str(exc)
    yield repr(exc)


def test_messages_name_the_path_and_reason(root: Path) -> None:
    link = root / "odd name ü.csv"
    link.symlink_to("/etc/passwd")
    with pytest.raises(FileRejected) as caught:
        snapshot(root, link)
    assert all("odd name ü.csv" in m for m in _all_messages(caught.value))


def test_restore_without_hard_links_falls_back_to_rename(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(*args: Any, **kwargs: Any) -> None:
        raise PermissionError(1, "Operation not permitted")

    path = root / "a.csv"
    path.write_text("new")
    aside = moves.set_aside(root, path)
    path.write_text("taken")
    monkeypatch.setattr(os, "link", no_links)
    assert moves.restore(root, aside, path) == root / "a-1.csv"
    assert (root / "a-1.csv").read_text() == "new"
    assert path.read_text() == "taken"
    assert not aside.exists()


def test_a_parent_swapped_for_a_symlink_after_the_check_is_not_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parent folder turns into a symlink to a folder outside between the check and the
    open: the file there (same name) is never read."""
    root = tmp_path / "export"
    sub = root / "sub"
    sub.mkdir(parents=True)
    (sub / "a.csv").write_bytes(b"inside\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "a.csv").write_bytes(b"outside, never read\n")
    real = files.checked_parent

    def check_then_swap(root_: Path, path: Path) -> str:
        parent = real(root_, path)
        sub.rename(root / "sub-real")
        sub.symlink_to(outside, target_is_directory=True)
        return parent

    monkeypatch.setattr(files, "checked_parent", check_then_swap)
    with pytest.raises(FileRejected, match="symlinks are not followed"):
        snapshot(root, sub / "a.csv")


# -- hard links (§3b): a file with more than one name is never read ------------------------------


def test_a_hard_link_is_refused_without_reading_it(
    root: Path, tmp_path: Path, opened_paths: list[tuple[str, int]]
) -> None:
    """Where fs.protected_hardlinks is off, whoever can write the folder could link in any file
    the daemon can read (the daemon may run as root): refused from its lstat, never opened."""
    secret = tmp_path / "secret"
    secret.write_bytes(b"root's eyes only\n")
    link = root / "stolen.csv"
    os.link(secret, link)
    with pytest.raises(FileRejected, match=r"stolen\.csv: hard link \(2 names"):
        snapshot(root, link)
    assert not [p for p, _ in opened_paths if p.endswith("stolen.csv")]
    with pytest.raises(FileRejected, match="hard link"):
        read_verified(root, link, _sha(b"root's eyes only\n"), 17)


def test_a_hard_link_made_after_the_lstat_is_refused_by_fstat(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race: lstat sees a lone file, then a second name appears before the open."""
    path = root / "a.csv"
    path.write_bytes(b"x\n")
    real_lstat = os.lstat

    def lstat_then_link(p: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        result = real_lstat(p, *args, **kwargs)
        if os.fsdecode(p).endswith("a.csv"):
            os.link(path, tmp_path / "second-name")
        return result

    monkeypatch.setattr(os, "lstat", lstat_then_link)
    with pytest.raises(FileRejected, match="hard link"):
        open_regular(root, path)


def test_a_hard_link_is_rejected_through_the_intake(root: Path, tmp_path: Path) -> None:
    """Offered by the watcher, a hard link is recorded failed with `item_rejected`, reason
    `hard link`; its content is never hashed into the spool."""
    secret = tmp_path / "shadow"
    secret.write_bytes(b"root:$6$hash:19000::::::\n")
    link = root / "shadow.csv"
    os.link(secret, link)
    with Spool.open(tmp_path / "state") as spool, capture_logs() as logs:
        intake = Intake(spool, root=root, matcher=FileMatcher(), clock=FakeClock())
        result = intake.offer(link)
        assert result is not None
        assert result.item.state == "failed"
        assert result.item.sha256 != _sha(secret.read_bytes())
    rejected = [e for e in logs if e["event"] == "item_rejected"]
    assert len(rejected) == 1
    assert "hard link" in rejected[0]["reason"]
