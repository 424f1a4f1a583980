"""watchdog's inotify observer with a short path for file events (Linux only).

watchdog hands each inotify event through three threads and two queues: its reader thread puts it
in a delay queue (which pairs the two halves of a rename), an emitter thread turns it into a
`FileSystemEvent` for an event queue, and a dispatcher thread calls the handler. A 5,000-file
burst is 15,000 such events (created, modified, closed per file), and those hand-overs, each a
lock, a condition and a thread switch under the one GIL, cost more than everything the daemon
itself does per file.

Here the events of a plain file (created, modified, closed after writing, deleted, renamed in or
out) go from the reader thread straight to `direct`, in the order the kernel queued them, as the
full-events emitter would have built them: a rename inside the folder arrives as its two halves,
``FileMovedEvent(src, "")`` then ``FileMovedEvent("", dest)``, which the watcher treats as the
one move (the source forgotten, the destination arrived). A file's rename needs no pairing: only a
directory's moves its watches, and directory events, the folder's own deletion and the simulated
events of a new sub-folder still take watchdog's own way, to the handler scheduled with the watch.

With `post`, the reader thread does nothing but read: the events it reads are posted, as a job,
to the thread that acts on them (the watcher's), which handles them there in order; one job waits
at a time and takes every event read until it runs. The events
of a file lead to system calls (lstat, the lease probe); made on a second thread, each of those
handed the GIL back and forth with the thread reading and recording the files, which in a burst
cost more than the calls themselves. A job also drops what a later event in the same read makes
moot: a file's created and modified events before its close-after-write.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from watchdog.events import (
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
)
from watchdog.observers.api import DEFAULT_OBSERVER_TIMEOUT, BaseObserver
from watchdog.observers.inotify import InotifyFullEmitter, InotifyObserver, InotifyWatchGroup
from watchdog.observers.inotify_c import InotifyConstants, InotifyEvent, InotifyFD

from exportsync.logs import get_logger

__all__ = ["DirectInotifyObserver"]

_log = get_logger(__name__)

Direct = Callable[[FileSystemEvent], None]
Post = Callable[[Callable[[], None]], None]

# The events of a file that go straight to `direct`; IN_ATTRIB is in the mask only because
# watchdog asks for it with modified events, and is dropped by the filter as before.
_DIRECT_MASK = (
    InotifyConstants.IN_CREATE
    | InotifyConstants.IN_MODIFY
    | InotifyConstants.IN_ATTRIB
    | InotifyConstants.IN_CLOSE_WRITE
    | InotifyConstants.IN_DELETE
    | InotifyConstants.IN_MOVED_FROM
    | InotifyConstants.IN_MOVED_TO
)


# The most events read and not yet taken by the thread that acts on them; beyond, they are dropped
# for one queue-overflow event (the folder is rescanned), as the kernel does with its own queue of
# 16,384: a writer that outruns the watcher cannot grow the daemon's memory without end.
MAX_QUEUED_EVENTS = 16384


# A file's events that a later close-after-write of the same file, in the same read, makes moot:
# the watcher treats the close alone as it treats the three (the file's look is taken at the
# close). Deletions and renames are never dropped, and end the run they are in.
_MOOT = InotifyConstants.IN_CREATE | InotifyConstants.IN_MODIFY | InotifyConstants.IN_ATTRIB
_ENDS_A_FILE = (
    InotifyConstants.IN_DELETE | InotifyConstants.IN_MOVED_FROM | InotifyConstants.IN_MOVED_TO
)


def without_moot(events: list[InotifyEvent]) -> list[InotifyEvent]:
    """`events` without a file's created, modified and attrib events that come before its
    close-after-write in the same list (nothing between them deleted or renamed it)."""
    closing: set[tuple[int, bytes]] = set()  # files whose close comes later in the list
    kept: list[InotifyEvent] = []
    for event in reversed(events):
        mask = event.mask
        if event.is_directory or not event.name:
            kept.append(event)
            continue
        key = (event.wd, event.name)
        if mask & InotifyConstants.IN_CLOSE_WRITE:
            closing.add(key)
        elif mask & _ENDS_A_FILE:
            closing.discard(key)
        elif mask & _MOOT and key in closing:
            continue
        kept.append(event)
    kept.reverse()
    return kept


def _file_event(event: InotifyEvent, path: str) -> FileSystemEvent | None:
    """The event the full-events emitter builds for a file's inotify event (None: none)."""
    if event.is_moved_to:
        return FileMovedEvent("", path)
    if event.is_modify:
        return FileModifiedEvent(path)
    if event.is_delete:
        return FileDeletedEvent(path)
    if event.is_moved_from:
        return FileMovedEvent(path, "")
    if event.is_create:
        return FileCreatedEvent(path)
    if event.is_close_write:
        return FileClosedEvent(path)
    return None  # IN_ATTRIB: a FileAttribEvent, which the watch's filter never lets through


