"""POST /batch: the names of its parts, the ``kind`` of each result, and the one encoding a
``file`` part may travel in."""

from __future__ import annotations

from enum import StrEnum
from typing import Final

__all__ = ["GZIP", "MANIFEST_PART", "USER_PART", "Kind"]


class Kind(StrEnum):
    """``results[i]["kind"]`` of a /batch answer, and the name of the part that carried it."""

    FILE = "file"  # a CSV (multipart file part), described by the manifest entry in its position
    SESSION = "session"  # application/json: one session object or a list of them
    PRESIGN = "presign"  # application/json: {"files": [...]} as in /presign


MANIFEST_PART: Final = "manifest"  # JSON list, one entry per file part, in order
USER_PART: Final = "user_id"  # the owner where the gateway gives no key identity
# A manifest entry's "encoding": the file part is gzip (one or more members); its sha256 and
# size describe the inflated bytes, and it may not inflate past that size.
GZIP: Final = "gzip"
