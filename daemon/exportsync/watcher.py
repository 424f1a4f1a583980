"""Notice files in the export folder and report each once it is ready to be read.

Two layers:
- `Settler` is pure readiness logic: feed it events with (monotonic) timestamps, ask which paths are
  ready at time t. No threads, no watchdog; tests drive it with plain numbers.
- `Watcher` adapts watchdog to it and runs a small timer thread (waiting through the injected Clock)
  that calls `on_ready(paths)` with the paths ready at that moment. The folder's own presence
  (missing, back, replaced, pinned against a symlink swap) is `rootwatch.RootWatch`'s job.

Readiness:
- With close events (Linux inotify): a file is ready as soon as it was closed after writing, or
  renamed/moved into the folder, and no writer still holds it open. "No writer" is asked of the
  kernel itself: a read lease (fcntl F_SETLEASE, F_RDLCK) can only be taken while nobody has the
  file open for writing, so the probe opens the file read-only, tries the lease and closes it again
  at once (see `writer_holds`). A file still held after a close waits for the next close. Where no
  lease can be taken (a file owned by another user, a filesystem without leases) a close counts as
  before: ready after a short quiet period (`CLOSE_QUIET_SECONDS`, or `settle_seconds` when
  shorter) with no later event for it. While a write is seen without a matching close the file is
  never ready (a slow writer holding one handle), except after `OPEN_WRITE_TIMEOUT` of complete
  silence (a truncate(2) has no close). A file that only appeared (created, no write yet) needs
  `settle_seconds` of stillness, and then no writer holding it (an output opened long before its
  first byte arrives). Each close may report the file again: a writer that opens and writes again
  makes a new version, which the spool records in place of the pending one.
- Without close events (PollingObserver, macOS FSEvents): size and mtime unchanged for
  `settle_seconds`.
- A path that vanished before it was ready is dropped silently.

Decisions:
- Symlinks and other non-regular entries with a matching name ARE passed to `on_ready` (and returned
  by `scan`), so the daemon calls `files.snapshot`, gets FileRejected with the reason ("symlink to
  '/etc/passwd' (outside ...)") and records it. The watcher itself only lstat()s: it never opens or
  follows anything.
- Queue overflow: watchdog 7 handles IN_Q_OVERFLOW inside its inotify layer (discarding pending move
  events, rebuilding recursive watches) and does not tell the event handler; it only logs the
  warning "Inotify queue overflowed; filesystem events were lost" on `watchdog.observers.inotify_c`.
  The Watcher hooks that logger with a logging.Filter to rescan at once. Without close events
  (polling, FSEvents) it also rescans every `rescan_seconds` as a safety net. Rescans report only
  files whose (size, mtime, inode) differ from what is known: by default what was last reported,
  or, given `changed`, the caller's own comparison (the daemon asks the spool in one query).
- Scans list the folder through descriptors walked from the pinned root without following a
  symlink (`dirfd.open_pinned`): a folder replaced by a symlink is never listed or offered through.
  When the `RootWatch` finds the folder back or replaced, the watcher rescans it.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import stat
import sys
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from watchdog.events import (
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
)

from exportsync.clock import Clock, SystemClock
from exportsync.config import WatchConfig
from exportsync.errors import FileRejected
from exportsync.fs.dirfd import open_below, open_pinned, real_path, relative_parts
from exportsync.logs import get_logger
from exportsync.matcher import FileMatcher
from exportsync.rootwatch import RootPace, RootWatch, has_close_events

__all__ = [
    "CLOSE_QUIET_SECONDS",
    "OPEN_WRITE_TIMEOUT",
    "RESCAN_SECONDS",
    "RETRY_RESCAN_SECONDS",
    "ProbeAnchor",
    "Settler",
    "StatKey",
    "Watcher",
    "has_close_events",
    "lstat_key",
    "writer_holds",
]

_log = get_logger(__name__)

StatKey = tuple[int, int, int]
"""(size, mtime_ns, inode) from lstat: what "unchanged" means."""

# A plain bool, not sys.platform inline: mypy would call the other branch unreachable.
_LINUX = sys.platform.startswith("linux")
_WATCHDOG_INOTIFY_LOGGER = "watchdog.observers.inotify_c"
_MAX_IDLE_WAIT = 3600.0
# The most files one call of on_ready gets (one spool transaction): a burst's files are recorded
# in slices, so few of them are held in memory at once, and the events that arrive meanwhile are
# taken in between.
OFFER_BATCH = 500
# A larger backlog is offered in this many slices at most (each step looks at every waiting file).
_MOST_SLICES = 16
# What the settler's look gives a path it could not look at (EACCES, EIO): a key no file has,
# so the path waits like any other and the intake records why it could not be read.
_UNLOOKED: StatKey = (-1, -1, -1)
# How soon a path that could not be recorded is looked at again (a full disk may clear any time).
RETRY_RESCAN_SECONDS = 5.0
# The longest a close is waited for after a write with no event since (a truncate(2) has no close).
OPEN_WRITE_TIMEOUT = 60.0
# Where no lease tells whether a writer holds a closed file, the quiet after its close (or
# `settle_seconds`, when shorter).
CLOSE_QUIET_SECONDS = 0.5
# The kernel queues a file's IN_CLOSE_WRITE before it drops that handle's write access, so a
# lease probe right behind the event can still see the closing writer: a file found held at its
# close is asked again this much later before the wait for another close begins (up to
# OPEN_WRITE_TIMEOUT; a 5,000-file burst once left a file waiting that long).
CLOSE_RECHECK_SECONDS = 0.05
# The safety-net rescan's default period (the daemon uses it only without inotify).
RESCAN_SECONDS = 300.0


class ProbeAnchor:
    """One descriptor on the pinned folder for the lease probes on watchdog's thread: a walk from
    ``/`` per life of the watch instead of one per close event.

    A probe reads nothing (it asks whether a writer holds the file) and opens the file relative to
    this descriptor, so a folder swapped for a symlink meanwhile is never looked through; the
    watcher drops it when its RootWatch finds the folder gone, back or replaced, and the next probe
    walks again. The intake reads the file below a walk of its own (`dirfd.held`).
    """

    def __init__(self, root: Path) -> None:
        self._root = root
        self._shown = os.path.abspath(root)  # a file right in it is opened without a relpath
        self._fd: int | None = None
        self._lock = threading.Lock()  # drop() on the watcher's thread never closes it mid-open

    def open(self, path: Path, flags: int) -> int:
        """`path` opened with `flags` below the pinned folder; FileRejected for a symlinked
        folder on the way, WatchDirReplaced for a folder replaced before the first probe."""
        parent = os.path.dirname(path)
        parts = () if parent == self._shown else relative_parts(self._root, Path(parent))
        with self._lock:
            if self._fd is None:
                self._fd = open_pinned(self._root)
            if not parts:
                return os.open(path.name, flags, dir_fd=self._fd)
            dir_fd = open_below(self._fd, parts)
        try:
            return os.open(path.name, flags, dir_fd=dir_fd)
        finally:
            os.close(dir_fd)

    def drop(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def writer_holds(
    path: Path, root: Path | None = None, *, anchor: ProbeAnchor | None = None
) -> bool | None:
    """Whether some process has `path` open for writing: True, False, or None when unknown.

    With `root` the file is opened relative to its folder, walked from the pinned root without
    following a symlink (a folder swapped for a symlink is never looked into); with `anchor` too,
    relative to the anchor's descriptor on that folder, walked once.

    Linux only: a read lease is granted only while no one has the file open for writing. The lease
    lives for two system calls; should a writer open the file in between, the kernel breaks it by
    signalling us with SIGURG (whose default action is to ignore it; SIGIO would kill the process)
    and holds that open until our close, microseconds later.
    """
    if not _LINUX:
        return None
    import fcntl  # noqa: PLC0415 - POSIX-only module, only reached on Linux

    try:
        # lstat first: a device or fifo with a matching name is never opened (opening a device
        # can have side effects); fstat below catches a swap in between.
        shown = path if root is None else real_path(root, path)
        if not stat.S_ISREG(os.lstat(shown).st_mode):
            return None
        fd = _open_probe(path, root) if anchor is None else anchor.open(path, _PROBE_FLAGS)
    except (OSError, FileRejected):
        return None  # gone, a symlink, unreadable: the settler and intake deal with it
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        fcntl.fcntl(fd, fcntl.F_SETSIG, signal.SIGURG)
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
    except OSError as exc:
        # EAGAIN: open for writing somewhere. EACCES (not our file), EINVAL (no leases): unknown.
        return True if exc.errno == errno.EAGAIN else None
    finally:
        os.close(fd)  # releases the lease
    return False


_PROBE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def _open_probe(path: Path, root: Path | None) -> int:
    if root is None:
        return os.open(path, _PROBE_FLAGS)
    dir_fd = open_pinned(root, relative_parts(root, path.parent))
    try:
        return os.open(path.name, _PROBE_FLAGS, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)


def lstat_key(path: Path) -> StatKey | None:
    """The path's own (size, mtime_ns, inode), never following a symlink; None when it is gone
    (or cannot be looked at: intake records why when it is offered)."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    return (info.st_size, info.st_mtime_ns, info.st_ino)


