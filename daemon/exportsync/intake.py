"""Intake: the first thing that happens to a file is that the spool records it.

`Intake.offer_many(paths)` is what the watcher calls with the files ready at one moment, and what
the start-up scan calls with the files that changed; `offer(path)` is what `exportsync enqueue`
calls. Each file is hashed once (through `files`, which never follows a symlink), the versions are
recorded in the spool in one transaction, and the delivery loop is woken after that commit. A
file that can never be read as it is (a symlink, a fifo, a session file too big to parse) is
recorded as failed with the reason, so `exportsync status` shows it instead of it vanishing.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

from structlog.typing import FilteringBoundLogger

from exportsync.clock import Clock
from exportsync.errors import FileRejected, SpoolError
from exportsync.fs import files
from exportsync.fs.dirfd import held, real_path
from exportsync.logs import get_logger
from exportsync.matcher import FileMatcher, Kind
from exportsync.spool import NewVersion, RecordResult, Spool
from exportsync_wire import limits

__all__ = ["MAX_SESSION_FILE_BYTES", "Intake"]

log = get_logger(__name__)

_T = TypeVar("_T")

# A session file is parsed in memory; anything this large is not a session summary.
MAX_SESSION_FILE_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class _Seen:
    """A file the daemon delivers, looked at (lstat) but not read yet: only what is compared
    (a whole stat result per file of a burst, held until the batch is recorded, is a score of
    objects)."""

    kind: Kind
    regular: bool
    size: int
    mtime_ns: int
    inode: int


def _absolute(path: Path) -> Path:
    """`path` made absolute and normal; the same object when it already is (a new Path parses
    its text again, and the watcher's are)."""
    text = os.fspath(path)
    full = os.path.abspath(text)
    return path if full == text and isinstance(path, Path) else Path(full)


class Intake:
    """Records files in the spool; safe to call from the watcher's thread."""

    def __init__(
        self,
        spool: Spool,
        *,
        root: Path,
        matcher: FileMatcher,
        clock: Clock,
        on_spooled: Callable[[], None] = lambda: None,
        on_detected: Callable[[], None] = lambda: None,
    ) -> None:
        self._spool = spool
        self._root = Path(os.path.abspath(root))
        self._matcher = matcher
        self._clock = clock
        self._on_spooled = on_spooled
        self._on_detected = on_detected  # metrics: a complete file was seen

    def classify(self, path: Path) -> Kind | None:
        return self._matcher.classify(self._root, Path(os.path.abspath(path)))

    def offer(self, path: Path, *, force: bool = False) -> RecordResult | None:
        """Spool `path` if it is a file the daemon delivers; None when it is not, or is gone.

        Without `force`, a file whose path, size, mtime and inode are already spooled is not
        hashed again.
        """
        return self.offer_many([path], force=force)[0]

    def offer_many(
        self, paths: Sequence[Path], *, force: bool = False
    ) -> list[RecordResult | None]:
        """`offer` for several files: each is hashed, then all are recorded in one transaction
        (one fsync). Nothing is said about them (log, wake-up) before that commit.

        Per batch, not per file: one walk from / to the pinned folder (`dirfd.held`), below which
        each file is read, and one look into the spool for the versions already spooled
        (`known_many`): the delivery thread holds the spool's lock for its own transactions, and
        a burst waited for it once per file."""
        absolute = [_absolute(path) for path in paths]
        # One logger for the batch: the module's proxy builds a new one at every call (it follows
        # a logging set up later), which a burst paid twice per file.
        said = log.bind()
        results: list[RecordResult | None] = [None] * len(absolute)
        fresh: list[tuple[int, NewVersion]] = []
        with held(self._root):
            looked = [self._guarded(path, self._look) for path in absolute]
            candidates = [
                (index, path, seen)
                for index, (path, seen) in enumerate(zip(absolute, looked, strict=True))
                if isinstance(seen, _Seen)
            ]
            known = self._known([(path, seen) for _, path, seen in candidates], force=force)
            for (index, path, seen), skip in zip(candidates, known, strict=True):
                if skip:
                    continue  # this exact version is already spooled: no need to hash it again
                prepared = self._guarded(path, partial(self._read, seen=seen, said=said))
                if isinstance(prepared, NewVersion):
                    fresh.append((index, prepared))
                else:
                    results[index] = prepared
            for index, outcome in enumerate(looked):
                if not isinstance(outcome, _Seen):
                    results[index] = outcome
        if not fresh:
            return results
        recorded = self._spool.record_many([v for _, v in fresh], now=self._clock.time())
        spooled = False
        for (index, version), result in zip(fresh, recorded, strict=True):
            results[index] = result
            if result.created or result.requeued:
                said.info(
                    "item_spooled",
                    item_id=result.item.id,
                    path=str(version.path),
                    kind=version.kind,
                    size=version.size,
                    sha256=version.sha256,
                    again=result.requeued,
                )
                spooled = True
            else:
                said.debug(
                    "item_known",
                    item_id=result.item.id,
                    path=str(version.path),
                    state=result.item.state,
                )
        if spooled:
            self._on_spooled()
        return results

    def _guarded(
        self, path: Path, step: Callable[[Path], _T | RecordResult | None]
    ) -> _T | RecordResult | None:
        """`step` behind the per-item firewall: a file that raises fails alone (recorded as
        refused with the error), and the rest of the batch goes on. A spool error is no file's
        fault: it is raised, and the whole batch is offered again."""
        try:
            return step(path)
        except SpoolError:
            raise
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            log.error("item_firewalled", path=str(path), error=reason, stage="intake")
            kind = self.classify(path)
            return None if kind is None else self.reject(path, kind, reason)

    def _look(self, path: Path) -> _Seen | RecordResult | None:
        """A file the daemon delivers, with its lstat; a rejection already recorded, or None."""
        kind = self._matcher.classify(self._root, path)
        if kind is None:
            return None
        try:
            st = os.lstat(real_path(self._root, path))
        except FileNotFoundError:
            log.info("file_vanished", path=str(path))
            return None
        except OSError as exc:
            return self.reject(path, kind, f"cannot stat the file: {exc.strerror or exc}")
        return _Seen(kind, stat.S_ISREG(st.st_mode), st.st_size, st.st_mtime_ns, st.st_ino)

    def _known(self, seen: list[tuple[Path, _Seen]], *, force: bool) -> list[bool]:
        """Whether each regular file's (path, size, mtime, inode) is already spooled."""
        if force or not seen:
            return [False] * len(seen)
        answers = iter(
            self._spool.known_many([(p, s.size, s.mtime_ns, s.inode) for p, s in seen if s.regular])
        )
        return [next(answers) if s.regular else False for _, s in seen]

    def _read(
        self, path: Path, *, seen: _Seen, said: FilteringBoundLogger
    ) -> NewVersion | RecordResult | None:
        """Hash one file: the version to record, a rejection already recorded, or None."""
        kind = seen.kind
        # Debug: at info each file would cost two lines (this and `item_spooled`, which says it
        # all once the file is recorded); a burst spent a fifth of the intake's time on them.
        said.debug("file_detected", path=str(path), kind=kind, size=seen.size)
        self._on_detected()
        # Over the limit: refused from its size alone, without reading (a sparse 6 GiB file).
        limit = MAX_SESSION_FILE_BYTES if kind == "session" else limits.OBJECT_BYTES
        try:
            snap = files.snapshot(self._root, path, max_bytes=limit)
        except FileNotFoundError:
            log.info("file_vanished", path=str(path))
            return None
        except files.FileChanged:
            # Still being written; the watcher reports it again once it settles.
            log.info("file_still_changing", path=str(path))
            return None
        except FileRejected as exc:
            return self.reject(path, kind, str(exc))
        except OSError as exc:
            return self.reject(path, kind, f"cannot read the file: {exc.strerror or exc}")
        return NewVersion(path, kind, snap.size, snap.mtime_ns, snap.sha256, snap.inode)

    def reject(self, path: Path, kind: Kind, reason: str) -> RecordResult:
        """Record `path` as failed with `reason`, without reading it."""
        result = self._spool.record_rejected(path, kind, reason, now=self._clock.time())
        if result.created:
            log.warning("item_rejected", item_id=result.item.id, path=str(path), reason=reason)
        return result
