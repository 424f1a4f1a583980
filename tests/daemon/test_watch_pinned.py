"""The watch folder is pinned (§3b): replaced by a symlink, it reads as missing.

The attack: whoever can write the folder's parent does `mv export export.old; ln -s ../victim
export`. Nothing may be read through the symlink, and with `after_upload = "delete"` nothing may
be deleted there. Unit tests swap the folder at each step (a read, a move, a deletion, a check
racing the act); the integration tests make the swap under a real inotify watcher and under a
real `exportsync run` delivering to the devstack.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs
from watchdog.events import FileClosedEvent, FileModifiedEvent

from exportsync.clock import FakeClock
from exportsync.config import AfterUpload, WatchConfig
from exportsync.errors import FileRejected
from exportsync.fs import aftercare, dirfd, files, moves
from exportsync.fs.dirfd import WatchDirReplaced
from exportsync.intake import Intake
from exportsync.matcher import FileMatcher
from exportsync.rootwatch import RootPace
from exportsync.spool import Item, NewVersion, Spool
from exportsync.watcher import Watcher
from support.daemon import run_daemon, spool_items, write_config
from support.devstack import s3_objects, start_devstack, wait_for

VICTIM_BYTES = b"victim,secret\n1,never read\n"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    """`export` (the watch folder, pinned by a first read) and `victim` beside it."""
    export = tmp_path / "export"
    export.mkdir()
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "a.csv").write_bytes(VICTIM_BYTES)
    dirfd.pin(export)
    return export, victim


def _count_walks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The folders walked from ``/`` from here on, one entry per walk."""
    walks: list[str] = []
    real_walk = dirfd.open_real_dir

    def counting(real: str) -> int:
        walks.append(real)
        return real_walk(real)

    monkeypatch.setattr(dirfd, "open_real_dir", counting)
    return walks


def _swap(export: Path, victim: Path) -> None:
    """mv export export.old; ln -s ../victim export"""
    export.rename(export.with_name("export.old"))
    export.symlink_to(os.path.relpath(victim, export.parent), target_is_directory=True)


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every path os.open was given (relative names included)."""
    calls: list[str] = []
    real_open: Callable[..., int] = os.open

    def spy(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        calls.append(os.fsdecode(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy)
    return calls


# -- unit: each step refuses the swapped folder --------------------------------------------------


def test_a_read_through_the_swapped_folder_is_refused_as_missing(
    layout: tuple[Path, Path], opened: list[str]
) -> None:
    export, victim = layout
    _swap(export, victim)
    for read in (
        lambda: files.snapshot(export, export / "a.csv"),
        lambda: files.read_verified(export, export / "a.csv", _sha(VICTIM_BYTES), 27),
        lambda: files.open_verified_stream(export, export / "a.csv", _sha(VICTIM_BYTES), 27),
    ):
        with pytest.raises(WatchDirReplaced, match="replaced by a symlink") as info:
            read()
        assert isinstance(info.value, FileNotFoundError)  # the folder reads as missing
    assert not [p for p in opened if p.endswith("a.csv")]


def test_a_folder_that_was_a_symlink_at_start_is_followed_then_only(tmp_path: Path) -> None:
    """~/Exports may be a symlink to another disk: resolved at the first use, pinned after."""
    disk = tmp_path / "disk"
    disk.mkdir()
    (disk / "a.csv").write_bytes(b"mine\n")
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.csv").write_bytes(VICTIM_BYTES)
    alias = tmp_path / "Exports"
    alias.symlink_to(disk, target_is_directory=True)
    assert files.snapshot(alias, alias / "a.csv").sha256 == _sha(b"mine\n")
    alias.unlink()
    alias.symlink_to(other, target_is_directory=True)  # re-pointed while running
    assert files.snapshot(alias, alias / "a.csv").sha256 == _sha(b"mine\n")  # still the pinned
    with Spool.in_memory() as spool:
        intake = Intake(spool, root=alias, matcher=FileMatcher(), clock=FakeClock())
        result = intake.offer(alias / "a.csv")
        assert result is not None
        assert (result.item.path, result.item.sha256) == (alias / "a.csv", _sha(b"mine\n"))


def test_the_intake_treats_the_swapped_folder_as_missing(layout: tuple[Path, Path]) -> None:
    """A path offered after the swap is neither hashed nor recorded (not even as rejected)."""
    export, victim = layout
    _swap(export, victim)
    with Spool.in_memory() as spool, capture_logs() as logs:
        intake = Intake(spool, root=export, matcher=FileMatcher(), clock=FakeClock())
        assert intake.offer(export / "a.csv") is None
        assert spool.items(limit=10) == []
    assert "item_rejected" not in [e["event"] for e in logs]


def test_a_batch_walks_to_the_pinned_folder_once_not_once_per_file(
    layout: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The intake lost its burst speed to a walk from / per file: a batch walks once."""
    export, _ = layout
    for n in range(20):
        (export / f"f{n}.csv").write_bytes(f"id\n{n}\n".encode())
    walks = _count_walks(monkeypatch)
    with Spool.in_memory() as spool:
        intake = Intake(spool, root=export, matcher=FileMatcher(), clock=FakeClock())
        results = intake.offer_many(sorted(export.iterdir()))
        assert all(r is not None and r.created for r in results)
    assert len(walks) == 1


