"""RootWatch: the watch folder's own health, one synchronous `check(now)` at a time."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

from structlog.testing import capture_logs
from watchdog.events import FileSystemEvent

from exportsync.rootwatch import RootPace, RootWatch

PACE = RootPace(health_seconds=5.0, sweep_seconds=50.0, poll_interval=0.05)


def _missing(root: RootWatch) -> bool:
    """Read afresh each time (mypy would keep an asserted property narrowed)."""
    return root.missing


def _root_watch(folder: Path, woken: threading.Event) -> RootWatch:
    events: list[FileSystemEvent] = []
    return RootWatch(
        folder,
        recursive=False,
        use_polling=True,  # no inotify: the look is timed, so each step here is explicit
        on_event=events.append,
        wake=woken.set,
        pace=PACE,
    )


def test_a_folder_missing_at_start_is_restored_at_the_next_due_look(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    woken = threading.Event()
    root = _root_watch(folder, woken)
    with capture_logs() as logs:
        root.start(now=0.0)
        try:
            assert _missing(root)
            assert root.next_check is not None
            folder.mkdir()
            assert root.check(now=root.next_check - 0.1) is None  # not due, not asked
            assert _missing(root)
            assert root.check(now=root.next_check) == "restored"
            assert not _missing(root)
        finally:
            root.stop()
    assert [e["event"] for e in logs] == ["watch_dir_missing", "watch_dir_restored"]


def test_changed_asks_for_a_look_before_it_is_due_and_wakes_the_owner(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    woken = threading.Event()
    root = _root_watch(folder, woken)
    root.start(now=0.0)
    try:
        assert not _missing(root)
        shutil.rmtree(folder)
        assert root.check(now=0.1) is None
        assert not _missing(root)  # nobody asked: no look yet
        root.changed()
        assert woken.is_set()
        assert root.check(now=0.2) is None
        assert _missing(root)
    finally:
        root.stop()


def test_an_unchanged_folder_needs_no_rescan(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    root = _root_watch(folder, threading.Event())
    root.start(now=0.0)
    try:
        root.changed()
        assert root.check(now=1.0) is None
        assert not _missing(root)
    finally:
        root.stop()
