"""A batch: what one API request carries, and the limits that shape it.

Pure data and arithmetic, no I/O: `delivery.py` decides which items go in, this module says what
fits. Limits come from the API (entries per request) and the gateway (the Lambda sees at most
6 MB, base64-encoded for binary bodies); their values live in ``exportsync_wire.limits``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from exportsync.client import UploadFile
from exportsync.sessions import ParsedSession
from exportsync.spool import Item
from exportsync_wire import limits

__all__ = [
    "MAX_FILE_BYTES",
    "MAX_PRESIGN_PER_REQUEST",
    "MAX_SESSIONS_PER_REQUEST",
    "MAX_SESSION_BODY_BYTES",
    "Batch",
    "Route",
    "SessionPart",
    "slice_sessions",
]

Route = Literal["session", "upload", "presign"]

MAX_SESSIONS_PER_REQUEST = limits.MAX_ENTRIES_PER_REQUEST
MAX_PRESIGN_PER_REQUEST = limits.MAX_ENTRIES_PER_REQUEST
# S3's limit for one PUT; the daemon does not send multipart uploads (yet).
MAX_FILE_BYTES = limits.PUT_BYTES
# Session bodies are JSON, not base64: stay well under the Lambda's 6 MB event.
MAX_SESSION_BODY_BYTES = limits.INLINE_BODY_BYTES


@dataclass
class SessionPart:
    item: Item
    parsed: list[ParsedSession]  # the slice this request covers, invalid entries included
    end: int  # parts_done after this request
    total: int


@dataclass
class Batch:
    route: Route
    items: list[Item] = field(default_factory=list)
    session_parts: list[SessionPart] = field(default_factory=list)
    uploads: list[UploadFile] = field(default_factory=list)

    @property
    def bodies(self) -> list[bytes]:
        return [p.body for part in self.session_parts for p in part.parsed if p.body is not None]

    @property
    def count(self) -> int:
        """Files or sessions this request carries."""
        return len(self.bodies) if self.route == "session" else len(self.items)

    @property
    def size(self) -> int:
        """Payload bytes, as the batch limits count them."""
        if self.route == "session":
            return sum(len(b) + 1 for b in self.bodies)
        if self.route == "upload":
            return sum(len(u.data) for u in self.uploads)
        return 0


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