def test_a_swap_between_batches_is_seen_by_the_next_batch(layout: tuple[Path, Path]) -> None:
    """The walk is per batch: the batch after the swap reads nothing through the symlink."""
    export, victim = layout
    (export / "mine.csv").write_bytes(b"mine\n")
    with Spool.in_memory() as spool:
        intake = Intake(spool, root=export, matcher=FileMatcher(), clock=FakeClock())
        (first,) = intake.offer_many([export / "mine.csv"])
        assert first is not None
        assert first.created
        _swap(export, victim)
        assert intake.offer_many([export / "a.csv"]) == [None]
        assert [i.path.name for i in spool.items(limit=10)] == ["mine.csv"]


def test_inside_a_held_batch_a_subfolder_swapped_for_a_symlink_is_refused(
    tmp_path: Path,
) -> None:
    """The held descriptor is the pinned folder only: below it each folder is still opened
    without following a symlink."""
    export = tmp_path / "export"
    (export / "sub").mkdir(parents=True)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "a.csv").write_bytes(VICTIM_BYTES)
    dirfd.pin(export)
    (export / "sub").rename(export / "sub.old")
    (export / "sub").symlink_to(victim, target_is_directory=True)
    with dirfd.held(export) as fd:
        assert fd is not None
        with pytest.raises(FileRejected):
            files.snapshot(export, export / "sub" / "a.csv")


def test_a_batch_started_after_the_swap_holds_nothing_and_reads_as_missing(
    layout: tuple[Path, Path],
) -> None:
    export, victim = layout
    _swap(export, victim)
    with dirfd.held(export) as fd:
        assert fd is None
        with pytest.raises(WatchDirReplaced):
            files.snapshot(export, export / "a.csv")


def _closes(watcher: Watcher, paths: list[Path]) -> None:
    for path in paths:
        raw = os.fsencode(path)
        watcher.dispatch(FileModifiedEvent(raw))
        watcher.dispatch(FileClosedEvent(raw))


