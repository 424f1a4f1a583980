"""Watcher: readiness logic (pure, fake time), the event adapter (scripted events), real inotify."""

from __future__ import annotations

import errno
import logging
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs
from watchdog.events import (
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileOpenedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

from exportsync.clock import FakeClock
from exportsync.config import WatchConfig
from exportsync.errors import FileRejected
from exportsync.fs.files import snapshot
from exportsync.matcher import FileMatcher
from exportsync.rootwatch import RootPace
from exportsync.watcher import (
    CLOSE_RECHECK_SECONDS,
    OFFER_BATCH,
    RETRY_RESCAN_SECONDS,
    Settler,
    StatKey,
    Watcher,
    writer_holds,
)

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs inotify")

# -- Settler: pure readiness ---------------------------------------------------------------------

A = Path("/x/a.csv")
B = Path("/x/b.csv")


class FakeStat:
    """A scripted lstat: tests set each path's (size, mtime, inode) or delete it."""

    def __init__(self) -> None:
        self.keys: dict[Path, StatKey] = {}

    def write(self, path: Path, size: int, mtime: int) -> None:
        self.keys[path] = (size, mtime, 1)

    def __call__(self, path: Path) -> StatKey | None:
        return self.keys.get(path)


@pytest.fixture
def fs() -> FakeStat:
    return FakeStat()


def inotify_settler(fs: FakeStat) -> Settler:
    return Settler(settle_seconds=2.0, close_events=True, open_write_timeout=60.0, stat=fs)


class FakeHolders:
    """A scripted lease probe: whether a writer holds each path (None: cannot tell)."""

    def __init__(self, default: bool | None) -> None:
        self.default = default
        self.held: dict[Path, bool | None] = {}
        self.asked: list[Path] = []

    def __call__(self, path: Path) -> bool | None:
        self.asked.append(path)
        return self.held.get(path, self.default)


def probing_settler(fs: FakeStat, holders: FakeHolders) -> Settler:
    return Settler(
        settle_seconds=2.0, close_events=True, open_write_timeout=60.0, stat=fs, holders=holders
    )


def test_closed_file_no_writer_holds_is_ready_at_the_close(fs: FakeStat) -> None:
    settler = probing_settler(fs, FakeHolders(default=False))
    fs.write(A, 10, 1)
    settler.modified(A, 0.0)
    assert settler.due(0.1) == []  # written, not closed
    settler.closed(A, 0.1)
    assert settler.next_deadline() == pytest.approx(0.1)
    assert settler.due(0.1) == [A]
    assert settler.due(5.0) == []


class CountingStat(FakeStat):
    def __init__(self) -> None:
        super().__init__()
        self.looks = 0

    def __call__(self, path: Path) -> StatKey | None:
        self.looks += 1
        return super().__call__(path)


def test_a_file_closed_in_this_step_is_not_looked_at_again_one_closed_before_is() -> None:
    """The look taken at the close stands for a file closed during the step now running; one
    closed earlier (a burst's later slices) is looked at again: a rewrite whose events are not
    read yet must not be offered mid-write."""
    fs = CountingStat()
    settler = probing_settler(fs, FakeHolders(default=False))
    fs.write(A, 10, 1)
    fs.write(B, 10, 1)
    settler.closed(A, 1.0)
    settler.closed(B, 2.0)
    looks = fs.looks
    assert settler.due(2.0, limit=1, fresh_since=2.0) == [A]  # closed before the step: looked at
    assert fs.looks == looks + 1
    assert settler.due(2.0, fresh_since=2.0) == [B]  # closed in this step: taken as it was
    assert fs.looks == looks + 1
    fs.write(A, 20, 2)
    settler.closed(A, 3.0)
    fs.write(A, 25, 3)  # written again; its event not read yet
    assert settler.due(4.0, fresh_since=4.0) == []  # the changed look starts the wait over


def test_a_path_that_cannot_be_looked_at_is_kept_not_dropped(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EACCES or EIO at the first look is no reason to forget a file: it is offered, and the
    intake records why it could not be read."""
    watcher, clock, seen = scripted(folder)
    path = folder / "a.csv"
    path.write_text("x")
    real_lstat = os.lstat

    def lstat(target: object, *args: object, **kwargs: object) -> os.stat_result:
        if os.fspath(target) == str(path):  # type: ignore[call-overload]
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_lstat(target, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("exportsync.watcher.os.lstat", lstat)
    watcher.dispatch(FileCreatedEvent(str(path)))
    assert path in watcher.settler
    clock.advance(5.0)
    assert watcher.run_pending() == [path]
    assert seen.paths == [path]


def test_renamed_in_file_no_writer_holds_is_ready_at_once(fs: FakeStat) -> None:
    settler = probing_settler(fs, FakeHolders(default=False))
    fs.write(A, 10, 1)
    settler.arrived(A, 3.0)
    assert settler.due(3.0) == [A]


def test_a_close_while_another_handle_writes_waits_for_the_last_close(fs: FakeStat) -> None:
    holders = FakeHolders(default=False)
    settler = probing_settler(fs, holders)
    fs.write(A, 10, 1)
    holders.held[A] = True  # a second writer still has it open
    settler.closed(A, 0.0)
    assert settler.due(30.0) == []  # however long the quiet
    fs.write(A, 20, 2)
    holders.held[A] = False
    settler.closed(A, 31.0)
    assert settler.due(31.0) == [A]
    assert holders.asked == [A, A, A]  # at the close, once more just after it, at the next close


def test_a_writer_seen_at_its_own_close_is_asked_again_at_once_not_after_the_timeout(
    fs: FakeStat,
) -> None:
    """The kernel queues IN_CLOSE_WRITE before the closing handle gives up its write access: a
    probe in between sees a writer that is already gone. The file is asked again shortly after,
    not left until the open-write timeout (60 s)."""
    holders = FakeHolders(default=False)
    settler = probing_settler(fs, holders)
    fs.write(A, 10, 1)
    holders.held[A] = True  # the closing handle, still counted as a writer
    settler.closed(A, 0.0)
    assert settler.due(0.0) == []
    holders.held[A] = False  # its write access dropped microseconds later
    assert settler.next_deadline() == pytest.approx(CLOSE_RECHECK_SECONDS)
    assert settler.due(CLOSE_RECHECK_SECONDS) == [A]


def test_each_close_after_a_write_reports_the_file_again(fs: FakeStat) -> None:
    """A writer that opens and writes again makes a new version; the spool supersedes the old."""
    settler = probing_settler(fs, FakeHolders(default=False))
    ready: list[Path] = []
    for i in range(3):
        fs.write(A, i + 1, i)
        settler.modified(A, float(i))
        settler.closed(A, i + 0.01)
        ready += settler.due(i + 0.01)
    assert ready == [A, A, A]


def test_without_a_lease_probe_a_closed_file_waits_the_short_quiet_period(fs: FakeStat) -> None:
    settler = inotify_settler(fs)
    assert settler.quiet_seconds == 0.5
    fs.write(A, 10, 1)
    settler.modified(A, 0.0)
    settler.closed(A, 0.1)
    assert settler.next_deadline() == pytest.approx(0.6)
    assert settler.due(0.59) == []
    assert settler.due(0.6) == [A]
    assert settler.due(5.0) == []  # reported once, then gone from the pending set


def test_settler_waits_for_close_of_a_slow_single_handle_writer(fs: FakeStat) -> None:
    settler = inotify_settler(fs)
    for t in range(15):  # one chunk every 3 s: longer than settle_seconds
        fs.write(A, t + 1, t)
        settler.modified(A, 3.0 * t)
        assert settler.due(3.0 * t + 2.99) == []
    settler.closed(A, 45.0)
    assert settler.due(45.49) == []
    assert settler.due(45.5) == [A]


def test_settler_debounces_open_append_close(fs: FakeStat) -> None:
    settler = inotify_settler(fs)
    ready: list[Path] = []
    t = 0.0
    for i in range(10):
        fs.write(A, i + 1, i)
        settler.modified(A, t)
        settler.closed(A, t + 0.05)
        t += 0.2
        ready += settler.due(t)
    assert ready == []
    assert settler.due(t + 0.5) == [A]


def test_write_without_close_is_released_after_the_open_write_timeout(fs: FakeStat) -> None:
    """truncate(2) modifies without a close: don't wait forever."""
    settler = inotify_settler(fs)
    fs.write(A, 0, 5)
    settler.modified(A, 0.0)
    assert settler.due(59.9) == []
    assert settler.due(60.0) == [A]


def test_created_without_write_needs_settle_seconds(fs: FakeStat) -> None:
    settler = inotify_settler(fs)
    fs.write(A, 0, 1)
    settler.created(A, 0.0)
    assert settler.due(1.9) == []
    assert settler.due(2.0) == [A]


def test_a_created_file_still_held_open_waits_for_its_close(fs: FakeStat) -> None:
    """dd or curl create their output, then wait on a slow source: the empty file a writer still
    holds is not ready after settle_seconds (it was once sent empty); its close is."""
    holders = FakeHolders(default=False)
    settler = probing_settler(fs, holders)
    fs.write(A, 0, 1)
    holders.held[A] = True
    settler.created(A, 0.0)
    assert settler.due(2.0) == []
    assert settler.due(30.0) == []
    fs.write(A, 10, 2)
    settler.modified(A, 30.0)
    holders.held[A] = False
    settler.closed(A, 31.0)
    assert settler.due(31.0) == [A]


def test_a_created_file_held_open_in_silence_goes_after_the_open_write_timeout(
    fs: FakeStat,
) -> None:
    holders = FakeHolders(default=True)
    settler = probing_settler(fs, holders)
    fs.write(A, 0, 1)
    settler.created(A, 0.0)
    assert settler.due(2.0) == []  # held: now waits as a writer without a close does
    assert settler.due(61.9) == []
    assert settler.due(62.0) == [A]


def test_a_created_file_no_writer_holds_is_ready_after_settle_seconds(fs: FakeStat) -> None:
    holders = FakeHolders(default=False)
    settler = probing_settler(fs, holders)
    fs.write(A, 0, 1)
    settler.created(A, 0.0)
    assert settler.due(2.0) == [A]
    assert holders.asked == [A]


def test_arrived_by_rename_is_ready_after_quiet(fs: FakeStat) -> None:
    settler = inotify_settler(fs)
    fs.write(A, 10, 1)
    settler.arrived(A, 0.0)
    assert settler.due(0.5) == [A]


def test_change_without_an_event_restarts_the_wait(fs: FakeStat) -> None:
    settler = inotify_settler(fs)
    fs.write(A, 10, 1)
    settler.closed(A, 0.0)
    fs.write(A, 20, 2)  # e.g. events lost
    assert settler.due(0.5) == []
    assert settler.next_deadline() == pytest.approx(1.0)
    assert settler.due(1.0) == [A]


def test_file_deleted_before_it_settles_is_dropped(fs: FakeStat) -> None:
    settler = inotify_settler(fs)
    fs.write(A, 10, 1)
    fs.write(B, 10, 1)
    settler.closed(A, 0.0)
    settler.closed(B, 0.0)
    del fs.keys[A]  # vanished without a delete event
    settler.removed(B)  # delete event
    assert settler.due(10.0) == []
    assert len(settler) == 0
    assert settler.next_deadline() is None


def test_without_close_events_size_and_mtime_must_hold_for_settle_seconds(fs: FakeStat) -> None:
    settler = Settler(settle_seconds=2.0, close_events=False, stat=fs)
    fs.write(A, 1, 1)
    settler.created(A, 0.0)
    fs.write(A, 2, 2)
    settler.modified(A, 1.0)
    settler.closed(A, 1.0)  # ignored as a shortcut: no close events on this platform
    assert settler.due(2.9) == []
    assert settler.due(3.0) == [A]


def test_due_reports_in_deadline_order(fs: FakeStat) -> None:
    settler = inotify_settler(fs)
    fs.write(A, 1, 1)
    fs.write(B, 1, 1)
    settler.created(A, 0.0)
    settler.closed(B, 1.0)
    assert settler.due(10.0) == [B, A]


# -- Watcher adapter with scripted events and a fake clock ---------------------------------------


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "Exports"
    root.mkdir()
    return root


class Recorder:
    def __init__(self) -> None:
        self.paths: list[Path] = []
        self.batches: list[list[Path]] = []

    def __call__(self, paths: list[Path]) -> None:
        self.batches.append(list(paths))
        self.paths.extend(paths)


def scripted(
    folder: Path, *, matcher: FileMatcher | None = None, rescan_seconds: float | None = None
) -> tuple[Watcher, FakeClock, Recorder]:
    clock = FakeClock()
    seen = Recorder()
    watcher = Watcher(
        WatchConfig(folder, settle_seconds=2.0),
        matcher or FileMatcher(),
        seen,
        clock=clock,
        rescan_seconds=rescan_seconds,
    )
    # These tests script inotify-style events whatever the platform.
    watcher.settler.close_events = True
    return watcher, clock, seen


@linux_only
def test_close_event_reaches_on_ready_at_once_and_once(folder: Path) -> None:
    """The real lease probe finds no writer: no quiet period (the fake clock never moves)."""
    watcher, clock, seen = scripted(folder)
    path = folder / "a.csv"
    path.write_text("x")
    watcher.dispatch(FileModifiedEvent(str(path)))
    watcher.dispatch(FileClosedEvent(str(path)))
    assert watcher.run_pending() == [path]
    clock.advance(10)
    assert watcher.run_pending() == []
    assert seen.paths == [path]


def test_ignored_and_unmatched_names_are_never_pending(folder: Path) -> None:
    watcher, _, _ = scripted(folder)
    for name in (".a.csv", "a.csv.tmp", "a.part", "a.csv~", "notes.txt", "sent/a.csv"):
        watcher.dispatch(FileClosedEvent(str(folder / name)))
    assert len(watcher.settler) == 0


def test_directory_with_matching_name_is_not_pending(folder: Path) -> None:
    watcher, _, _ = scripted(folder)
    (folder / "dir.csv").mkdir()
    watcher.dispatch(FileCreatedEvent(str(folder / "dir.csv")))
    assert len(watcher.settler) == 0


def test_a_burst_is_offered_in_slices_of_offer_batch_in_the_order_it_came(folder: Path) -> None:
    watcher, _, seen = scripted(folder)
    names = [folder / f"f{i:05d}.csv" for i in range(2 * OFFER_BATCH + 7)]
    for path in names:
        path.write_text("x")
        watcher.dispatch(FileClosedEvent(str(path)))
    while watcher.run_pending():
        pass
    assert [len(b) for b in seen.batches] == [OFFER_BATCH, OFFER_BATCH, 7]
    assert seen.paths == names
    assert len(watcher.settler) == 0


def test_posted_jobs_run_first_in_the_next_step_and_count_as_busy(folder: Path) -> None:
    watcher, _, _ = scripted(folder)
    path = folder / "a.csv"
    path.write_text("x")
    watcher.post(lambda: watcher.dispatch(FileClosedEvent(str(path))))
    assert watcher.busy()  # seen (its events are in), not yet handed on
    assert watcher.run_pending() == [path]
    assert not watcher.busy()


def test_a_step_runs_the_jobs_posted_before_it_began_and_offers_what_they_made_ready(
    folder: Path,
) -> None:
    """A reader that never pauses (its next job is always posted while the step runs) does not
    keep the files already seen from being offered."""
    watcher, _, seen = scripted(folder)
    names = [folder / f"f{i}.csv" for i in range(3)]
    for path in names:
        path.write_text("x")

    def job(i: int) -> None:
        watcher.dispatch(FileClosedEvent(str(names[i])))
        if i + 1 < len(names):
            watcher.post(lambda: job(i + 1))  # the next read, meanwhile

    watcher.post(lambda: job(0))
    assert watcher.run_pending() == [names[0]]
    assert watcher.busy()  # the next job waits for the next step
    assert watcher.run_pending() == [names[1]]
    assert watcher.run_pending() == [names[2]]
    assert not watcher.busy()
    assert seen.paths == names


def test_after_lost_events_a_file_waiting_for_its_close_is_looked_at_afresh(folder: Path) -> None:
    """Its close may be among the events lost (an overflow): it must not wait out the open-write
    timeout (a minute) when no writer holds it."""
    watcher, clock, seen = scripted(folder)
    path = folder / "a.csv"
    path.write_text("x")
    watcher.settler._holders = lambda _path: False  # no writer holds it (as the lease says)
    watcher.dispatch(FileModifiedEvent(str(path)))  # its close is lost
    clock.advance(1.0)
    assert watcher.run_pending() == []
    watcher.notify_overflow()
    watcher.run_pending()
    clock.advance(watcher.settler.settle_seconds)
    assert watcher.run_pending() == [path]
    assert seen.paths == [path]


def test_a_posted_job_that_raises_does_not_stop_the_others(folder: Path) -> None:
    watcher, _, _ = scripted(folder)
    path = folder / "a.csv"
    path.write_text("x")

    def boom() -> None:
        raise RuntimeError("a bug in one job")

    watcher.post(boom)
    watcher.post(lambda: watcher.dispatch(FileClosedEvent(str(path))))
    with capture_logs() as logs:
        assert watcher.run_pending() == [path]
    assert "watch_event_failed" in [e["event"] for e in logs]


@linux_only
def test_a_fast_writers_burst_is_offered_whole_without_waiting_for_a_lost_close(
    folder: Path,
) -> None:
    """A writer in a process of its own, as fast as it can: every file is offered, none waits
    for a close the watcher never saw (here the open-write timeout is an hour)."""
    offered: set[str] = set()
    done = threading.Event()
    count = 3000

    def ready(paths: list[Path]) -> None:
        offered.update(p.name for p in paths)
        if len(offered) >= count:
            done.set()

    watcher = Watcher(WatchConfig(folder, settle_seconds=0.5), FileMatcher(), ready)
    watcher.settler.open_write_timeout = 3600.0
    writer = (
        "import sys\n"
        "for i in range(int(sys.argv[2])):\n"
        "    with open(f'{sys.argv[1]}/f{i:05d}.csv', 'wb') as f: f.write(b'id\\n1\\n')\n"
    )
    with capture_logs() as logs:
        watcher.start()
        try:
            subprocess.run([sys.executable, "-c", writer, str(folder), str(count)], check=True)
            assert done.wait(DEADLINE), f"{count - len(offered)} files never offered"
        finally:
            watcher.stop()
    assert "watch_overflow_rescan" not in [e["event"] for e in logs]


@linux_only
def test_inotify_events_are_acted_on_by_the_watchers_own_thread(folder: Path) -> None:
    """The reader thread only reads: a file's lstat and lease probe run on the thread that
    records files, so the two do not hand the GIL to each other at every system call."""
    ready = Ready()
    watcher = Watcher(WatchConfig(folder, settle_seconds=0.2), FileMatcher(), ready)
    threads: set[str] = set()
    closed = watcher.settler.closed

    def on_closed(path: Path, now: float) -> None:
        threads.add(threading.current_thread().name)
        closed(path, now)

    watcher.settler.closed = on_closed  # type: ignore[method-assign]
    watcher.start()
    try:
        (folder / "a.csv").write_text("a\n")
        ready.wait_for(folder / "a.csv")
    finally:
        watcher.stop()
    assert threads == {"exportsync-watcher"}


def test_rsync_style_rename_into_place(folder: Path) -> None:
    watcher, clock, seen = scripted(folder)
    temp, final = folder / ".a.csv.Xy12Z", folder / "a.csv"
    temp.write_text("x")
    watcher.dispatch(FileClosedEvent(str(temp)))
    temp.rename(final)
    watcher.dispatch(FileMovedEvent(str(temp), str(final)))
    clock.advance(0.5)
    watcher.run_pending()
    assert seen.paths == [final]


def test_moved_in_from_outside_and_moved_away(folder: Path) -> None:
    watcher, clock, seen = scripted(folder)
    (folder / "in.csv").write_text("x")
    (folder / "out.csv").write_text("x")
    watcher.dispatch(FileClosedEvent(str(folder / "out.csv")))
    watcher.dispatch(FileMovedEvent("", str(folder / "in.csv")))  # unmatched IN_MOVED_TO
    watcher.dispatch(FileMovedEvent(str(folder / "out.csv"), ""))  # unmatched IN_MOVED_FROM
    clock.advance(0.5)
    watcher.run_pending()
    assert seen.paths == [folder / "in.csv"]


def test_deleted_before_ready_is_never_reported(folder: Path) -> None:
    watcher, clock, seen = scripted(folder)
    path = folder / "a.csv"
    path.write_text("x")
    watcher.dispatch(FileClosedEvent(str(path)))
    path.unlink()
    watcher.dispatch(FileDeletedEvent(str(path)))
    clock.advance(5)
    watcher.run_pending()
    assert seen.paths == []


def test_files_ready_together_reach_on_ready_in_one_call(folder: Path) -> None:
    watcher, clock, seen = scripted(folder)
    for name in ("a.csv", "b.csv", "c.csv"):
        (folder / name).write_text("x")
        watcher.dispatch(FileCreatedEvent(str(folder / name)))
    clock.advance(2)
    watcher.run_pending()
    assert [[p.name for p in batch] for batch in seen.batches] == [["a.csv", "b.csv", "c.csv"]]


def test_a_failing_on_ready_is_logged_and_the_watcher_goes_on(folder: Path) -> None:
    clock = FakeClock()
    seen: list[list[Path]] = []

    def on_ready(paths: list[Path]) -> None:
        seen.append(paths)
        if len(seen) == 1:
            raise RuntimeError("spool full")

    watcher = Watcher(
        WatchConfig(folder), FileMatcher(), on_ready, clock=clock, rescan_seconds=None
    )
    for name in ("a.csv", "b.csv"):
        (folder / name).write_text("x")
        watcher.dispatch(FileCreatedEvent(str(folder / name)))
    clock.advance(2)
    with capture_logs() as logs:
        watcher.run_pending()
    (folder / "c.csv").write_text("x")
    watcher.dispatch(FileCreatedEvent(str(folder / "c.csv")))
    clock.advance(2)
    watcher.run_pending()
    assert [[p.name for p in batch] for batch in seen] == [["a.csv", "b.csv"], ["c.csv"]]
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["on_ready_failed"]


def test_an_event_that_fails_to_dispatch_is_logged_not_raised(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exception would end watchdog's dispatch thread; the log call itself must not raise."""
    watcher, _, _ = scripted(folder)

    def broken(_event: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(watcher, "_dispatch", broken)
    with capture_logs() as logs:
        watcher.dispatch(FileCreatedEvent(str(folder / "a.csv")))
    assert [(e["event"], e["fs_event"]) for e in logs] == [("watch_event_failed", "created")]


def test_a_path_on_ready_refused_is_offered_again_by_the_next_rescan(folder: Path) -> None:
    clock = FakeClock()
    attempts: list[Path] = []

    def on_ready(paths: list[Path]) -> None:
        attempts.extend(paths)
        if len(attempts) == 1:
            raise OSError("disk full")

    watcher = Watcher(WatchConfig(folder), FileMatcher(), on_ready, clock=clock, rescan_seconds=60)
    watcher._next_rescan = clock.monotonic() + 60  # as start() would
    path = folder / "a.csv"
    path.write_text("x")
    watcher.dispatch(FileClosedEvent(str(path)))
    clock.advance(0.5)
    watcher.run_pending()
    clock.advance(60)
    watcher.run_pending()
    clock.advance(2)
    watcher.run_pending()
    assert attempts == [path, path]


def test_reconsider_makes_a_scanned_path_eligible_again(folder: Path) -> None:
    watcher, clock, seen = scripted(folder, rescan_seconds=60)
    watcher._next_rescan = clock.monotonic() + 60
    (folder / "a.csv").write_text("x")
    (folder / "b.csv").write_text("x")
    watcher.scan()
    watcher.reconsider(folder / "b.csv")
    clock.advance(60)
    watcher.run_pending()
    clock.advance(2)
    watcher.run_pending()
    assert seen.paths == [folder / "b.csv"]


def test_a_path_that_could_not_be_recorded_is_offered_again_within_seconds(
    folder: Path,
) -> None:
    """A file met while the state disk was full waited for the periodic rescan (5 minutes)."""
    watcher, clock, seen = scripted(folder, rescan_seconds=300)
    watcher._next_rescan = clock.monotonic() + 300
    (folder / "b.csv").write_text("x")
    watcher.scan()
    watcher.reconsider(folder / "b.csv")  # what the daemon does when the spool write failed
    clock.advance(RETRY_RESCAN_SECONDS)
    watcher.run_pending()
    clock.advance(2)
    watcher.run_pending()
    assert seen.paths == [folder / "b.csv"]


def test_a_batch_on_ready_could_not_take_is_offered_again_within_seconds(folder: Path) -> None:
    """The daemon's on_ready raises when its spool write fails (a full disk): the files were
    offered again only at the next periodic rescan, 5 minutes later."""
    clock = FakeClock()
    attempts: list[list[Path]] = []

    def on_ready(paths: list[Path]) -> None:
        attempts.append(paths)
        if len(attempts) == 1:
            raise OSError("disk full")

    watcher = Watcher(WatchConfig(folder), FileMatcher(), on_ready, clock=clock, rescan_seconds=300)
    watcher._next_rescan = clock.monotonic() + 300
    path = folder / "a.csv"
    path.write_text("x")
    watcher.dispatch(FileClosedEvent(str(path)))
    clock.advance(0.5)
    watcher.run_pending()
    clock.advance(RETRY_RESCAN_SECONDS)
    watcher.run_pending()
    clock.advance(2)
    watcher.run_pending()
    assert attempts == [[path], [path]]


def test_scan_finds_matching_entries_including_symlinks(folder: Path) -> None:
    for name in ("a.csv", "b.session.json", ".hidden.csv", "c.tmp", "notes.txt"):
        (folder / name).write_text("x")
    (folder / "link.csv").symlink_to("/etc/passwd")
    (folder / "dir.csv").mkdir()
    (folder / "sub").mkdir()
    (folder / "sub" / "deep.csv").write_text("x")
    os.mkfifo(folder / "pipe.csv")
    watcher, _, _ = scripted(folder)
    assert [p.name for p in watcher.scan()] == [
        "a.csv",
        "b.session.json",
        "link.csv",
        "pipe.csv",
    ]


def test_scan_recursive_skips_sent_and_ignored_dirs(folder: Path, tmp_path: Path) -> None:
    for rel in ("a.csv", "sub/b.csv", "sub/deeper/c.csv", "sent/old.csv", ".git/d.csv"):
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text("x")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "e.csv").write_text("x")
    (folder / "linked").symlink_to(outside)  # never descended into
    watcher, _, _ = scripted(folder, matcher=FileMatcher(recursive=True))
    assert [p.relative_to(folder).as_posix() for p in watcher.scan()] == [
        "a.csv",
        "sub/b.csv",
        "sub/deeper/c.csv",
    ]


def test_overflow_rescans_and_reports_what_events_missed(folder: Path) -> None:
    overflows: list[bool] = []
    clock = FakeClock()
    seen = Recorder()
    watcher = Watcher(
        WatchConfig(folder),
        FileMatcher(),
        seen,
        clock=clock,
        on_overflow=lambda: overflows.append(True),
        rescan_seconds=None,
    )
    (folder / "known.csv").write_text("x")
    assert watcher.scan() == [folder / "known.csv"]  # the daemon's start-up scan
    (folder / "missed.csv").write_text("x")  # its events were lost
    watcher.notify_overflow()
    with capture_logs() as logs:
        watcher.run_pending()
    assert overflows == [True]
    assert "watch_overflow_rescan" in [e["event"] for e in logs]
    clock.advance(2)
    watcher.run_pending()
    assert seen.paths == [folder / "missed.csv"]


def test_with_the_callers_comparison_nothing_is_kept_per_file(folder: Path) -> None:
    """The daemon compares a rescan with the spool (`changed`): the watcher keeps no record of
    the files it reported, which after a burst or a large folder's start-up scan would hold every
    name it ever saw; a rescan still finds what changed, through `changed`."""
    clock = FakeClock()
    seen = Recorder()
    compared: list[list[str]] = []

    def changed(found: list[tuple[str, StatKey]]) -> list[tuple[str, StatKey]]:
        compared.append(sorted(Path(name).name for name, _ in found))
        return [(name, key) for name, key in found if Path(name).name == "missed.csv"]

    watcher = Watcher(
        WatchConfig(folder, settle_seconds=2.0),
        FileMatcher(),
        seen,
        clock=clock,
        rescan_seconds=None,
        changed=changed,
    )
    watcher.settler.close_events = True
    for i in range(50):
        (folder / f"f{i:02d}.csv").write_text("x")
    assert len(watcher.scan_entries()) == 50
    late = folder / "late.csv"
    late.write_text("x")
    watcher.dispatch(FileClosedEvent(str(late)))
    clock.advance(2)
    assert watcher.run_pending() == [late]
    assert watcher._reported == {}
    (folder / "missed.csv").write_text("x")  # its events were lost
    watcher.notify_overflow()
    watcher.run_pending()
    clock.advance(2)
    watcher.run_pending()
    assert compared
    assert "missed.csv" in compared[0]
    assert seen.paths == [late, folder / "missed.csv"]


def test_periodic_rescan_reports_only_new_or_changed_files(folder: Path) -> None:
    watcher, clock, seen = scripted(folder, rescan_seconds=300)
    watcher._next_rescan = clock.monotonic() + 300  # as start() would
    (folder / "old.csv").write_text("x")
    (folder / "changed.csv").write_text("x")
    watcher.scan()
    (folder / "changed.csv").write_text("longer")
    (folder / "new.csv").write_text("x")
    clock.advance(300)
    watcher.run_pending()
    clock.advance(2)
    watcher.run_pending()
    assert sorted(p.name for p in seen.paths) == ["changed.csv", "new.csv"]
    clock.advance(300)
    watcher.run_pending()
    clock.advance(2)
    watcher.run_pending()
    assert len(seen.paths) == 2  # nothing changed since: nothing re-reported


# -- real inotify / polling ----------------------------------------------------------------------

DEADLINE = 10.0


class Ready:
    """Collects on_ready calls with the size each file had at that moment."""

    def __init__(self) -> None:
        self.calls: queue.Queue[tuple[Path, int | None]] = queue.Queue()
        self.history: list[tuple[Path, int | None]] = []

    def __call__(self, paths: list[Path]) -> None:
        for path in paths:
            try:
                size: int | None = os.lstat(path).st_size
            except FileNotFoundError:
                size = None
            self.calls.put((path, size))

    def wait_for(self, path: Path) -> list[tuple[Path, int | None]]:
        """Every call up to and including the first one for `path`; fails at the deadline."""
        deadline = time.monotonic() + DEADLINE
        got: list[tuple[Path, int | None]] = []
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no on_ready for {path.name}; got {got}"
            call = self.calls.get(timeout=remaining)
            got.append(call)
            self.history.append(call)
            if call[0] == path:
                return got

    def drain(self) -> list[tuple[Path, int | None]]:
        while True:
            try:
                self.history.append(self.calls.get_nowait())
            except queue.Empty:
                return self.history


WatchFactory = Callable[..., tuple[Watcher, Ready]]


@pytest.fixture
def watch(folder: Path) -> Iterator[WatchFactory]:
    started: list[Watcher] = []

    def factory(**kwargs: object) -> tuple[Watcher, Ready]:
        ready = Ready()
        matcher = kwargs.pop("matcher", FileMatcher())
        assert isinstance(matcher, FileMatcher)
        config = WatchConfig(
            folder,
            settle_seconds=float(kwargs.pop("settle_seconds", 0.4)),  # type: ignore[arg-type]
            use_polling=bool(kwargs.pop("use_polling", False)),
        )
        if "poll_interval" in kwargs:
            kwargs["pace"] = RootPace(poll_interval=float(kwargs.pop("poll_interval")))  # type: ignore[arg-type]
        options: dict[str, object] = {"rescan_seconds": None, **kwargs}
        watcher = Watcher(config, matcher, ready, **options)  # type: ignore[arg-type]
        watcher.start()
        started.append(watcher)
        return watcher, ready

    yield factory
    for watcher in started:
        watcher.stop()


def _sentinel(folder: Path, ready: Ready, name: str = "zz-sentinel.csv") -> None:
    """Write one more file and wait for it: events before it have been handled by then."""
    (folder / name).write_text("done")
    ready.wait_for(folder / name)


def _pause(seconds: float) -> None:
    """The writer's think time between chunks: input to the test, not a wait for a result."""
    threading.Event().wait(seconds)


@linux_only
def test_slow_writer_with_one_handle_is_reported_only_complete(
    folder: Path, watch: WatchFactory
) -> None:
    _, ready = watch()
    path = folder / "slow.csv"
    with path.open("wb") as f:
        for _ in range(3):
            f.write(b"x" * 1000)
            f.flush()
            _pause(0.6)  # longer than the 0.4 s quiet period
    ready.wait_for(path)
    _sentinel(folder, ready)
    calls = [size for p, size in ready.drain() if p == path]
    assert calls == [3000]


@linux_only
def test_open_append_close_repeatedly_reports_only_closed_versions(
    folder: Path, watch: WatchFactory
) -> None:
    """Each close is a complete version (the spool supersedes the older); the last is whole."""
    _, ready = watch(settle_seconds=1.0)
    path = folder / "append.csv"
    for _ in range(5):
        with path.open("ab") as f:
            f.write(b"row\n")
        _pause(0.05)
    _sentinel(folder, ready)
    sizes = [size for p, size in ready.drain() if p == path]
    assert sizes
    assert sizes[-1] == 20
    assert all(size is not None and size % 4 == 0 for size in sizes)


class FrozenClock(FakeClock):
    """Time that never moves, with a real wait: a quiet period never ends, yet nothing spins."""

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        return stop.wait(min(seconds, 0.2))


@linux_only
def test_a_closed_file_is_reported_without_a_quiet_period(
    folder: Path, watch: WatchFactory
) -> None:
    """With time frozen only a file due at its close can be reported (the feature's proof)."""
    _, ready = watch(settle_seconds=30.0, clock=FrozenClock())
    path = folder / "closed.csv"
    with path.open("wb") as f:
        f.write(b"id\n1\n")
    assert ready.wait_for(path) == [(path, 5)]


@linux_only
def test_a_close_while_another_writer_holds_the_file_waits_for_that_writer(
    folder: Path, watch: WatchFactory
) -> None:
    _, ready = watch(settle_seconds=30.0, clock=FrozenClock())
    path = folder / "shared.csv"
    with path.open("ab") as first:
        first.write(b"a\n")
        first.flush()
        with path.open("ab") as second:
            second.write(b"b\n")
        # `second` closed while `first` still holds the file: not ready yet.
        _sentinel(folder, ready)
        assert [p for p, _ in ready.drain() if p == path] == []
        first.write(b"c\n")
    assert ready.wait_for(path)[-1] == (path, 6)


@linux_only
def test_rename_into_place_and_move_in_from_another_dir(
    folder: Path, tmp_path: Path, watch: WatchFactory
) -> None:
    _, ready = watch()
    temp = folder / ".renamed.csv.Ab12Cd"
    temp.write_text("rsync")
    temp.rename(folder / "renamed.csv")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "moved.csv").write_text("moved")
    (elsewhere / "moved.csv").rename(folder / "moved.csv")
    ready.wait_for(folder / "renamed.csv")
    ready.wait_for(folder / "moved.csv")
    names = {p.name for p, _ in ready.drain()}
    assert names == {"renamed.csv", "moved.csv"}


@linux_only
def test_unicode_spaces_and_zero_bytes(folder: Path, watch: WatchFactory) -> None:
    _, ready = watch()
    path = folder / "Résumé 2024 — ü ß.CSV"
    path.touch()
    got = ready.wait_for(path)
    assert got[-1] == (path, 0)
    assert snapshot(folder, path).size == 0


@linux_only
def test_ignored_temp_files_are_never_reported(folder: Path, watch: WatchFactory) -> None:
    _, ready = watch()
    for name in (".hidden.csv", "a.csv.tmp", "b.csv.part", "c.csv~", "notes.txt"):
        (folder / name).write_text("x")
    _sentinel(folder, ready)
    assert [p.name for p, _ in ready.drain()] == ["zz-sentinel.csv"]


class _Opens(FileSystemEventHandler):
    def __init__(self) -> None:
        self.opened: queue.Queue[str] = queue.Queue()

    def on_opened(self, event: FileSystemEvent) -> None:
        self.opened.put(os.path.basename(os.fsdecode(event.src_path)))


@linux_only
def test_symlink_out_of_the_folder_is_reported_and_rejected_never_read(
    folder: Path, tmp_path: Path, watch: WatchFactory
) -> None:
    # Running as root, a mode-000 target would still be readable; watch the target for IN_OPEN
    # instead, with a sentinel open after it to know every earlier event has arrived.
    outside = tmp_path / "outside"
    outside.mkdir()
    target = outside / "secret.csv"
    target.write_text("never read")
    opens = _Opens()
    spy = Observer()
    spy.schedule(opens, str(outside), event_filter=[FileOpenedEvent])
    spy.start()
    try:
        _, ready = watch()
        (folder / "secret.csv").symlink_to(target)
        (folder / "passwd.csv").symlink_to("/etc/passwd")
        ready.wait_for(folder / "secret.csv")
        ready.wait_for(folder / "passwd.csv")
        with pytest.raises(FileRejected, match="outside the watched folder"):
            snapshot(folder, folder / "secret.csv")
        with pytest.raises(FileRejected, match=r"symlink to '/etc/passwd'"):
            snapshot(folder, folder / "passwd.csv")
        (outside / "sentinel").write_text("x")  # open() for writing: IN_OPEN
        seen: list[str] = []
        while "sentinel" not in seen:
            seen.append(opens.opened.get(timeout=DEADLINE))
        assert "secret.csv" not in seen
    finally:
        spy.stop()
        spy.join()


@linux_only
def test_fifo_does_not_hang_anything(folder: Path, watch: WatchFactory) -> None:
    _, ready = watch()
    fifo = folder / "pipe.csv"
    os.mkfifo(fifo)
    ready.wait_for(fifo)
    with pytest.raises(FileRejected, match="fifo"):
        snapshot(folder, fifo)


@linux_only
def test_file_deleted_before_it_settles_is_not_reported(folder: Path, watch: WatchFactory) -> None:
    _, ready = watch()
    doomed = folder / "doomed.csv"
    with doomed.open("w") as writer:  # held open: not ready yet
        writer.write("x")
        writer.flush()
        doomed.unlink()
    _sentinel(folder, ready)
    assert [p.name for p, _ in ready.drain()] == ["zz-sentinel.csv"]


@linux_only
def test_watchdog_overflow_warning_triggers_a_rescan(folder: Path, watch: WatchFactory) -> None:
    """watchdog only logs IN_Q_OVERFLOW; the Watcher hears that log record and rescans."""
    # Stand-in for a file whose events the kernel dropped: it exists before the watch starts, and
    # nobody scanned, so only a rescan can find it.
    missed = folder / "missed.csv"
    missed.write_text("x")
    overflowed = threading.Event()
    _, ready = watch(on_overflow=overflowed.set)
    logging.getLogger("watchdog.observers.inotify_c").warning(
        "Inotify queue overflowed; filesystem events were lost"
    )
    assert overflowed.wait(DEADLINE)
    assert ready.wait_for(missed)[-1] == (missed, 1)


@linux_only
# watchdog's inotify thread warns when `mkdir -p` races its recursive watch registration (the same
# directory is added twice); harmless, but under filterwarnings=error it would kill that thread.
@pytest.mark.filterwarnings("ignore:Callback with id .* already exists:RuntimeWarning")
def test_recursive_watch_sees_new_subfolders_but_not_sent(
    folder: Path, watch: WatchFactory
) -> None:
    _, ready = watch(matcher=FileMatcher(recursive=True))
    (folder / "2024" / "jan").mkdir(parents=True)
    (folder / "2024" / "jan" / "deep.csv").write_text("x")
    (folder / "sent").mkdir()
    (folder / "sent" / "old.csv").write_text("x")
    ready.wait_for(folder / "2024" / "jan" / "deep.csv")
    _sentinel(folder, ready)
    assert [p.relative_to(folder).as_posix() for p, _ in ready.drain()] == [
        "2024/jan/deep.csv",
        "zz-sentinel.csv",
    ]


def test_polling_observer_settles_on_size_and_mtime(folder: Path, watch: WatchFactory) -> None:
    watcher, ready = watch(use_polling=True, poll_interval=0.1, settle_seconds=0.3)
    assert not watcher.settler.close_events
    path = folder / "polled.csv"
    path.write_text("a,b\n1,2\n")
    assert ready.wait_for(path)[-1] == (path, 8)


def test_a_folder_missing_at_start_is_waited_for_then_watched(tmp_path: Path) -> None:
    before = threading.active_count()
    folder = tmp_path / "not-yet"
    ready = Ready()
    watcher = Watcher(
        WatchConfig(folder, settle_seconds=0.4),
        FileMatcher(),
        ready,
        pace=RootPace(health_seconds=0.1),
    )
    with capture_logs() as logs:
        watcher.start()
        try:
            assert watcher.missing
            assert watcher.scan() == []
            folder.mkdir()
            assert _until(lambda: not watcher.missing)
            (folder / "a.csv").write_text("a\n")
            ready.wait_for(folder / "a.csv")
        finally:
            watcher.stop()
    events = [e["event"] for e in logs]
    assert events.count("watch_dir_missing") == 1
    assert "watch_dir_restored" in events
    assert _until(lambda: threading.active_count() == before)


def test_a_folder_deleted_and_recreated_is_watched_again(folder: Path) -> None:
    ready = Ready()
    watcher = Watcher(
        WatchConfig(folder, settle_seconds=0.4),
        FileMatcher(),
        ready,
        pace=RootPace(health_seconds=0.1),
    )
    with capture_logs() as logs:
        watcher.start()
        try:
            (folder / "a.csv").write_text("a\n")
            ready.wait_for(folder / "a.csv")
            shutil.rmtree(folder)
            assert _until(lambda: watcher.missing)
            folder.mkdir()
            (folder / "b.csv").write_text("b\n")  # may land before the new watch: the rescan
            ready.wait_for(folder / "b.csv")
            (folder / "c.csv").write_text("c\n")  # after it: the new watch's events
            ready.wait_for(folder / "c.csv")
            assert not watcher.missing
        finally:
            watcher.stop()
    assert [e["event"] for e in logs].count("watch_dir_missing") == 1


def test_a_folder_swapped_for_another_between_checks_is_watched_again(folder: Path) -> None:
    """Gone and back before the next check (or a watch the kernel dropped): a new inode."""
    ready = Ready()
    watcher = Watcher(
        WatchConfig(folder, settle_seconds=0.4),
        FileMatcher(),
        ready,
        pace=RootPace(health_seconds=0.1),
    )
    watcher.start()
    try:
        other = folder.with_name("other")
        other.mkdir()
        folder.rename(folder.with_name("old"))
        other.rename(folder)
        (folder / "d.csv").write_text("d\n")
        ready.wait_for(folder / "d.csv")
    finally:
        watcher.stop()


def test_the_folder_going_and_coming_back_is_seen_through_events_alone(tmp_path: Path) -> None:
    """No timed check while the folder is watched: its deletion comes from its own watch, its
    return from the watch on its parent (the fallback poll is an hour away here)."""
    folder = tmp_path / "export"
    folder.mkdir()
    ready = Ready()
    watcher = Watcher(
        WatchConfig(folder, settle_seconds=0.2),
        FileMatcher(),
        ready,
        rescan_seconds=None,
        pace=RootPace(health_seconds=3600),
    )
    watcher.start()
    try:
        assert watcher._timeout() > 3500  # idle: nothing before the sweep an hour away
        shutil.rmtree(folder)
        assert _until(lambda: watcher.missing)
        folder.mkdir()
        assert _until(lambda: not watcher.missing)
        assert watcher._timeout() > 3500  # watched again: still only the sweep
        (folder / "e.csv").write_text("e\n")
        ready.wait_for(folder / "e.csv")
        other = tmp_path / "other"
        other.mkdir()
        folder.rename(tmp_path / "old")
        other.rename(folder)  # replaced by another directory: a rename seen on the parent
        (folder / "f.csv").write_text("f\n")
        ready.wait_for(folder / "f.csv")
    finally:
        watcher.stop()


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.geteuid() != 0,
    reason="mounting a tmpfs over the folder needs Linux and root",
)
def test_a_file_system_mounted_over_the_folder_is_found_by_the_sweep(tmp_path: Path) -> None:
    """A mount sends no inotify event: the rare sweep sees the folder's new identity, re-arms
    the watch, and a file written on the new file system arrives."""
    folder = tmp_path / "export"
    folder.mkdir()
    ready = Ready()
    watcher = Watcher(
        WatchConfig(folder, settle_seconds=0.2),
        FileMatcher(),
        ready,
        rescan_seconds=None,
        pace=RootPace(health_seconds=0.1, sweep_seconds=0.3),
    )
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)],
        check=False,
        capture_output=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    subprocess.run(["umount", str(folder)], check=True)
    watcher.start()
    try:
        (folder / "before.csv").write_text("a\n")
        ready.wait_for(folder / "before.csv")
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)], check=True)
        try:
            (folder / "after.csv").write_text("b\n")
            ready.wait_for(folder / "after.csv")
        finally:
            watcher.stop()
            subprocess.run(["umount", str(folder)], check=True)
    finally:
        watcher.stop()


