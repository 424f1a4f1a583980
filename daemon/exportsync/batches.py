"""A batch: what one `POST /batch` carries, and the limits that shape it.

Pure data and arithmetic, no I/O: `batcher.py` decides which items go in, this module says what
fits. One request holds up to 1,000 entries (inline files, sessions and presign asks together).
Its body must pass the gateway (10 MB) and reach the Lambda (6 MB event, binary bodies
base64-encoded), so the bytes on the wire stay under `inline_max_bytes` (4 MB by default):
gzip-compressed CSV parts count with their compressed size there, their declared `size` is the
file's own. Larger files go by presigned PUT; above the multipart threshold in parts. The API's
own limits live in ``exportsync_wire.limits``; the values here are the daemon's choices.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from exportsync.backlog import ENTRY_OVERHEAD_BYTES
from exportsync.client import BatchFile, BatchRequest
from exportsync.sessions import ParsedSession
from exportsync.spool import Item
from exportsync_wire import GZIP, PresignFile, limits

__all__ = [
    "COMPRESS_MAX_RATIO",
    "COMPRESS_MIN_BYTES",
    "ENTRY_OVERHEAD_BYTES",
    "MIN_PART_BYTES",
    "Batch",
    "FileEntry",
    "PresignEntry",
    "SessionPart",
    "encode_file",
    "parts_for",
    "slice_sessions",
    "urls_for",
]

# Fewer, larger parts than S3's 5 MiB minimum: fewer PUTs, the same flat memory (parts stream).
MIN_PART_BYTES = 16 * 1024**2
# Small files gain little from gzip and cost a little CPU; a file that shrinks by less than a
# tenth is sent as it is (already compressed data, random bytes).
COMPRESS_MIN_BYTES = 4096
COMPRESS_MAX_RATIO = 0.9


def encode_file(data: bytes) -> tuple[bytes, Literal["gzip"] | None]:
    """The bytes to send for a CSV and their encoding: gzip when it pays, else as they are."""
    if len(data) < COMPRESS_MIN_BYTES:
        return data, None
    import gzip  # noqa: PLC0415 -- at the first file worth compressing, not at start

    # mtime=0: the same file always compresses to the same bytes.
    packed = gzip.compress(data, compresslevel=6, mtime=0)
    if len(packed) < COMPRESS_MAX_RATIO * len(data):
        return packed, GZIP
    return data, None


def parts_for(size: int, threshold: int) -> int | None:
    """Parts to ask for: None for one PUT (at or under `threshold` and S3's 5 GiB), else N.

    Parts are at least `MIN_PART_BYTES`, and at most `limits.PARTS_PER_FILE` of them.
    """
    if size <= threshold and size <= limits.PUT_BYTES:
        return None
    part = max(MIN_PART_BYTES, math.ceil(size / limits.PARTS_PER_FILE))
    return max(1, math.ceil(size / part))


def urls_for(ask: PresignFile) -> int:
    """Presigned URLs the API's answer to `ask` holds: one PUT, or the parts and the completion."""
    return 1 if ask.parts is None else ask.parts + 1


@dataclass
class SessionPart:
    item: Item
    parsed: list[ParsedSession]  # the slice this request covers, invalid entries included
    end: int  # parts_done after this request
    total: int


@dataclass
class FileEntry:
    item: Item
    file: BatchFile


@dataclass
class PresignEntry:
    item: Item
    ask: PresignFile


@dataclass
class Batch:
    """One request under construction: its items, and the entries each one contributes.

    Entries go in through `add_file`, `add_session_part` and `add_presign`, which keep the
    totals the builder asks about after every entry (a sum over the entries each time would make
    a 1,000-entry batch cost a million additions)."""

    items: list[Item] = field(default_factory=list)
    files: list[FileEntry] = field(default_factory=list)
    session_parts: list[SessionPart] = field(default_factory=list)
    presigns: list[PresignEntry] = field(default_factory=list)
    _inline: int = 0  # bytes of the inline files as sent
    _sessions: int = 0  # session bodies, and their bytes with a comma apiece
    _session_bytes: int = 0
    _urls: int = 0
    _inflated: int = 0

    def add_file(self, entry: FileEntry) -> None:
        self.items.append(entry.item)
        self.files.append(entry)
        self._inline += len(entry.file.data)
        if entry.file.encoding is not None:
            self._inflated += entry.file.size

    def add_session_part(self, part: SessionPart) -> None:
        self.items.append(part.item)
        self.session_parts.append(part)
        for p in part.parsed:
            if p.body is not None:
                self._sessions += 1
                self._session_bytes += len(p.body) + 1  # one JSON list: a comma apiece

    def add_presign(self, entry: PresignEntry) -> None:
        self.items.append(entry.item)
        self.presigns.append(entry)
        self._urls += urls_for(entry.ask)

    @property
    def bodies(self) -> list[bytes]:
        return [p.body for part in self.session_parts for p in part.parsed if p.body is not None]

    @property
    def count(self) -> int:
        """Entries this request carries (files, sessions, presign asks)."""
        return len(self.files) + self._sessions + len(self.presigns)

    @property
    def size(self) -> int:
        """Body bytes as the gateway counts them, near enough (part headers included)."""
        entries = len(self.files) + len(self.presigns)
        return self._inline + self._session_bytes + ENTRY_OVERHEAD_BYTES * entries

    @property
    def urls(self) -> int:
        """Presigned URLs the answer will carry."""
        return self._urls

    @property
    def inflated(self) -> int:
        """Bytes the API inflates from this request's gzip parts."""
        return self._inflated

    def request(self) -> BatchRequest:
        return BatchRequest(
            files=[f.file for f in self.files],
            sessions=self.bodies,
            presign=[p.ask for p in self.presigns],
        )


def slice_sessions(
    parsed: Sequence[ParsedSession], start: int, room: int, body_room: int, *, first: bool
) -> list[ParsedSession]:
    """The entries from `start` on that fit in `room` sessions and `body_room` bytes.

    Invalid entries ride along (they cost nothing); the first entry of an empty batch always
    fits, so a batch can never come out empty and stall the queue.
    """
    chosen: list[ParsedSession] = []
    count = body = 0
    for entry in parsed[start:]:
        size = len(entry.body) + 1 if entry.body is not None else 0
        fits = count + 1 <= room and body + size <= body_room
        if entry.body is not None and not fits and not (first and count == 0):
            break
        chosen.append(entry)
        if entry.body is not None:
            count += 1
            body += size
    return chosen