def test_the_lease_probes_walk_to_the_pinned_folder_once_not_once_per_close(
    layout: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each close asks the kernel whether a writer still holds the file; that probe walked from /
    per close on watchdog's thread. Now one walk serves the watch's life."""
    export, _ = layout
    paths = [export / f"f{n}.csv" for n in range(20)]
    for path in paths:
        path.write_bytes(b"id\n1\n")
    walks = _count_walks(monkeypatch)
    ready = _Ready()
    watcher = Watcher(WatchConfig(export), FileMatcher(), ready, clock=FakeClock())
    try:
        _closes(watcher, paths)
        assert sorted(watcher.run_pending()) == sorted(paths)  # no writer holds them: ready
    finally:
        watcher.stop()
    assert len(walks) == 1


def test_once_the_swap_is_seen_the_lease_probe_opens_nothing_through_it(
    layout: tuple[Path, Path], opened: list[str]
) -> None:
    export, victim = layout
    (export / "mine.csv").write_bytes(b"mine\n")
    watcher = Watcher(WatchConfig(export), FileMatcher(), _Ready(), clock=FakeClock())
    try:
        _closes(watcher, [export / "mine.csv"])  # the probe's descriptor is open now
        _swap(export, victim)
        watcher.root_watch.changed()  # as the watch on the parent reports the swap
        watcher.run_pending()
        assert watcher.missing
        opened.clear()
        _closes(watcher, [export / "a.csv"])
        assert "a.csv" not in opened
    finally:
        watcher.stop()


@pytest.mark.parametrize("mode", ["delete", "move"])
def test_aftercare_after_the_swap_deletes_and_moves_nothing(
    layout: tuple[Path, Path], mode: AfterUpload
) -> None:
    export, victim = layout
    (export / "a.csv").write_bytes(VICTIM_BYTES)  # the delivered file had the same bytes
    item = _item(export / "a.csv", VICTIM_BYTES)
    _swap(export, victim)
    aftercare.finish_file(export, item, mode)
    assert (victim / "a.csv").read_bytes() == VICTIM_BYTES
    assert sorted(p.name for p in victim.iterdir()) == ["a.csv"]  # no sent/, no aside name
    assert (export.with_name("export.old") / "a.csv").exists()


def test_moves_refuse_the_swapped_folder(layout: tuple[Path, Path]) -> None:
    export, victim = layout
    _swap(export, victim)
    with pytest.raises(WatchDirReplaced):
        moves.delete_file(export, export / "a.csv")
    with pytest.raises(WatchDirReplaced):
        moves.set_aside(export, export / "a.csv")
    with pytest.raises(WatchDirReplaced):
        moves.move_to_sent(export, export / "a.csv")
    assert sorted(p.name for p in victim.iterdir()) == ["a.csv"]


def test_a_swap_between_the_check_and_the_deletion_cannot_redirect_it(
    layout: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race: aftercare has hashed the delivered file; the folder is swapped before the
    rename aside and the unlink. Both act on the pinned directory or not at all."""
    export, victim = layout
    (export / "a.csv").write_bytes(VICTIM_BYTES)
    item = _item(export / "a.csv", VICTIM_BYTES)
    real_snapshot = files.snapshot
    swapped = threading.Event()

    def snapshot_then_swap(root: Path, path: Path, **kwargs: Any) -> files.FileSnapshot:
        taken = real_snapshot(root, path, **kwargs)
        if not swapped.is_set():
            swapped.set()
            _swap(export, victim)
        return taken

    monkeypatch.setattr(files, "snapshot", snapshot_then_swap)
    aftercare.finish_file(export, item, "delete")
    assert swapped.is_set()
    assert (victim / "a.csv").read_bytes() == VICTIM_BYTES
    assert sorted(p.name for p in victim.iterdir()) == ["a.csv"]


def _item(path: Path, data: bytes) -> Item:
    with Spool.in_memory() as spool:
        return spool.record_many([_version(path, data)], now=0.0)[0].item


def _version(path: Path, data: bytes) -> NewVersion:
    info = os.lstat(path)
    return NewVersion(path, "csv", len(data), info.st_mtime_ns, _sha(data), info.st_ino)


# -- real inotify: the watcher sees the swap -----------------------------------------------------


class _Ready:
    def __init__(self) -> None:
        self.paths: list[Path] = []
        self.event = threading.Event()

    def __call__(self, paths: list[Path]) -> None:
        self.paths += paths
        self.event.set()


def _until(predicate: Callable[[], bool], seconds: float = 10.0) -> bool:
    return wait_for(predicate, seconds)


@pytest.mark.integration
def test_the_watcher_treats_a_folder_swapped_for_a_symlink_as_missing(
    layout: tuple[Path, Path],
) -> None:
    export, victim = layout
    ready = _Ready()
    watcher = Watcher(
        WatchConfig(export, settle_seconds=0.3),
        FileMatcher(),
        ready,
        pace=RootPace(health_seconds=0.1),
    )
    with capture_logs() as logs:
        watcher.start()
        try:
            (export / "first.csv").write_text("first\n")
            assert _until(lambda: export / "first.csv" in ready.paths)
            _swap(export, victim)
            assert _until(lambda: watcher.missing), logs
            (victim / "b.csv").write_text("written in the victim's folder\n")
            assert watcher.scan() == []  # nothing listed through the symlink
            # A real folder back under the name is watched again; the sentinel shows the
            # watcher has looked since the swap.
            export.unlink()
            export.mkdir()
            (export / "sentinel.csv").write_text("back\n")
            assert _until(lambda: export / "sentinel.csv" in ready.paths), logs
        finally:
            watcher.stop()
    assert {p.name for p in ready.paths} == {"first.csv", "sentinel.csv"}
    missing = [e for e in logs if e["event"] == "watch_dir_missing"]
    assert [e["reason"] for e in missing] == ["symlink"]
    restored = [e for e in logs if e["event"] == "watch_dir_restored"]
    assert len(restored) == 1  # the real folder, never the symlink


# -- a real daemon against the devstack ----------------------------------------------------------


def _by_name(state_dir: Path) -> dict[str, Item]:
    return {item.path.name: item for item in spool_items(state_dir)}


@pytest.fixture
def devstack(tmp_path: Path) -> Iterator[Any]:
    with start_devstack(tmp_path / "ds", "--quota", "0") as info:
        yield info


@pytest.mark.integration
def test_a_running_daemon_neither_delivers_nor_deletes_through_a_swapped_folder(
    tmp_path: Path, devstack: Any
) -> None:
    """`exportsync run`, after_upload = "delete": mv export export.old; ln -s ../victim export.
    The victim's CSV is never spooled, never stored and never deleted."""
    config = write_config(
        tmp_path,
        devstack,
        watch={"settle_seconds": 0.3, "after_upload": "delete"},
        quota={"daily_requests": 0, "requests_per_second": 10.0, "burst": 5},
    )
    export = tmp_path / "export"
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "a.csv").write_bytes(VICTIM_BYTES)
    with run_daemon(config) as daemon:
        daemon.wait_ready()
        (export / "before.csv").write_bytes(b"before,swap\n")
        assert wait_for(lambda: not (export / "before.csv").exists(), 30), daemon.output()

        _swap(export, victim)
        # The watch sees the folder leave; whether the symlink is already there when it looks
        # ("symlink") or not yet ("missing") depends on timing. Either way nothing is read there.
        assert wait_for(
            lambda: (
                any(e.get("event") == "watch_dir_missing" for e in daemon.events())
                or "a.csv" in _by_name(daemon.state_dir)
            ),
            30,
        ), daemon.output()
        (victim / "late.csv").write_bytes(b"victim,late\n")  # events there are no concern of ours

        # A real folder back under the name: delivered (and deleted) again, so the daemon has
        # looked at the folder since the swap.
        export.unlink()
        export.mkdir()
        (export / "after.csv").write_bytes(b"after,swap\n")
        assert wait_for(lambda: not (export / "after.csv").exists(), 30), daemon.output()
        items = _by_name(daemon.state_dir)
        assert daemon.terminate() == 0

    assert (victim / "a.csv").read_bytes() == VICTIM_BYTES
    assert (victim / "late.csv").exists()
    assert set(items) == {"before.csv", "after.csv"}
    assert {i.state for i in items.values()} == {"delivered"}
    stored = b"".join(s3_objects(devstack).values())
    assert b"victim" not in stored
    assert b"before,swap" in stored
    assert b"after,swap" in stored
    events = [e for e in daemon.events() if e.get("event") == "watch_dir_missing"]
    # Once; "missing" when the daemon looked between the rename and the symlink (see above).
    assert [e.get("reason") for e in events] in (["symlink"], ["missing"])