def _until(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            return False
        threading.Event().wait(0.02)
    return True


class _NoWatch:
    """An observer whose watch the kernel refuses (inotify's watch limit reached)."""

    def schedule(self, *args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "inotify watch limit reached")

    def start(self) -> None:
        raise AssertionError("never started")

    def stop(self) -> None:
        pass


def test_a_folder_that_cannot_be_watched_is_rescanned_instead(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("exportsync.rootwatch._make_observer", lambda *args: _NoWatch())
    ready = Ready()
    watcher = Watcher(
        WatchConfig(folder, settle_seconds=0.2),
        FileMatcher(),
        ready,
        pace=RootPace(health_seconds=0.1),
    )
    with capture_logs() as logs:
        watcher.start()
        try:
            assert not watcher.missing
            (folder / "a.csv").write_text("a\n")
            ready.wait_for(folder / "a.csv")
        finally:
            watcher.stop()
    assert [e["event"] for e in logs].count("watch_failed") == 1


def test_a_step_that_raises_does_not_end_the_watcher(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ready = Ready()
    watcher = Watcher(
        WatchConfig(folder, settle_seconds=0.2),
        FileMatcher(),
        ready,
        pace=RootPace(health_seconds=0.1),
    )
    real = watcher.settler.due
    calls: list[float] = []

    def due(now: float, limit: int | None = None, **kw: float | None) -> list[Path]:
        calls.append(now)
        if len(calls) == 1:
            raise RuntimeError("a bug in one step")
        return real(now, limit, **kw)

    monkeypatch.setattr(watcher.settler, "due", due)
    with capture_logs() as logs:
        watcher.start()
        try:
            (folder / "b.csv").write_text("b\n")
            ready.wait_for(folder / "b.csv")
        finally:
            watcher.stop()
    assert "watch_step_failed" in [e["event"] for e in logs]


@linux_only
def test_the_lease_probe_tells_a_held_file_from_a_closed_one(folder: Path) -> None:
    path = folder / "probe.csv"
    with path.open("wb") as writer:
        writer.write(b"x")
        assert writer_holds(path) is True
    assert writer_holds(path) is False
    with path.open("rb"):  # a reader is no writer
        assert writer_holds(path) is False
    os.mkfifo(folder / "pipe.csv")
    assert writer_holds(folder / "pipe.csv") is None  # never opened: not a regular file
    assert writer_holds(folder / "gone.csv") is None


def test_busy_while_a_file_settles_or_is_being_offered(folder: Path) -> None:
    """The delivery's quiet window asks this: a file seen and not yet recorded is an arrival."""
    during: list[bool] = []
    clock = FakeClock()
    watcher = Watcher(
        WatchConfig(folder, settle_seconds=2.0),
        FileMatcher(),
        lambda _paths: during.append(watcher.busy()),
        clock=clock,
        rescan_seconds=None,
    )
    assert not watcher.busy()
    (folder / "a.csv").write_text("x")
    watcher.dispatch(FileCreatedEvent(str(folder / "a.csv")))
    assert watcher.busy()  # settling
    clock.advance(2)
    assert watcher.run_pending() == [folder / "a.csv"]
    assert during == [True]  # being read and recorded
    assert not watcher.busy()
