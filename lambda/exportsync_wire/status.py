"""The per-entry result statuses every route answers with."""

from __future__ import annotations

from enum import StrEnum
from typing import Final

__all__ = ["DELIVERED", "Status"]


class Status(StrEnum):
    """``results[i]["status"]``. A ``StrEnum``: it equals and serialises as its plain value."""

    STORED = "stored"  # written now
    DUPLICATE = "duplicate"  # the same content was already there
    REJECTED = "rejected"  # this entry can never be stored as sent ("error" says why)
    RETRY = "retry"  # a transient fault of this entry's own write: send it again later
    UPLOAD = "upload"  # /presign: PUT the bytes to "url" with "headers"
    MULTIPART = "multipart"  # /presign: PUT the parts, then POST "complete"


# The answers that mean the server holds the content.
DELIVERED: Final = frozenset({Status.STORED, Status.DUPLICATE})
