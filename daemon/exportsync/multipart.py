"""Multipart uploads of large files: parts streamed from disk, progress kept in the spool.

One counted request (a presign ask with `"parts": N`) brings back every part's presigned URL and
the presigned completion. The parts are then PUT one by one, each streamed from its offset in the
file (memory stays flat whatever the size); each part's ETag is recorded in the spool as soon as
S3 answers, so a daemon that restarts sends only the parts not yet sent, without a new request
while the URLs are valid. Last, the completion XML is POSTed to its presigned URL.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import structlog

from exportsync import files
from exportsync.client import Api, completion_xml
from exportsync.clock import Clock
from exportsync.errors import TransientError
from exportsync.spool import Item, Spool

__all__ = ["EXPIRY_MARGIN_SECONDS", "MultipartUpload", "Part", "Uploads", "parse_multipart"]

log = structlog.get_logger("exportsync.multipart")

# A URL this close to expiry is not started on: a part takes time to send.
EXPIRY_MARGIN_SECONDS = 300.0
# When the API gives no expiry, URLs are taken to last this long (its default presign lifetime).
_DEFAULT_LIFETIME = 3600.0


@dataclass(frozen=True)
class Part:
    number: int
    url: str
    headers: Mapping[str, str]


@dataclass(frozen=True)
class MultipartUpload:
    """One file's upload in parts, as the API presigned it, and the ETags of parts sent."""

    item_id: int
    sha256: str  # of the content being uploaded
    key: str | None
    upload_id: str
    part_size: int
    parts: tuple[Part, ...]
    complete_url: str
    expires_at: float
    etags: Mapping[int, str]

    def to_json(self) -> dict[str, Any]:
        return {
            "sha256": self.sha256,
            "key": self.key,
            "upload_id": self.upload_id,
            "part_size": self.part_size,
            "parts": [
                {"number": p.number, "url": p.url, "headers": dict(p.headers)} for p in self.parts
            ],
            "complete_url": self.complete_url,
            "expires_at": self.expires_at,
        }

    @classmethod
    def from_json(
        cls, item_id: int, doc: Mapping[str, Any], etags: Mapping[int, str]
    ) -> MultipartUpload:
        return cls(
            item_id=item_id,
            sha256=str(doc.get("sha256")),
            key=doc.get("key"),
            upload_id=str(doc["upload_id"]),
            part_size=int(doc["part_size"]),
            parts=tuple(
                Part(int(p["number"]), str(p["url"]), dict(p.get("headers") or {}))
                for p in doc["parts"]
            ),
            complete_url=str(doc["complete_url"]),
            expires_at=float(doc["expires_at"]),
            etags=dict(etags),
        )


def parse_multipart(result: Mapping[str, Any], item: Item, *, now: float) -> MultipartUpload | None:
    """The upload a `multipart` presign result describes; None when it is incomplete."""
    try:
        parts = tuple(
            Part(int(p["number"]), str(p["url"]), dict(p.get("headers") or {}))
            for p in result["parts"]
        )
        complete = result["complete"]
        part_size = int(result["part_size"])
        upload = MultipartUpload(
            item_id=item.id,
            sha256=item.content_sha256,
            key=result.get("key") if isinstance(result.get("key"), str) else None,
            upload_id=str(result["upload_id"]),
            part_size=part_size,
            parts=parts,
            complete_url=str(complete["url"]),
            expires_at=_expiry(result.get("expires_at"), now),
            etags={},
        )
    except (KeyError, TypeError, ValueError):
        return None
    covered = sum(min(part_size, item.size - (p.number - 1) * part_size) for p in parts)
    if part_size <= 0 or not parts or covered != item.size:
        return None
    return upload


def _expiry(value: object, now: float) -> float:
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    if isinstance(value, int | float):
        return float(value)
    return now + _DEFAULT_LIFETIME


class Uploads:
    """Runs multipart uploads and keeps their progress in the spool."""

    def __init__(self, *, spool: Spool, api: Api, root: Path, clock: Clock) -> None:
        self._spool = spool
        self._api = api
        self._root = root
        self._clock = clock

    def start(self, upload: MultipartUpload) -> MultipartUpload:
        """Record an upload the API presigned, before any part goes. Fresh URLs for an upload
        already begun keep the ETags of the parts it sent; the upload is returned with them."""
        etags = self._spool.upload_save(upload.item_id, upload.to_json())
        return replace(upload, etags=etags)

    def drop(self, item_id: int) -> None:
        self._spool.upload_drop(item_id)

    def begun(self, item: Item) -> MultipartUpload | None:
        """The upload begun for this item's content (its URLs perhaps expired), if any."""
        found = self._spool.upload_get(item.id)
        if found is None:
            return None
        doc, etags = found
        if doc.get("sha256") != item.content_sha256:
            return None  # begun for content the file no longer holds
        return MultipartUpload.from_json(item.id, doc, etags)

    def resumable(self, now: float) -> MultipartUpload | None:
        """A due item's upload whose URLs still work. One past its URLs stays recorded: its
        item's next presign ask names the upload, and the parts sent need not go again."""
        for item_id, sha256, doc, etags in self._spool.uploads_due(now):
            if doc.get("sha256") != sha256:
                self._spool.upload_drop(item_id)
                continue
            upload = MultipartUpload.from_json(item_id, doc, etags)
            if upload.expires_at - EXPIRY_MARGIN_SECONDS > now:
                return upload
        return None

    def run(self, upload: MultipartUpload, item: Item) -> None:
        """Send the parts not yet sent, then complete. Raises the DeliveryError or FileChanged
        that stopped it; the parts sent so far stay recorded."""
        etags = dict(upload.etags)
        log.info(
            "upload_started",
            item_id=item.id,
            path=str(item.path),
            size=item.size,
            parts=len(upload.parts),
            parts_done=len(etags),
        )
        for part in upload.parts:
            if part.number in etags:
                continue
            if self._clock.time() > upload.expires_at:
                raise TransientError("the presigned part URLs expired")
            offset = (part.number - 1) * upload.part_size
            length = min(upload.part_size, item.size - offset)
            with _part_stream(self._root, item, offset, length) as stream:
                etag = self._api.put_presigned(part.url, part.headers, stream)
            _check_unchanged(self._root, item)
            etags[part.number] = etag or ""
            self._spool.upload_part_done(item.id, part.number, etag or "")
        self._api.complete_multipart(upload.complete_url, completion_xml(sorted(etags.items())))
        log.info("upload_completed", item_id=item.id, parts=len(etags))


def _part_stream(root: Path, item: Item, offset: int, length: int) -> files.VerifiedStream:
    """`length` bytes of the file from `offset`, streamed (never more, FileChanged if fewer)."""
    fd = files.open_regular(root, item.path)
    try:
        info = os.fstat(fd)
        if info.st_size != item.size or info.st_mtime_ns != item.mtime_ns:
            raise files.FileChanged(item.path, "changed since it was spooled")
        os.lseek(fd, offset, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    # Only the length is checked here: S3 checks each part's bytes, the file's size and mtime
    # are checked after every part.
    return files.VerifiedStream(fd, item.path, "", length)


def _check_unchanged(root: Path, item: Item) -> None:
    fd = files.open_regular(root, item.path)
    try:
        info = os.fstat(fd)
    finally:
        os.close(fd)
    if info.st_size != item.size or info.st_mtime_ns != item.mtime_ns:
        raise files.FileChanged(item.path, "changed while it was uploaded in parts")
