"""The watch folder's own health: there, gone, back, or replaced by another directory.

The folder comes and goes (a drive mounted late or re-mounted, a folder the app clears by deleting
it): a missing folder is a state, not an error. The folder is checked (a walk) when an event says it
changed: watchdog reports it deleted (its inotify emitter then stops), or a second, non-recursive
watch on its parent sees an entry of that name created, deleted or renamed. Missing → the watch is
dropped and `watch_dir_missing` logged once; back, or replaced by another directory (a new inode or
device) → a new watch is armed (`watch_dir_restored`) and the owner rescans the folder.

The folder is pinned (`dirfd.pin`): a symlink in the configured path is followed once, at start;
the watch is on the real path found then, and the folder's health is looked at by walking that path
without following a symlink. A folder later replaced by a symlink is missing (`watch_dir_missing`,
reason `symlink`): nothing is watched through it.

Only while the folder is missing or cannot be watched, or its parent cannot be watched, is it also
looked at every `RootPace.health_seconds` (at most `POLLED_HEALTH_SECONDS` without inotify, where
the observer polls anyway). Not covered by any event: a file system mounted over the folder or
unmounted from under it; a sweep every `RootPace.sweep_seconds` sees its new identity and re-arms
the watch, so an idle inotify watcher wakes only that seldom.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from exportsync.fs.dirfd import WatchDirReplaced, open_pinned, pin
from exportsync.logs import get_logger

if TYPE_CHECKING:  # the module itself loads at first use, where inotify is there
    from exportsync.inotifydirect import Post

__all__ = [
    "HEALTH_SECONDS",
    "POLLED_HEALTH_SECONDS",
    "SWEEP_SECONDS",
    "RootPace",
    "RootWatch",
    "has_close_events",
]

_log = get_logger(__name__)

# A plain bool, not sys.platform inline: mypy would call the other branch unreachable.
_LINUX = sys.platform.startswith("linux")
# How often the folder is looked for while it is missing or cannot be watched (events cover the
# rest; this is only the fallback).
HEALTH_SECONDS = 60.0
# Without inotify (polling, FSEvents) no event tells of the folder's return and the observer polls
# anyway: the folder is looked at this often, as before.
POLLED_HEALTH_SECONDS = 2.0
# Even while events cover the folder it is looked at (one stat) this seldom: a file system mounted
# over it or unmounted from under it sends no event, and its new identity re-arms the watch.
SWEEP_SECONDS = 600.0

Recheck = Literal["restored", "unwatched"]
"""What `RootWatch.check` asks of its owner: rescan the folder (quietly when it is there but
could not be watched)."""


def has_close_events(use_polling: bool) -> bool:
    """Only inotify reports close-after-write (and queue overflows); polling and FSEvents settle
    on stillness."""
    return _LINUX and not use_polling


@dataclass(frozen=True)
class RootPace:
    """How the folder and its watches are looked after."""

    # The fallback look while the folder is missing or unwatched.
    health_seconds: float = HEALTH_SECONDS
    # The rare look while events cover it (never more often than `health_seconds`).
    sweep_seconds: float = SWEEP_SECONDS
    # A polling observer's interval.
    poll_interval: float = 1.0


def _dir_identity(root: Path) -> tuple[tuple[int, int] | None, str]:
    """(device, inode) of the pinned folder `root`, reached without following a symlink; or
    None and why not ("missing", or "symlink" when it was replaced by one)."""
    try:
        fd = open_pinned(root)
    except WatchDirReplaced as exc:
        return None, exc.reason
    except OSError:
        return None, "missing"
    try:
        info = os.fstat(fd)
    finally:
        os.close(fd)
    return (info.st_dev, info.st_ino), ""


def _alive(observer: BaseObserver | None) -> bool:
    """The observer runs and so does each of its emitters (inotify's stops when its folder goes)."""
    return (
        observer is not None
        and observer.is_alive()
        and all(emitter.is_alive() for emitter in observer.emitters)
    )


def _watchdog_version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415 - rare

    try:
        return version("watchdog")
    except PackageNotFoundError:
        return "unknown"


def _make_observer(
    use_polling: bool,
    poll_interval: float,
    direct: Callable[[FileSystemEvent], None] | None = None,
    post: Post | None = None,
) -> BaseObserver:
    """`direct`: where a file's events go straight from inotify's reader thread (see
    `inotifydirect`), or from the thread `post` hands them to; without it, or without inotify,
    all events reach the scheduled handler."""
    if use_polling:
        return PollingObserver(timeout=poll_interval)
    if _LINUX:
        from watchdog.observers.inotify import InotifyObserver  # noqa: PLC0415 - Linux-only

        # Full events: a file moved in from outside arrives as FileMovedEvent("", dest) instead of
        # a created event, so it counts as complete at once.
        if direct is not None:
            try:
                from exportsync.inotifydirect import (  # noqa: PLC0415 - likewise
                    DirectInotifyObserver,
                )
            except ImportError:
                # It builds on watchdog's inotify internals; where they differ, watchdog's own
                # way delivers the same events to the handler, only slower in a burst.
                _log.warning("watch_direct_unavailable", watchdog=_watchdog_version())
            else:
                return DirectInotifyObserver(direct, post)
        return InotifyObserver(generate_full_events=True)
    return Observer()


_EVENT_FILTER: list[type[FileSystemEvent]] = [
    DirDeletedEvent,  # only the watched folder's own deletion matters (see _FolderHandler)
    FileCreatedEvent,
    FileModifiedEvent,
    FileClosedEvent,
    FileMovedEvent,
    FileDeletedEvent,
]
_PARENT_FILTER: list[type[FileSystemEvent]] = [DirCreatedEvent, DirDeletedEvent, DirMovedEvent]


class _FolderHandler(FileSystemEventHandler):
    """In the folder: file events go to the owner; the folder's own deletion is a health event."""

    def __init__(self, root: RootWatch, on_event: Callable[[FileSystemEvent], None]) -> None:
        self._root = root
        self._on_event = on_event

    def on_any_event(self, event: FileSystemEvent) -> None:
        if isinstance(event, DirDeletedEvent):
            if os.fsdecode(event.src_path) == str(self._root.real_root):
                self._root.changed()  # the folder itself went: check it now
            return
        self._on_event(event)


class _ParentHandler(FileSystemEventHandler):
    """On the folder's parent: only entries named like the folder matter."""

    def __init__(self, root: RootWatch) -> None:
        self._root = root

    def on_any_event(self, event: FileSystemEvent) -> None:
        real = str(self._root.real_root)  # the parent watched is the pinned folder's
        named = (os.fsdecode(event.src_path), os.fsdecode(event.dest_path or b""))
        if real in named:
            self._root.changed()


class RootWatch:
    """The folder's watch, the watch on its parent, and the timed look that backs them up.

    The owner's timer thread calls `check(now)` once per step (due at `next_check`, or at once
    after `changed()`); `changed()` may be called from any thread and calls `wake` so the owner's
    thread takes its step.
    """

    def __init__(
        self,
        root: Path,
        *,
        recursive: bool,
        use_polling: bool,
        on_event: Callable[[FileSystemEvent], None],
        wake: Callable[[], None],
        pace: RootPace = RootPace(),
        post: Post | None = None,
    ) -> None:
        self.root = Path(os.path.abspath(root))
        # Resolved once (a symlinked watch.dir is followed now, never again): watched and walked.
        self.real_root = pin(self.root)
        self.pace = pace
        self._recursive = recursive
        self._use_polling = use_polling
        self._on_event = on_event
        self._wake = wake
        self._post = post  # where inotify's reader hands its events (see `inotifydirect`)
        self._sweep_seconds = max(pace.health_seconds, pace.sweep_seconds)
        self._observer: BaseObserver | None = None  # made in start(): inotify's starts a thread
        self._parent_observer: BaseObserver | None = None
        self._identity: tuple[int, int] | None = None
        self._event = threading.Event()  # an event said the folder itself changed
        self._next_check: float | None = None  # set once started
        self._missing = False
        self._unwatched = False  # the folder is there but could not be watched

    @property
    def missing(self) -> bool:
        """True while the folder does not exist (the watch waits for it)."""
        return self._missing

    @property
    def next_check(self) -> float | None:
        """When `check` next looks without being asked; None before `start`."""
        return self._next_check

    def start(self, now: float) -> None:
        """Arm the folder's watch (or note it missing) and the watch on its parent."""
        if not self._arm():
            identity, reason = _dir_identity(self.root)
            if identity is None:
                self._went_missing(reason)
        self._arm_parent()
        self._schedule(now)

    def stop(self) -> None:
        """Stop and join both observers."""
        self._disarm()
        parent, self._parent_observer = self._parent_observer, None
        if parent is not None:
            parent.stop()
            if parent.is_alive():
                parent.join()

    def changed(self) -> None:
        """The folder itself may have gone, come back or been replaced: check it now."""
        self._event.set()
        self._wake()

    def check(self, now: float) -> Recheck | None:
        """One look, when due or asked for: re-arm the watch when the folder came back or was
        replaced; drop it while the folder is missing. Says when the owner should rescan."""
        due = self._next_check is not None and now >= self._next_check
        if not (due or self._event.is_set()):
            return None
        self._event.clear()
        try:
            return self._recheck()
        finally:
            if not _alive(self._parent_observer) and self._parent_observer is not None:
                self._parent_observer.stop()  # its parent went too: the fallback poll looks
                self._parent_observer = None
            self._schedule(now)

    def _recheck(self) -> Recheck | None:
        identity, reason = _dir_identity(self.root)
        if identity is not None and identity == self._identity and _alive(self._observer):
            return None
        self._disarm()
        if identity is None:
            self._went_missing(reason)
            return None
        if not self._arm():
            identity, reason = _dir_identity(self.root)
            if identity is None:
                self._went_missing(reason)
                return None
            return "unwatched"  # there, but unwatched: the owner looks at it by rescanning
        _log.info("watch_dir_restored", root=str(self.root), was_missing=self._missing)
        self._missing = False
        if self._parent_observer is None:
            self._arm_parent()
        return "restored"

    def _schedule(self, now: float) -> None:
        """Only a rare sweep while events cover the folder; the slow poll while they do not."""
        covered = _alive(self._observer) and _alive(self._parent_observer)
        pace = self.pace.health_seconds
        if not has_close_events(self._use_polling):
            pace = min(pace, POLLED_HEALTH_SECONDS)
        self._next_check = now + (self._sweep_seconds if covered else pace)

    def _arm(self) -> bool:
        """Start a watchdog observer on the folder; False (and nothing running) when it is not
        there to watch."""
        identity, _ = _dir_identity(self.root)
        if identity is None:
            return False
        handler = _FolderHandler(self, self._on_event)
        observer = _make_observer(
            self._use_polling, self.pace.poll_interval, handler.on_any_event, self._post
        )
        try:
            observer.schedule(
                handler,
                str(self.real_root),
                recursive=self._recursive,
                event_filter=_EVENT_FILTER,
            )
            observer.start()
        except (FileNotFoundError, NotADirectoryError):
            observer.stop()  # gone between the stat and the watch: release inotify's thread
            return False
        except OSError as exc:
            # No watch to be had (inotify's watch or instance limit, permissions): the health
            # check has the folder rescanned at its pace meanwhile and tries again.
            observer.stop()
            if not self._unwatched:
                self._unwatched = True
                _log.error(
                    "watch_failed",
                    root=str(self.root),
                    error=exc.strerror or str(exc),
                    rescan_every_seconds=self.pace.health_seconds,
                )
            return False
        except BaseException:
            observer.stop()
            raise
        self._observer, self._identity = observer, identity
        self._unwatched = False
        return True

    def _arm_parent(self) -> None:
        """Watch the folder's parent for the folder's own creation, deletion or renaming (a
        polling observer would poll: then the fallback poll does it)."""
        if not has_close_events(self._use_polling):
            return
        observer = _make_observer(False, self.pace.poll_interval)
        try:
            handler = _ParentHandler(self)
            parent = str(self.real_root.parent)
            observer.schedule(handler, parent, recursive=False, event_filter=_PARENT_FILTER)
            observer.start()
        except OSError as exc:
            observer.stop()
            _log.warning("watch_parent_failed", root=str(self.root), error=exc.strerror or str(exc))
            return
        self._parent_observer = observer

    def _disarm(self) -> None:
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            if observer.is_alive():
                observer.join()

    def _went_missing(self, reason: str) -> None:
        if not self._missing:
            self._missing = True
            _log.warning(
                "watch_dir_missing",
                root=str(self.root),
                reason=reason,
                look_every_seconds=self.pace.health_seconds,
            )
