"""Multipart uploads of large files: parts streamed from disk, progress kept in the spool.

One counted request (a presign ask with `"parts": N` and each part's sha256, read from the file
before the ask) brings back every part's presigned URL, each signed with that part's checksum,
and the presigned completion. The parts are then PUT one by one, each streamed from its offset in
the file (memory stays flat whatever the size) and hashed as it goes; each part's ETag is
recorded in the spool as soon as S3 answers, so a daemon that restarts sends only the parts not
yet sent, without a new request while the URLs are valid. Last, the completion XML is POSTed to
its presigned URL, only when the whole file's sha256, over the bytes streamed (and the parts sent
before a restart, read again), is the spooled one: a file rewritten in place, even with its
mtime restored, is never completed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import structlog

from exportsync.client import Api, completion_xml
from exportsync.clock import Clock
from exportsync.errors import TransientError
from exportsync.fs import files
from exportsync.spool import Item, Spool
from exportsync_wire import PresignResultJson
from exportsync_wire.parts import checksum_b64, plan_parts

__all__ = [
    "EXPIRY_MARGIN_SECONDS",
    "MultipartUpload",
    "Part",
    "Uploads",
    "parse_multipart",
    "part_digests",
]

log = structlog.get_logger("exportsync.multipart")

# A URL this close to expiry is not started on: a part takes time to send.
EXPIRY_MARGIN_SECONDS = 300.0
# When the API gives no expiry, URLs are taken to last this long (its longest presign lifetime).
_DEFAULT_LIFETIME = 900.0


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
    part_sha256: tuple[str, ...] = ()  # each part's sha256 (hex), as signed into its URL
    complete_headers: Mapping[str, str] | None = None  # what the completion URL signs

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
            "part_sha256": list(self.part_sha256),
            "complete_headers": dict(self.complete_headers or {}),
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
            # Absent from uploads recorded by an older version: read again from the file.
            part_sha256=tuple(str(d) for d in doc.get("part_sha256") or ()),
            complete_headers=dict(doc.get("complete_headers") or {}),
        )


def parse_multipart(
    result: PresignResultJson, item: Item, part_sha256: tuple[str, ...], *, now: float
) -> MultipartUpload | None:
    """The upload a `multipart` presign result describes for parts of these digests; None when
    it is incomplete or cut otherwise than the digests were."""
    complete = result.get("complete")
    upload_id = result.get("upload_id")
    part_size = result.get("part_size")
    if complete is None or upload_id is None or part_size is None or "parts" not in result:
        return None
    parts = tuple(Part(p["number"], p["url"], p["headers"]) for p in result["parts"])
    upload = MultipartUpload(
        item_id=item.id,
        sha256=item.content_sha256,
        key=result["key"],
        upload_id=upload_id,
        part_size=part_size,
        parts=parts,
        complete_url=complete["url"],
        expires_at=_expiry(result.get("expires_at"), now),
        etags={},
        part_sha256=part_sha256,
        complete_headers=complete.get("headers", {}),
    )
    covered = sum(min(part_size, item.size - (p.number - 1) * part_size) for p in parts)
    if part_size <= 0 or not parts or covered != item.size or len(parts) != len(part_sha256):
        return None
    return upload


def part_digests(root: Path, item: Item, parts: int) -> tuple[str, ...]:
    """Each part's sha256 as `plan_parts(size, parts)` cuts the file, read once from disk;
    FileChanged unless the whole is the spooled content."""
    plan = plan_parts(item.size, parts)
    fd = _open_unchanged(root, item)
    try:
        whole = hashlib.sha256()
        digests = []
        for length in plan.lengths(item.size):
            part = hashlib.sha256()
            for chunk in _chunks(fd, item.path, length):
                part.update(chunk)
                whole.update(chunk)
            digests.append(part.hexdigest())
    finally:
        os.close(fd)
    if whole.hexdigest() != item.content_sha256:
        raise files.FileChanged(item.path, "content differs from the spooled snapshot")
    return tuple(digests)


def _chunks(fd: int, path: Path, length: int) -> Iterator[bytes]:
    remaining = length
    while remaining > 0:
        chunk = os.read(fd, min(remaining, files.CHUNK_SIZE))
        if not chunk:
            raise files.FileChanged(path, "ended early")
        remaining -= len(chunk)
        yield chunk


class _Tee:
    """A part's body that also feeds the whole file's digest with every byte it hands out."""

    def __init__(self, stream: files.VerifiedStream, whole: Any) -> None:
        self._stream = stream
        self._whole = whole

    def __len__(self) -> int:
        return len(self._stream)

    def read(self, size: int = -1) -> bytes:
        chunk = self._stream.read(size)
        self._whole.update(chunk)
        return chunk

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read(files.CHUNK_SIZE):
            yield chunk


def _expiry(value: str | None, now: float) -> float:
    if value is not None:
        try:
            return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
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
        """Send the parts not yet sent, then complete, only if the bytes are the spooled file.
        Raises the DeliveryError or FileChanged that stopped it; the parts sent stay recorded."""
        etags = dict(upload.etags)
        digests = upload.part_sha256 or part_digests(self._root, item, len(upload.parts))
        log.info(
            "upload_started",
            item_id=item.id,
            path=str(item.path),
            size=item.size,
            parts=len(upload.parts),
            parts_done=len(etags),
        )
        whole = hashlib.sha256()
        for part, digest in zip(upload.parts, digests, strict=True):
            offset = (part.number - 1) * upload.part_size
            length = min(upload.part_size, item.size - offset)
            if part.number in etags:
                # Sent before: read again, so the whole file's digest covers it too.
                self._reread(item, offset, length, digest, whole)
                continue
            if self._clock.time() > upload.expires_at:
                raise TransientError("the presigned part URLs expired")
            etag = self._send_part(item, part, (offset, length), digest, whole)
            _check_unchanged(self._root, item)
            etags[part.number] = etag or ""
            self._spool.upload_part_done(item.id, part.number, etag or "")
        if whole.hexdigest() != item.content_sha256:
            raise files.FileChanged(item.path, "the parts sent are not the spooled file")
        checksums = {n: checksum_b64(d) for n, d in enumerate(digests, 1)}
        body = completion_xml(sorted(etags.items()), checksums)
        self._api.complete_multipart(upload.complete_url, body, upload.complete_headers)
        log.info("upload_completed", item_id=item.id, parts=len(etags))

    def _send_part(
        self, item: Item, part: Part, span: tuple[int, int], digest: str, whole: Any
    ) -> str | None:
        """PUT one part, hashed as it streams; FileChanged when its bytes are not `digest`."""
        offset, length = span
        with _part_stream(self._root, item, offset, length, digest) as stream:
            try:
                etag = self._api.put_presigned(part.url, part.headers, _Tee(stream, whole))
            except TransientError:
                # S3 refuses a part whose bytes are not its signed checksum: a file changed
                # in place (its mtime perhaps restored) is requeued, not retried forever.
                self._reread(item, offset, length, digest, hashlib.sha256())
                raise
            stream.verify()
        return etag

    def _reread(self, item: Item, offset: int, length: int, digest: str, whole: Any) -> None:
        """Feed `whole` with a part read from disk; FileChanged unless it is `digest`."""
        fd = _open_unchanged(self._root, item)
        try:
            os.lseek(fd, offset, os.SEEK_SET)
            part = hashlib.sha256()
            for chunk in _chunks(fd, item.path, length):
                part.update(chunk)
                whole.update(chunk)
        finally:
            os.close(fd)
        if part.hexdigest() != digest:
            raise files.FileChanged(item.path, "a part differs from the one being uploaded")


def _open_unchanged(root: Path, item: Item) -> int:
    fd = files.open_regular(root, item.path)
    try:
        info = os.fstat(fd)
        if info.st_size != item.size or info.st_mtime_ns != item.mtime_ns:
            raise files.FileChanged(item.path, "changed since it was spooled")
    except BaseException:
        os.close(fd)
        raise
    return fd


def _part_stream(
    root: Path, item: Item, offset: int, length: int, digest: str
) -> files.VerifiedStream:
    """`length` bytes of the file from `offset`, streamed and hashed (never more, FileChanged
    if fewer; `verify()` checks them against the part's `digest`)."""
    fd = _open_unchanged(root, item)
    try:
        os.lseek(fd, offset, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return files.VerifiedStream(fd, item.path, digest, length)


def _check_unchanged(root: Path, item: Item) -> None:
    fd = files.open_regular(root, item.path)
    try:
        info = os.fstat(fd)
    finally:
        os.close(fd)
    if info.st_size != item.size or info.st_mtime_ns != item.mtime_ns:
        raise files.FileChanged(item.path, "changed while it was uploaded in parts")