def test_pins_are_per_configured_path(tmp_path: Path) -> None:
    """Two roots pin independently; a second pin of the same path is the first."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    assert dirfd.pin(a) == a.resolve()
    assert dirfd.pin(b) == b.resolve()
    a.rename(tmp_path / "a.old")
    a.symlink_to(b, target_is_directory=True)
    assert dirfd.pin(a) == (tmp_path / "a").parent.resolve() / "a"


def test_a_folder_swapped_for_another_between_set_aside_and_unlink_deletes_nothing_there(
    layout: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The folder is swapped for another real directory (no symlink anywhere) after the delivered
    file was renamed aside: a file planted there under the private name, same bytes, is not the
    inode that was checked, so the deletion refuses it."""
    export, _victim = layout
    (export / "a.csv").write_bytes(VICTIM_BYTES)
    item = _item(export / "a.csv", VICTIM_BYTES)
    real_set_aside = moves.set_aside
    planted: list[Path] = []

    def set_aside_then_swap(root: Path, path: Path, **kwargs: Any) -> Path:
        aside = real_set_aside(root, path, **kwargs)
        export.rename(export.with_name("export.old"))
        export.mkdir()
        aside.write_bytes(VICTIM_BYTES)  # another file, the name about to be deleted
        planted.append(aside)
        return aside

    monkeypatch.setattr(moves, "set_aside", set_aside_then_swap)
    with capture_logs() as logs:
        aftercare.finish_file(export, item, "delete")
    assert planted
    assert planted[0].read_bytes() == VICTIM_BYTES  # not deleted
    failed = [e for e in logs if e["event"] == "after_upload_failed"]
    assert len(failed) == 1
    assert "replaced by another file" in failed[0]["error"]


@pytest.mark.integration
def test_a_watch_dir_that_is_a_symlink_at_start_is_watched_at_its_target(tmp_path: Path) -> None:
    """~/Exports → another disk: the watch is on the real folder, the paths reported are under
    the configured name, and re-pointing the symlink later changes nothing (restart to follow)."""
    disk, other = tmp_path / "disk", tmp_path / "other"
    disk.mkdir()
    other.mkdir()
    alias = tmp_path / "Exports"
    alias.symlink_to(disk, target_is_directory=True)
    (disk / "old.csv").write_text("old\n")
    ready = _Ready()
    watcher = Watcher(
        WatchConfig(alias, settle_seconds=0.3),
        FileMatcher(),
        ready,
        pace=RootPace(health_seconds=0.1),
    )
    watcher.start()
    try:
        assert watcher.scan() == [alias / "old.csv"]
        (disk / "new.csv").write_text("new\n")
        assert _until(lambda: alias / "new.csv" in ready.paths)
        alias.unlink()
        alias.symlink_to(other, target_is_directory=True)
        (other / "elsewhere.csv").write_text("not ours\n")
        (disk / "later.csv").write_text("later\n")
        assert _until(lambda: alias / "later.csv" in ready.paths)
        assert not watcher.missing
        assert sorted(p.name for p in watcher.scan()) == ["later.csv", "new.csv", "old.csv"]
    finally:
        watcher.stop()
    assert alias / "elsewhere.csv" not in ready.paths