@dataclass(slots=True)
class _Pending:
    stat: StatKey | None
    stat_since: float
    last_event: float
    quiet: float
    writing: bool


class Settler:
    """Pure readiness bookkeeping. All times are monotonic seconds supplied by the caller."""

    def __init__(
        self,
        *,
        settle_seconds: float,
        close_events: bool,
        quiet_seconds: float | None = None,
        open_write_timeout: float = OPEN_WRITE_TIMEOUT,
        stat: Callable[[Path], StatKey | None] = lstat_key,
        holders: Callable[[Path], bool | None] = lambda _path: None,
    ) -> None:
        self.settle_seconds = settle_seconds
        self.close_events = close_events
        self.quiet_seconds = (
            min(settle_seconds, CLOSE_QUIET_SECONDS) if quiet_seconds is None else quiet_seconds
        )
        self.open_write_timeout = open_write_timeout
        self._stat = stat
        self._holders = holders
        # str keys: a Path hashes its parts anew for each new object (three look-ups per file in
        # a burst, each with a fresh Path), and holds more than its text while pending.
        self._pending: dict[str, _Pending] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, path: object) -> bool:
        return isinstance(path, os.PathLike | str) and os.fspath(path) in self._pending

    def created(self, path: Path, now: float) -> None:
        """The path appeared (or a scan found it): ready after `settle_seconds` of stillness."""
        self._event(path, now, quiet=self.settle_seconds, writing=False)

    def modified(self, path: Path, now: float) -> None:
        """Data was written; with close events a close is now awaited."""
        self._event(path, now, quiet=self.settle_seconds, writing=self.close_events)

    def closed(self, path: Path, now: float) -> None:
        """A handle open for writing was closed (inotify IN_CLOSE_WRITE)."""
        self._complete(path, now)

    def arrived(self, path: Path, now: float) -> None:
        """The path was renamed or moved into the folder: complete unless a writer holds it."""
        self._complete(path, now)

    def close_lost(self, path: Path, now: float) -> None:
        """Events may have been lost: a path waiting for its close is looked at afresh, as a
        file just found (its close may be among them); the others keep their wait."""
        record = self._pending.get(os.fspath(path))
        if record is not None and record.writing:
            self.created(path, now)

    def removed(self, path: Path) -> None:
        """The path was deleted or moved away."""
        self._pending.pop(os.fspath(path), None)

    def _complete(self, path: Path, now: float) -> None:
        if self.close_events:
            held = self._holders(path)
            if held is None:  # no way to ask: a short quiet period instead
                self._event(path, now, quiet=self.quiet_seconds, writing=False)
            elif held:  # maybe the closing handle itself: ask again before awaiting a close
                self._event(path, now, quiet=CLOSE_RECHECK_SECONDS, writing=False)
            else:
                self._event(path, now, quiet=0.0, writing=False)
        else:
            self._event(path, now, quiet=self.settle_seconds, writing=False)

    def _event(self, path: Path, now: float, *, quiet: float, writing: bool) -> None:
        current = self._stat(path)
        key = os.fspath(path)
        record = self._pending.get(key)
        if record is None:
            if current is not None:  # gone already, or not a file: nothing to wait for
                self._pending[key] = _Pending(current, now, now, quiet, writing)
            return
        if current != record.stat:
            record.stat, record.stat_since = current, now
        record.last_event, record.quiet, record.writing = now, quiet, writing

    @staticmethod
    def _deadline(record: _Pending, open_write_timeout: float) -> float:
        base = max(record.last_event, record.stat_since)
        return base + (open_write_timeout if record.writing else record.quiet)

    def _still_held(self, path: Path, record: _Pending) -> bool:
        """A file due after a quiet period (not one a close or rename just showed free, nor one
        whose open-write timeout ran out): is a writer still holding it?"""
        if not self.close_events or record.writing or record.quiet == 0.0:
            return False
        return self._holders(path) is True

    def next_deadline(self) -> float | None:
        """The earliest time `due` may report something, or None when nothing is pending."""
        if not self._pending:
            return None
        return min(self._deadline(r, self.open_write_timeout) for r in self._pending.values())

    def due(
        self, now: float, limit: int | None = None, *, fresh_since: float | None = None
    ) -> list[Path]:
        """Paths ready at `now` (each leaves the pending set), in the order they became due; at
        most `limit` of them (the rest stay, due, for the next call). A file closed with no
        writer left at or after `fresh_since` (by the caller: in the step now running) is not
        looked at again."""
        timeout = self.open_write_timeout
        candidates = sorted(
            (deadline, key)
            for key, record in self._pending.items()
            if (deadline := self._deadline(record, timeout)) <= now
        )
        ready: list[tuple[float, Path]] = []
        for deadline, key in candidates:
            if limit is not None and len(ready) >= limit:
                break
            record = self._pending[key]
            path = Path(key)
            if (
                fresh_since is not None
                and record.quiet == 0.0
                and not record.writing
                and record.last_event >= fresh_since
            ):
                # Closed (or moved in) with no writer left, and looked at when that event was
                # taken, in this very step: a change since would bring an event of its own.
                del self._pending[key]
                ready.append((deadline, path))
                continue
            current = self._stat(path)
            if current is None:
                del self._pending[key]
            elif current != record.stat:
                # Changed without an event (polling, or events lost): start the wait over.
                record.stat, record.stat_since = current, now
            elif self._still_held(path, record):
                # Created and held open with nothing written yet (dd or curl waiting on a slow
                # source): its first bytes are still to come, so wait for the close as after a
                # write, with the same timeout.
                record.last_event, record.writing = now, True
            else:
                del self._pending[key]
                ready.append((deadline, path))
        if not self._pending:
            self._pending = {}  # a dict keeps its largest table: a burst's would stay behind
        return [path for _, path in ready]


