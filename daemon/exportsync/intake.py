"""Intake: the first thing that happens to a file is that the spool records it.

`Intake.offer(path)` is what the watcher calls for each ready file, what the start-up scan calls
for each file found, and what `exportsync enqueue` calls. It hashes the file once (through
`files`, which never follows a symlink), records the version in the spool, and wakes the delivery
loop. A file that can never be read as it is (a symlink, a fifo, a session file too big to parse)
is recorded as failed with the reason, so `exportsync status` shows it instead of it vanishing.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

from exportsync import files
from exportsync.batches import MAX_FILE_BYTES
from exportsync.clock import Clock
from exportsync.errors import FileRejected
from exportsync.logs import get_logger
from exportsync.matcher import FileMatcher, Kind
from exportsync.spool import RecordResult, Spool

__all__ = ["MAX_SESSION_FILE_BYTES", "Intake"]

log = get_logger(__name__)

# A session file is parsed in memory; anything this large is not a session summary.
MAX_SESSION_FILE_BYTES = 32 * 1024 * 1024


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

        Without `force`, a file whose path, size and mtime are already spooled is not hashed again.
        """
        path = Path(os.path.abspath(path))
        kind = self._matcher.classify(self._root, path)
        if kind is None:
            return None
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            log.info("file_vanished", path=str(path))
            return None
        except OSError as exc:
            return self.reject(path, kind, f"cannot stat the file: {exc.strerror or exc}")
        if (
            not force
            and stat.S_ISREG(st.st_mode)
            and self._spool.known(path, st.st_size, st.st_mtime_ns)
        ):
            return None  # this exact version is already spooled: no need to hash it again
        log.info("file_detected", path=str(path), kind=kind, size=st.st_size)
        self._on_detected()
        # Over the limit: refused from its size alone, without reading (a sparse 6 GiB file).
        limit = MAX_SESSION_FILE_BYTES if kind == "session" else MAX_FILE_BYTES
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
        result = self._spool.record(
            path,
            kind,
            size=snap.size,
            mtime_ns=snap.mtime_ns,
            sha256=snap.sha256,
            now=self._clock.time(),
        )
        if result.created or result.requeued:
            log.info(
                "item_spooled",
                item_id=result.item.id,
                path=str(path),
                kind=kind,
                size=snap.size,
                sha256=snap.sha256,
                again=result.requeued,
            )
            self._on_spooled()
        else:
            log.debug("item_known", item_id=result.item.id, path=str(path), state=result.item.state)
        return result

    def reject(self, path: Path, kind: Kind, reason: str) -> RecordResult:
        """Record `path` as failed with `reason`, without reading it."""
        result = self._spool.record_rejected(path, kind, reason, now=self._clock.time())
        if result.created:
            log.warning("item_rejected", item_id=result.item.id, path=str(path), reason=reason)
        return result