@dataclass
class _DirectWatchGroup(InotifyWatchGroup):
    direct: Callable[[InotifyEvent, bytes], None] = field(default=lambda _e, _p: None, kw_only=True)

    def on_event(self, event: InotifyEvent) -> None:
        # Runs on the reader thread: nothing may escape, or every watch would go deaf.
        if event.mask & _DIRECT_MASK and event.name and not event.is_directory:
            with self._lock:
                if not self.is_active:
                    return
                path = self._build_event_source_path(event)
            if path is not None:
                self.direct(event, path)
            return
        super().on_event(event)


class _DirectEmitter(InotifyFullEmitter):
    def __init__(self, *args: Any, direct: Direct, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._direct = direct
        self._wanted = tuple(self._event_filter) if self._event_filter is not None else None

    def on_thread_start(self) -> None:
        # As InotifyEmitter.on_thread_start, with the group that short-cuts file events.
        self._inotify = _DirectWatchGroup(
            self._inotify_fd,
            os.fsencode(self.watch.path),
            is_recursive=self.watch.is_recursive,
            event_mask=self.get_event_mask_from_filter(),
            follow_symlink=self.watch.follow_symlink,
            direct=self._file,
        )

    def _file(self, event: InotifyEvent, path: bytes) -> None:
        try:
            built = _file_event(event, os.fsdecode(path))
            if built is not None and (self._wanted is None or isinstance(built, self._wanted)):
                self._direct(built)
        except Exception:  # the reader thread serves every watch: it must not die of one event
            _log.exception("watch_event_failed", mask=event.mask)


class _ReaderFD(InotifyFD):
    """watchdog's inotify reader, letting go of each read's events once they are handled.

    `InotifyFD.run` keeps the last read's list (a few thousand events after a burst) in its
    locals while it blocks for the next read: objects of the burst left alive all over the heap,
    which keep it resident once the daemon is idle. With `post`, the events read are handled by
    a job posted to another thread (see the module's doc): one job at a time, which takes every
    event read until it runs (a fast writer's events come a few per read)."""

    def __init__(self, post: Post | None = None) -> None:
        super().__init__()
        self._post = post
        self._queued: list[InotifyEvent] | None = None  # read, for the job posted and not run
        self._queue_lock = threading.Lock()

    def run(self) -> None:
        while self.should_keep_running():
            if self._post is None:
                self._handle(self.read_events())
            elif events := self.read_events():
                self.queue(events)

    def queue(self, events: list[InotifyEvent]) -> None:
        """Hand `events` to the posted job, posting one if none waits."""
        assert self._post is not None
        with self._queue_lock:
            waiting = self._queued
            if waiting is not None:
                if len(waiting) + len(events) > MAX_QUEUED_EVENTS:
                    self._queued = [_overflow()]
                else:
                    waiting.extend(events)
                return
            self._queued = events
        self._post(self._take)

    def _take(self) -> None:
        with self._queue_lock:
            events, self._queued = self._queued, None
        if events:
            self._handle(events)

    def _handle(self, events: list[InotifyEvent]) -> None:
        for event in without_moot(events):
            try:
                self.handle_event(event)
            except Exception:  # the daemon's code runs here now: one event must not end the
                # reader, which serves every watch (the health check does not see it)
                _log.exception("watch_event_failed", mask=event.mask)


def _overflow() -> InotifyEvent:
    """What the kernel reads out when its queue overflowed (wd -1, IN_Q_OVERFLOW)."""
    return InotifyEvent(-1, InotifyConstants.IN_Q_OVERFLOW, 0, b"")  # type: ignore[arg-type]


class DirectInotifyObserver(InotifyObserver):
    """`InotifyObserver(generate_full_events=True)` whose file events go to `direct`, on the
    reader thread or, with `post`, on the thread that runs the posted jobs (see the module's
    doc); everything else reaches the scheduled handler."""

    def __init__(self, direct: Direct, post: Post | None = None) -> None:
        self._inotify_fd = _ReaderFD(post)
        self._inotify_fd.start()
        BaseObserver.__init__(
            self,
            _DirectEmitter,
            timeout=DEFAULT_OBSERVER_TIMEOUT,
            inotify_fd=self._inotify_fd,
            direct=direct,
        )