class _OverflowFilter(logging.Filter):
    """Spots watchdog's overflow warning; never suppresses the record."""

    def __init__(self, callback: Callable[[], None]) -> None:
        super().__init__()
        self._callback = callback

    def filter(self, record: logging.LogRecord) -> bool:
        if "overflow" in record.getMessage().lower():
            self._callback()
        return True


class Watcher:
    """Watches `config.dir` and calls `on_ready(paths)` with the matching files that became ready.

    `on_ready` runs on the watcher's timer thread with every file ready at that moment (so a burst
    arrives in batches the spool records in one transaction each), possibly more than once for the
    same file (once per close), never once per write. Exceptions from it are logged and do not stop
    the watcher; the batch is offered again by the next rescan. The folder's own health (missing,
    back, replaced, pinned against a symlink swap) is its `RootWatch`'s job.

    Tests with a FakeClock should not `start()` (its instant `wait` would spin the timer thread):
    feed `dispatch(event)`, advance the clock and call `run_pending()`, the loop's one step.
    """

    def __init__(
        self,
        config: WatchConfig,
        matcher: FileMatcher,
        on_ready: Callable[[list[Path]], object],
        *,
        clock: Clock | None = None,
        rescan_seconds: float | None = RESCAN_SECONDS,
        close_quiet_seconds: float | None = None,
        pace: RootPace = RootPace(),  # noqa: B008 - frozen: one shared default is safe
        on_overflow: Callable[[], None] | None = None,
        changed: Callable[[list[tuple[str, StatKey]]], list[tuple[str, StatKey]]] | None = None,
        on_removed: Callable[[], None] | None = None,
    ) -> None:
        self.matcher = matcher
        self._wake = threading.Event()
        # Jobs posted by inotify's reader thread (each read's events), run first in each step:
        # the events are acted on here, on the thread that records the files (see
        # `inotifydirect`).
        self._inbox: deque[Callable[[], None]] = deque()
        self._posted = 0  # jobs posted and not yet run to their end (busy while any is)
        self.root_watch = RootWatch(
            config.dir,
            recursive=matcher.recursive,
            use_polling=config.use_polling,
            on_event=self.dispatch,
            wake=self._wake.set,
            pace=pace,
            post=self.post,
        )
        self.root = self.root_watch.root
        self.real_root = self.root_watch.real_root
        self._root_text = str(self.root)
        self._anchor = ProbeAnchor(self.root)
        self._on_ready = on_ready
        self._on_overflow = on_overflow
        # A file was deleted or moved away (the daemon looks whether a failed item's file went).
        self._on_removed = on_removed
        self._changed = changed
        self._clock: Clock = clock or SystemClock()
        self._rescan_seconds = rescan_seconds
        # Only inotify reports close-after-write; polling and FSEvents settle on stillness.
        self.settler = Settler(
            settle_seconds=config.settle_seconds,
            close_events=has_close_events(config.use_polling),
            quiet_seconds=close_quiet_seconds,
            holders=lambda path: writer_holds(path, self.root, anchor=self._anchor),
            stat=self._lstat_key,
        )
        self._lock = threading.Lock()
        self._offering = False  # on_ready is running (the files are being read and recorded)
        self._stopping = threading.Event()
        self._overflowed = threading.Event()
        # What was reported, for a rescan's own comparison; str keys: a Path per file of a
        # 100,000-file folder would double what this holds. With `changed` the caller compares
        # (the daemon: with the spool), so nothing is kept per file: a burst or a large folder
        # would leave a dict of every name it ever saw.
        self._reported: dict[str, StatKey] = {}
        self._remember = changed is None
        self._next_rescan: float | None = None
        self._thread: threading.Thread | None = None
        self._log_filter = _OverflowFilter(self.notify_overflow)

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start watching; returns once the watch is live (events from now on are seen)."""
        if self._thread is not None:
            raise RuntimeError("Watcher already started")
        watchdog_log = logging.getLogger(_WATCHDOG_INOTIFY_LOGGER)
        if not watchdog_log.isEnabledFor(logging.WARNING):
            watchdog_log.setLevel(logging.WARNING)  # the filter only sees records that are emitted
        watchdog_log.addFilter(self._log_filter)
        try:
            self.root_watch.start(self._clock.monotonic())
        except BaseException:
            watchdog_log.removeFilter(self._log_filter)
            raise
        if self._rescan_seconds is not None:
            self._next_rescan = self._clock.monotonic() + self._rescan_seconds
        self._thread = threading.Thread(target=self._run, name="exportsync-watcher", daemon=True)
        self._thread.start()
        _log.info("watch_started", root=str(self.root), recursive=self.matcher.recursive)

    @property
    def missing(self) -> bool:
        """True while the watched folder does not exist (the watch waits for it)."""
        return self.root_watch.missing

    def stop(self) -> None:
        """Stop watching and join the threads. Pending, not yet ready files are dropped."""
        self._stopping.set()
        self._wake.set()
        logging.getLogger(_WATCHDOG_INOTIFY_LOGGER).removeFilter(self._log_filter)
        if self._thread is not None:
            self._thread.join()
        self.root_watch.stop()
        self._anchor.drop()
        _log.info("watch_stopped", root=str(self.root))

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- the step and its inputs -----------------------------------------------------------------

    def scan(self) -> list[Path]:
        """Every matching non-directory entry in the folder, sorted (symlinks included, see above).

        Call `start()` first so nothing falls between the scan and the watch (a file reported twice
        is fine, the spool dedupes). Returned files count as reported: the periodic rescan skips
        them until their size, mtime or inode change.
        """
        return sorted(Path(path) for path, _ in self.scan_entries())

    def scan_entries(self) -> list[tuple[str, StatKey]]:
        """`scan` as (path, lstat key) pairs, unsorted, from one scandir walk (no other stat);
        strings, not Paths, since a start-up scan may hold 100,000 of them."""
        found = self._scan_entries()
        if self._remember:
            with self._lock:
                self._reported.update(found)
        return found

    def dispatch(self, event: FileSystemEvent) -> None:
        """Feed one watchdog event (on watchdog's thread; public so tests can script events)."""
        if event.is_directory:
            return  # the folder's own deletion reached its RootWatch instead
        try:
            self._dispatch(event)
        except Exception:  # an exception would end watchdog's dispatch thread
            _log.exception("watch_event_failed", fs_event=event.event_type)

    def _dispatch(self, event: FileSystemEvent) -> None:
        now = self._clock.monotonic()
        src = Path(self._named(event.src_path)) if event.src_path else None
        if self._on_removed is not None and isinstance(event, FileMovedEvent | FileDeletedEvent):
            self._on_removed()
        with self._lock:
            if isinstance(event, FileMovedEvent):
                if src is not None:
                    self._forget(src)
                dest = Path(self._named(event.dest_path)) if event.dest_path else None
                if dest is not None and self._wanted(dest):
                    self.settler.arrived(dest, now)
            elif src is None:
                return
            elif isinstance(event, FileDeletedEvent):
                self._forget(src)
            elif not self._wanted(src):
                return
            elif isinstance(event, FileClosedEvent):
                self.settler.closed(src, now)
            elif isinstance(event, FileModifiedEvent):
                self.settler.modified(src, now)
            elif isinstance(event, FileCreatedEvent):
                self.settler.created(src, now)
            else:
                return
        # Three events per file in a burst: a set Event is not set (and its waiters notified)
        # again.
        if not self._wake.is_set():
            self._wake.set()

    def post(self, job: Callable[[], None]) -> None:
        """Have `job` run on the watcher's thread at the start of its next step (any thread).
        inotify's reader posts one job at a time, which takes what was read until it runs (at
        most `inotifydirect.MAX_QUEUED_EVENTS`)."""
        with self._lock:
            self._posted += 1
        self._inbox.append(job)
        if not self._wake.is_set():
            self._wake.set()

    def _run_posted(self) -> None:
        """The jobs posted before this step began; later ones wait for the next step, so a
        writer that never pauses does not keep the files already seen from being offered."""
        for _ in range(len(self._inbox)):
            job = self._inbox.popleft()
            try:
                job()
            except Exception:  # one job's failure must not stop the others or the step
                _log.exception("watch_event_failed")
            finally:
                with self._lock:
                    self._posted -= 1
            del job  # the events it held go now, not at the next job

    def notify_overflow(self) -> None:
        """Events may have been lost: rescan on the timer thread as soon as possible."""
        self._overflowed.set()
        self._wake.set()

    def run_pending(self) -> list[Path]:
        """One step: take the events posted, rescan if due, pass the ready paths (at most
        `OFFER_BATCH`, or a sixteenth of a larger backlog) to on_ready in one call; returns
        them."""
        began = self._clock.monotonic()
        self._run_posted()
        now = self._clock.monotonic()
        recheck = self.root_watch.check(now)
        if recheck is not None or self.root_watch.missing:
            self._anchor.drop()  # the folder went, came back or was replaced: walk again
        if recheck is not None:
            self._rescan(now, quiet=recheck == "unwatched", lost=True)
        if self._overflowed.is_set():
            self._overflowed.clear()
            _log.warning("watch_overflow_rescan", root=str(self.root))
            if self._on_overflow is not None:
                self._call_safely("on_overflow_failed", self._on_overflow)
            self._rescan(now, lost=True)
        elif self._next_rescan is not None and now >= self._next_rescan:
            self._rescan(now)
        with self._lock:
            limit = max(OFFER_BATCH, len(self.settler) // _MOST_SLICES)
            paths = self.settler.due(now, limit, fresh_since=began)
            # Set with the settler emptied, under the same lock: `busy()` never sees neither.
            self._offering = bool(paths)
        if not paths:
            return []
        # The keys only for the watcher's own comparison: where the caller compares (the
        # daemon, with the spool) an lstat per ready file would fill what nobody keeps.
        ready = [(path, self._lstat_key(path)) for path in paths] if self._remember else []
        _log.debug("files_ready", count=len(paths))
        # Only files on_ready accepted count as reported; a failed batch (a full disk) is offered
        # again by a rescan within seconds.
        try:
            accepted = self._call_safely("on_ready_failed", self._on_ready, paths)
        finally:
            with self._lock:
                self._offering = False
        if not accepted:
            self._rescan_soon()
        elif ready:
            with self._lock:
                self._reported.update((str(path), key) for path, key in ready if key is not None)
        return paths

    def busy(self) -> bool:
        """Files are seen and not yet handed on: settling, or being offered right now."""
        with self._lock:
            return self._offering or len(self.settler) > 0 or self._posted > 0

    def settle(self, path: Path) -> None:
        """Report `path` only once it has held still for `settle_seconds` (or, with close
        events, once its writer closes it): for a file the start-up scan found mid-write."""
        with self._lock:
            self._reported.pop(str(path), None)  # reported once it is ready, not by the scan
            self.settler.created(path, self._clock.monotonic())
        self._wake.set()

    def reconsider(self, path: Path) -> None:
        """Forget that `path` was reported, so the next rescan offers it again (e.g. after the
        caller failed to record a path that `scan()` returned)."""
        with self._lock:
            self._reported.pop(str(path), None)
        self._rescan_soon()

    # -- private ---------------------------------------------------------------------------------

    def _lstat_key(self, path: Path) -> StatKey | None:
        """`lstat_key` of the file in the pinned folder (named under the configured root); None
        for a directory too: a folder with a matching name (one called "x.csv") is no file.
        A path that is there but cannot be looked at gets `_UNLOOKED`, not None: it must not be
        dropped unseen."""
        try:
            info = os.lstat(real_path(self.root, path))
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError:
            return _UNLOOKED
        if stat.S_ISDIR(info.st_mode):
            return None
        return (info.st_size, info.st_mtime_ns, info.st_ino)

    def _named(self, raw: bytes | str) -> str:
        """An event's path under the configured root: the watch is on the pinned real path,
        which differs when watch.dir was a symlink at start."""
        path = os.fsdecode(raw)
        real, shown = str(self.real_root), str(self.root)
        if real != shown and (path == real or path.startswith(real + os.sep)):
            return shown + path[len(real) :]
        return path

    def _wanted(self, path: Path) -> bool:
        # A file right in the folder (every event of a flat folder) is matched by its name alone.
        parent, name = os.path.split(str(path))
        if parent == self._root_text and name != "..":
            if self.matcher.classify_name(name) is None:
                return False
        elif self.matcher.classify(self.root, path) is None:
            return False
        # A directory with a matching name is never pending: the settler's look says so.
        return True

    def _scan_entries(self) -> list[tuple[str, StatKey]]:
        """(path, lstat key) of every matching entry; directories are checked once each, so a
        file's own name is all that is left to match."""
        found: list[tuple[str, StatKey]] = []
        # Each folder is listed through a descriptor walked from the pinned root without
        # following a symlink: a folder replaced by one is not listed.
        folders: list[tuple[str, ...]] = [()]
        root = str(self.root)
        while folders:
            parts = folders.pop()
            try:
                fd = open_pinned(self.root, parts)
            except (OSError, FileRejected):
                continue  # vanished, unreadable or replaced meanwhile
            try:
                found += self._list(fd, parts, os.path.join(root, *parts), folders)
            finally:
                os.close(fd)  # scandir listed a duplicate of it
        return found

    def _list(
        self, fd: int, parts: tuple[str, ...], shown: str, folders: list[tuple[str, ...]]
    ) -> list[tuple[str, StatKey]]:
        """One folder's matching entries; the sub-folders to descend are added to `folders`."""
        found: list[tuple[str, StatKey]] = []
        try:
            listing = os.scandir(fd)
        except OSError:
            return found
        with listing:
            for entry in listing:
                path = os.path.join(shown, entry.name)
                # A symlink to a directory is an entry like any symlink (never descended).
                if entry.is_dir(follow_symlinks=False):
                    if self.matcher.recursive and self.matcher.descend(self.root, Path(path)):
                        folders.append((*parts, entry.name))
                    continue
                if self.matcher.classify_name(entry.name) is None:
                    continue
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                found.append((path, (info.st_size, info.st_mtime_ns, info.st_ino)))
        return found

    def _forget(self, path: Path) -> None:
        self.settler.removed(path)
        self._reported.pop(str(path), None)

    def _rescan_soon(self) -> None:
        """A path that could not be recorded (a full disk) is tried again within seconds, not
        only at the next periodic rescan."""
        soon = self._clock.monotonic() + RETRY_RESCAN_SECONDS
        with self._lock:
            if self._next_rescan is None or self._next_rescan > soon:
                self._next_rescan = soon
        self._wake.set()

    def _rescan(self, now: float, *, quiet: bool = False, lost: bool = False) -> None:
        """Look at the folder; `lost`: events may have been lost (an overflow, a folder watched
        again), so a file waiting for its close is looked at afresh, as one just found: its
        close may be among them."""
        with self._lock:
            periodic = self._rescan_seconds
            self._next_rescan = now + periodic if periodic is not None else None
        found = self._scan_entries()
        if self._changed is not None:
            found = self._changed(found)  # the caller's comparison (one spool query)
            known: dict[str, StatKey] = {}
        else:
            known = self._reported
        changed = 0
        with self._lock:
            for name, key in found:
                path = Path(name)
                if path in self.settler:
                    if lost:
                        self.settler.close_lost(path, now)
                    continue
                if known.get(name) == key:
                    continue
                self.settler.created(path, now)
                changed += 1
        if changed or not quiet:
            _log.info("watch_rescanned", root=str(self.root), changed=changed)

    def _call_safely(self, event: str, func: Callable[..., object], *args: list[Path]) -> bool:
        try:
            func(*args)
        except Exception:  # a failing callback must not kill the watcher thread
            _log.exception(event, paths=[str(p) for p in args[0][:10]] if args else None)
            return False
        return True

    def _timeout(self) -> float:
        now = self._clock.monotonic()
        with self._lock:
            deadlines = [
                self.settler.next_deadline(),
                self._next_rescan,
                self.root_watch.next_check,
            ]
        upcoming = [d for d in deadlines if d is not None]
        return max(0.0, min(upcoming) - now) if upcoming else _MAX_IDLE_WAIT

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                self.run_pending()
            except Exception:  # the timer thread must outlive any one bad step
                _log.exception("watch_step_failed", root=str(self.root))
                self._clock.wait(self.root_watch.pace.health_seconds, self._stopping)
                continue
            if self._stopping.is_set():
                break
            self._clock.wait(self._timeout(), self._wake)
