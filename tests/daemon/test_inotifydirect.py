"""DirectInotifyObserver: a file's events straight from the inotify reader, the rest as before."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from watchdog.events import (
    DirCreatedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify only")

_FILTER: list[type[FileSystemEvent]] = [
    DirCreatedEvent,
    FileCreatedEvent,
    FileModifiedEvent,
    FileClosedEvent,
    FileMovedEvent,
    FileDeletedEvent,
]


class _Seen:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []
        self.threads: set[str] = set()
        self._cond = threading.Condition()

    def add(self, event: FileSystemEvent) -> None:
        with self._cond:
            self.events.append((type(event).__name__, str(event.src_path), str(event.dest_path)))
            self.threads.add(threading.current_thread().name)
            self._cond.notify_all()

    def wait_for(self, done: Callable[[], bool], timeout: float = 10.0) -> bool:
        with self._cond:
            return self._cond.wait_for(done, timeout)


class _Handler(FileSystemEventHandler):
    def __init__(self, seen: _Seen) -> None:
        self._seen = seen

    def on_any_event(self, event: FileSystemEvent) -> None:
        self._seen.add(event)


def test_file_events_go_straight_to_direct_in_order_and_the_rest_to_the_handler(
    tmp_path: Path,
) -> None:
    from exportsync.inotifydirect import DirectInotifyObserver  # noqa: PLC0415 - Linux only

    direct, handled = _Seen(), _Seen()
    observer = DirectInotifyObserver(direct.add)
    observer.schedule(_Handler(handled), str(tmp_path), recursive=False, event_filter=_FILTER)
    observer.start()
    try:
        a, b = tmp_path / "a.tmp", tmp_path / "a.csv"
        a.write_bytes(b"x")
        a.rename(b)
        b.chmod(0o600)  # IN_ATTRIB: a FileAttribEvent, which the filter keeps out
        b.unlink()
        (tmp_path / "sub").mkdir()
        last = tmp_path / "z.csv"
        last.touch()  # created and closed after the folder: whatever came before is in by then
        expected = [
            ("FileCreatedEvent", str(a), ""),
            ("FileModifiedEvent", str(a), ""),
            ("FileClosedEvent", str(a), ""),
            ("FileMovedEvent", str(a), ""),
            ("FileMovedEvent", "", str(b)),
            ("FileDeletedEvent", str(b), ""),
            ("FileCreatedEvent", str(last), ""),
            ("FileClosedEvent", str(last), ""),
        ]
        # A file's created and modified events read together with its close are dropped (the
        # close says it all); which ones came in the same read is the kernel's timing.
        moot = {expected[0], expected[1], expected[6]}
        assert direct.wait_for(lambda: ("FileClosedEvent", str(last), "") in direct.events)
        assert handled.wait_for(lambda: len(handled.events) >= 1)
    finally:
        observer.stop()
        observer.join()
    assert [e for e in direct.events if e not in moot] == [e for e in expected if e not in moot]
    assert [e for e in expected if e in direct.events] == direct.events  # in the kernel's order
    assert handled.events == [("DirCreatedEvent", str(tmp_path / "sub"), "")]
    # On the reader thread itself, not watchdog's dispatcher (which serves the handler).
    assert direct.threads.isdisjoint(handled.threads)


def test_without_the_direct_path_watchdogs_own_observer_serves(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Where watchdog's inotify internals differ (the module fails to import), the watch still
    gets every file event, through watchdog's own observer."""
    from watchdog.observers.inotify import InotifyObserver  # noqa: PLC0415 -- Linux only

    from exportsync import rootwatch  # noqa: PLC0415 -- after the skip mark

    monkeypatch.setitem(sys.modules, "exportsync.inotifydirect", None)  # import raises
    direct: list[FileSystemEvent] = []
    observer = rootwatch._make_observer(False, 1.0, direct.append)
    assert type(observer) is InotifyObserver
    seen = threading.Event()

    class _Handler(FileSystemEventHandler):
        def on_closed(self, event: FileSystemEvent) -> None:
            seen.set()

    observer.schedule(_Handler(), str(tmp_path))
    observer.start()
    try:
        (tmp_path / "a.csv").write_text("x\n")
        assert seen.wait(10)
    finally:
        observer.stop()
        observer.join(10)
    assert direct == []


def test_the_reader_keeps_no_event_of_a_read_while_it_waits_for_the_next(tmp_path: Path) -> None:
    """watchdog's reader held the last read's events (up to a few thousand after a burst) while
    it waited: objects of the burst kept alive, scattered over the heap, hold it resident."""
    import gc  # noqa: PLC0415 - only this test counts objects
    import time  # noqa: PLC0415 - same

    from watchdog.observers.inotify_c import InotifyEvent  # noqa: PLC0415 - Linux only

    from exportsync.inotifydirect import DirectInotifyObserver  # noqa: PLC0415 - Linux only

    def alive() -> int:
        gc.collect()
        return sum(isinstance(o, InotifyEvent) for o in gc.get_objects())

    direct = _Seen()
    observer = DirectInotifyObserver(direct.add)
    observer.schedule(_Handler(_Seen()), str(tmp_path), recursive=False, event_filter=_FILTER)
    observer.start()
    try:
        for n in range(50):
            (tmp_path / f"{n}.csv").write_bytes(b"x")
        last = ("FileClosedEvent", str(tmp_path / "49.csv"), "")
        assert direct.wait_for(lambda: last in direct.events)
        deadline = time.monotonic() + 5.0
        while alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert alive() == 0
    finally:
        observer.stop()
        observer.join()


