"""The record that binds a multipart upload to what began it, and what it may still become.

The server writes it when it starts an upload (under ``stores.record_key(key)``; the key already
names the user, the sha256 and the file): the upload id, the size and each part's sha256. A
client that names an ``upload_id`` resumes only the upload recorded for its own key, with the
same size and part digests. The verifier (``verify``) marks the record once the completed
object's bytes were hashed: ``verified``, or ``rejected`` when they were not the key's sha256
(the object is then deleted). Until then the object is not answered ``duplicate``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from typing import Any, Final, NotRequired, TypedDict

from exportsync_wire import Status

from .stores import ObjectStore

__all__ = [
    "VERIFYING",
    "VERIFYING_ANSWER",
    "RecordState",
    "StoredAnswer",
    "UploadRecord",
    "stored_answer",
]

# S3's ETag of an object assembled from parts: the parts' MD5s' MD5, then "-" and their count.
_MULTIPART_ETAG = re.compile(r"-\d+\"?$")
VERIFYING = "verifying: the uploaded object is being checked against its sha256; send it again"


class StoredAnswer(TypedDict):
    """What an entry answers for an object already there: its status and why."""

    status: Status
    error: NotRequired[str]


VERIFYING_ANSWER: Final[StoredAnswer] = {"status": Status.RETRY, "error": VERIFYING}


class RecordState(StrEnum):
    OPEN = "open"  # begun; the object, when there, is not yet verified
    VERIFIED = "verified"  # the completed object's sha256 is the one its key names
    REJECTED = "rejected"  # it was not: the object was deleted


@dataclass(frozen=True)
class UploadRecord:
    upload_id: str
    size: int
    part_size: int
    part_sha256: tuple[str, ...]
    state: RecordState = RecordState.OPEN

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["part_sha256"] = list(self.part_sha256)
        doc["state"] = str(self.state)
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any] | None) -> UploadRecord | None:
        """The record, or None when there is none (or it cannot be read: nothing resumes)."""
        if doc is None:
            return None
        try:
            return cls(
                upload_id=str(doc["upload_id"]),
                size=int(doc["size"]),
                part_size=int(doc["part_size"]),
                part_sha256=tuple(str(d) for d in doc["part_sha256"]),
                state=RecordState(doc.get("state", RecordState.OPEN)),
            )
        except (KeyError, TypeError, ValueError):
            return None

    def marked(self, state: RecordState) -> UploadRecord:
        return replace(self, state=state)


def stored_answer(store: ObjectStore, key: str) -> StoredAnswer | None:
    """What an ask for ``key`` is answered when the object is there (None: absent):
    ``duplicate`` only once its bytes are known to be the key's sha256 (a single PUT's, checked
    by S3; a multipart object's, hashed by the verifier), ``retry`` while it is verified."""
    etag = store.stored_etag(key)
    if etag is None:
        return None
    if _MULTIPART_ETAG.search(etag):
        record = UploadRecord.from_json(store.load_record(key))
        if record is not None and record.state == RecordState.OPEN:
            return VERIFYING_ANSWER
    return {"status": Status.DUPLICATE}
