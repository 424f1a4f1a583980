"""Building the next request: due items oldest first, as many as its entries and bytes allow.

Small CSV files go inline (gzip-compressed when that pays), session files as the slice of their
sessions that fits, and large files as presign asks (with each part's sha256 above the multipart
threshold). A file that cannot be read or parsed is settled here, alone, without spending a
request; `batches.py` says what fits, this module reads the files and decides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from exportsync.batches import (
    ENTRY_OVERHEAD_BYTES,
    Batch,
    FileEntry,
    PresignEntry,
    SessionPart,
    encode_file,
    parts_for,
    slice_sessions,
    urls_for,
)
from exportsync.client import BatchFile
from exportsync.clock import Clock
from exportsync.config import ApiConfig, WatchConfig
from exportsync.errors import FileRejected
from exportsync.fs import files
from exportsync.fs.names import wire_name
from exportsync.logs import get_logger
from exportsync.multipart import Uploads, part_digests
from exportsync.outcomes import Outcomes
from exportsync.sessions import parse_session_file
from exportsync.spool import Item, Spool
from exportsync_wire import PresignFile, limits

__all__ = ["BatchBuilder", "BatchCap"]

log = get_logger(__name__)


@dataclass
class BatchCap:
    """After a 413 (or a request that crashed), the next batch carries at most half of what was
    refused; lifted once a request goes through. 0: no cap."""

    items: int = 0
    bytes: int = 0

    def halve(self, batch: Batch) -> None:
        self.items = max(1, batch.count // 2)
        self.bytes = max(1, batch.size // 2)

    def halve_items(self, batch: Batch) -> None:
        self.items = max(1, batch.count // 2)

    def lift(self) -> None:
        self.items = self.bytes = 0


class BatchBuilder:
    """Reads due items' files and packs the next request."""

    def __init__(
        self,
        *,
        spool: Spool,
        clock: Clock,
        watch: WatchConfig,
        settings: ApiConfig,
        uploads: Uploads,
        outcomes: Outcomes,
    ) -> None:
        self._spool = spool
        self._clock = clock
        self._root = watch.dir
        self._user_id = settings.user_id
        self.inline_max = settings.inline_max_bytes
        self.max_entries = max(1, min(settings.batch_max_files, limits.MAX_BATCH_ENTRIES))
        self._multipart_threshold = settings.multipart_threshold_bytes
        self._uploads = uploads
        self._outcomes = outcomes
        self.cap = BatchCap()

    def build(self, due: Sequence[Item]) -> Batch:
        """The next request; its `count` is 0 when nothing valid is left to send (what was
        looked at failed or changed locally, or was a session file with no valid session)."""
        batch = Batch()
        max_entries = min(self.max_entries, self.cap.items or self.max_entries)
        max_bytes = min(self.inline_max, self.cap.bytes or self.inline_max)
        for item in due:
            room = max_entries - batch.count
            if room <= 0:
                break
            if item.kind == "session":
                self._add_session(batch, item, room, max_bytes)
            elif item.size > self.inline_max:
                self._add_presign(batch, item)
            else:
                self._add_file(batch, item, max_bytes)
        return batch

    def _add_session(self, batch: Batch, item: Item, room: int, max_bytes: int) -> None:
        part = self._outcomes.guarded(
            item, self._session_part, item, room, max_bytes - batch.size, first=batch.count == 0
        )
        if part is None or not part.parsed:
            return  # settled locally, or its next session does not fit beside the others
        batch.add_session_part(part)

    def _session_part(
        self, item: Item, room: int, body_room: int, *, first: bool
    ) -> SessionPart | None:
        """The slice of a session file that fits; the first of a batch always takes one session."""
        data = self._read(item)
        if data is None:
            return None
        try:
            parsed = parse_session_file(data, default_user_id=self._user_id)
        except FileRejected as exc:
            self._outcomes.fail(item, str(exc))
            return None
        start = min(item.parts_done, len(parsed))
        chosen = slice_sessions(parsed, start, room, body_room, first=first)
        return SessionPart(item, chosen, start + len(chosen), len(parsed))

    def _add_presign(self, batch: Batch, item: Item) -> None:
        if item.size > limits.OBJECT_BYTES:
            self._outcomes.fail(item, f"file is {item.size} bytes, over the 5 TiB S3 takes")
            return
        ask = self._outcomes.guarded(item, self._presign_ask, item)
        if ask is None:
            return
        if batch.presigns and batch.urls + urls_for(ask) > limits.PRESIGNED_URLS:
            return  # the next request asks for it
        batch.add_presign(PresignEntry(item, ask))

    def _presign_ask(self, item: Item) -> PresignFile | None:
        """The ask for a large file: one PUT, or parts with each part's sha256 (read from the
        file now; they are signed into the part URLs); None when the file was settled."""
        name = wire_name(item.path)
        begun = self._uploads.begun(item)
        parts = len(begun.parts) if begun is not None else None
        if begun is None:
            parts = parts_for(item.size, self._multipart_threshold)
            if parts is None:
                return PresignFile(name, item.content_sha256, item.size)
        assert parts is not None
        digests = begun.part_sha256 if begun is not None else ()
        if not digests:
            self._spool.hold(item.id, now=self._clock.time())
            try:
                digests = part_digests(self._root, item, parts)
            except (files.FileChanged, FileRejected, OSError) as exc:
                changed = isinstance(exc, files.FileChanged)
                if not (changed and self._outcomes.recheck_changed(item)):
                    self._outcomes.unreadable(item, exc)
                return None
        # A begun upload whose URLs expired: fresh ones for it; the parts sent stay sent.
        upload_id = begun.upload_id if begun is not None else None
        return PresignFile(name, item.content_sha256, item.size, parts, upload_id, digests)

    def _add_file(self, batch: Batch, item: Item, max_bytes: int) -> None:
        data = self._outcomes.guarded(item, self._read, item)
        if data is None:
            return
        if not data:
            # The contract sends a CSV whatever its content; an empty one is often a failed
            # export, so it goes with a word (once per request it joins).
            log.warning("empty_file", item_id=item.id, path=str(item.path), action="sent as is")
        wire, encoding = encode_file(data)
        if batch.count and batch.size + len(wire) + ENTRY_OVERHEAD_BYTES > max_bytes:
            return  # the next request takes it
        if encoding is not None and batch.inflated + len(data) > limits.INFLATED_BYTES:
            return
        batch.add_file(
            FileEntry(
                item,
                BatchFile(wire_name(item.path), wire, item.content_sha256, len(data), encoding),
            )
        )

    def _read(self, item: Item) -> bytes | None:
        """The spooled bytes, verified against the spooled hash; None when the item was settled.

        The item is marked in hand first: should reading or parsing it kill the daemon, the next
        start knows which item did (poison-pill quarantine, `Spool.count_crashes`).
        """
        self._spool.hold(item.id, now=self._clock.time())
        try:
            return files.read_verified(self._root, item.path, item.content_sha256, item.size)
        except (files.FileChanged, FileRejected, OSError) as exc:
            self._outcomes.unreadable(item, exc)
        return None