def test_an_event_whose_handling_fails_does_not_end_the_reader() -> None:
    """The reader thread runs the daemon's code for every watch: an exception out of one event
    is logged and the next events are still handled (a dead reader would deafen every watch)."""
    from exportsync.inotifydirect import _ReaderFD  # noqa: PLC0415 - Linux only

    handled: list[str] = []

    class _Event:
        def __init__(self, name: str) -> None:
            self.name, self.mask, self.wd, self.is_directory = name, 0, 1, False

    class _Stub:
        def handle_event(self, event: _Event) -> None:
            if event.name == "bad":
                raise RuntimeError("boom")
            handled.append(event.name)

    events: list[Any] = [_Event("a"), _Event("bad"), _Event("b")]
    _ReaderFD._handle(_Stub(), events)  # type: ignore[arg-type]
    assert handled == ["a", "b"]


def _ev(mask: int, name: bytes = b"a.csv", wd: int = 1) -> Any:
    from watchdog.observers.inotify_c import InotifyEvent  # noqa: PLC0415 - Linux only

    return InotifyEvent(wd, mask, 0, name)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("masks", "kept"),
    [
        (["create", "modify", "close"], ["close"]),  # a burst's file: the close says it all
        (["create", "modify"], ["create", "modify"]),  # its close is in a later read
        (["create", "close", "modify"], ["close", "modify"]),  # written again: await a close
        (["create", "delete", "create", "close"], ["create", "delete", "close"]),
        (["create", "moved_from", "close"], ["create", "moved_from", "close"]),
        (["modify", "attrib", "close", "close"], ["close", "close"]),
    ],
)
def test_a_files_events_before_its_close_in_the_same_read_are_moot(
    masks: list[str], kept: list[str]
) -> None:
    from watchdog.observers.inotify_c import InotifyConstants as C  # noqa: PLC0415

    from exportsync.inotifydirect import without_moot  # noqa: PLC0415 - Linux only

    bits = {
        "create": C.IN_CREATE,
        "modify": C.IN_MODIFY,
        "attrib": C.IN_ATTRIB,
        "close": C.IN_CLOSE_WRITE,
        "delete": C.IN_DELETE,
        "moved_from": C.IN_MOVED_FROM,
    }
    names = {v: k for k, v in bits.items()}
    events = [_ev(bits[m]) for m in masks]
    assert [names[e.mask] for e in without_moot(events)] == kept


def test_only_the_same_files_close_makes_its_events_moot() -> None:
    from watchdog.observers.inotify_c import InotifyConstants as C  # noqa: PLC0415

    from exportsync.inotifydirect import without_moot  # noqa: PLC0415 - Linux only

    events = [
        _ev(C.IN_CREATE, b"a.csv"),
        _ev(C.IN_CREATE, b"a.csv", wd=2),  # the same name in another watched folder
        _ev(C.IN_CREATE | C.IN_ISDIR, b"b.csv"),  # a folder: never dropped
        _ev(C.IN_CREATE, b"c.csv"),
        _ev(C.IN_CLOSE_WRITE, b"a.csv"),
    ]
    kept = without_moot(events)
    assert [(e.wd, e.name, e.mask) for e in kept] == [
        (2, b"a.csv", C.IN_CREATE),
        (1, b"b.csv", C.IN_CREATE | C.IN_ISDIR),
        (1, b"c.csv", C.IN_CREATE),
        (1, b"a.csv", C.IN_CLOSE_WRITE),
    ]


def test_the_reader_posts_one_job_at_a_time_which_takes_all_read_until_it_runs() -> None:
    """A fast writer's events come a few per read: one job per read would pile up jobs; the
    waiting job takes every event read until it runs, in order."""
    from watchdog.observers.inotify_c import InotifyConstants as C  # noqa: PLC0415

    from exportsync.inotifydirect import _ReaderFD  # noqa: PLC0415 - Linux only

    jobs: list[Callable[[], None]] = []
    reader = _ReaderFD(jobs.append)
    handled: list[bytes] = []
    reader.handle_event = lambda event: handled.append(event.name)  # type: ignore[method-assign]
    try:
        reader.queue([_ev(C.IN_CLOSE_WRITE, b"a.csv")])
        reader.queue([_ev(C.IN_CLOSE_WRITE, b"b.csv"), _ev(C.IN_CLOSE_WRITE, b"c.csv")])
        assert len(jobs) == 1
        jobs.pop()()
        assert handled == [b"a.csv", b"b.csv", b"c.csv"]
        reader.queue([_ev(C.IN_CLOSE_WRITE, b"d.csv")])
        assert len(jobs) == 1  # the next read, the next job
    finally:
        reader.close()


def test_beyond_the_most_events_queued_they_become_one_overflow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from watchdog.observers.inotify_c import InotifyConstants as C  # noqa: PLC0415

    from exportsync import inotifydirect  # noqa: PLC0415 - Linux only

    monkeypatch.setattr(inotifydirect, "MAX_QUEUED_EVENTS", 3)
    jobs: list[Callable[[], None]] = []
    reader = inotifydirect._ReaderFD(jobs.append)
    handled: list[int] = []
    reader.handle_event = lambda event: handled.append(event.mask)  # type: ignore[method-assign]
    try:
        reader.queue([_ev(C.IN_CLOSE_WRITE, b"a.csv"), _ev(C.IN_CLOSE_WRITE, b"b.csv")])
        reader.queue([_ev(C.IN_CLOSE_WRITE, b"c.csv"), _ev(C.IN_CLOSE_WRITE, b"d.csv")])
        jobs.pop()()
    finally:
        reader.close()
    assert handled == [C.IN_Q_OVERFLOW]  # the folder is rescanned, as after the kernel's own
